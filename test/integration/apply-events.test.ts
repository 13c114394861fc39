// The applier's SQL against a real PostgreSQL: another region's events applied in any order, any number of times,
// end in the same rows as applied once in order, and never stall on the replica's own constraints.
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fenceEvent, type ReplEvent } from "../../src/replication/event-log";
import { createMigratedDatabase, sqlFunctionsCalled, type TestDatabase } from "../helpers/db";

let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
});
afterAll(async () => db?.drop());

const A = "us-central1";
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

/** One order's life in region A: claimed by c1, c1 released, claimed by c2; the supply follows. */
function history() {
	const order = randomUUID(), supply = randomUUID(), c1 = randomUUID(), c2 = randomUUID();
	const ev = (aggregateType: ReplEvent["aggregateType"], aggregateId: string, version: number, type: string, payload: Record<string, unknown>): ReplEvent => ({
		eventId: randomUUID(), aggregateType, aggregateId, version, type, region: A, homeRegion: A, epoch: 1, txId: String(version), schemaVersion: 1, createdAt: t(version), payload,
	});
	const s = (v: number, reserved: string) =>
		ev("supply", supply, v, "Supply", { id: supply, userId: "shopper", asset: "ETH", amount: "1", reserved, spent: "0", status: "active", homeRegion: A, version: v, createdAt: t(0), updatedAt: t(v) });
	const o = (v: number, status: string, claimId: string | null) =>
		ev("order", order, v, "Order", { id: order, userId: "buyer", asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: "0.5", quantity: 1 }], amount: "0.5", status, claimId, claimerId: claimId ? "shopper" : null, homeRegion: A, version: v, expiresAt: t(999), createdAt: t(0), updatedAt: t(v) });
	const c = (id: string, v: number, status: string, created: number) =>
		ev("claim", id, v, "Claim", { id, orderId: order, claimerId: "shopper", supplyId: supply, amount: "0.5", status, idempotencyKey: id, region: A, epoch: 1, version: v, expiresAt: t(999), createdAt: t(created), settledAt: null, releasedAt: status === "released" ? t(created + 1) : null });
	const events = [s(1, "0"), o(1, "open", null), c(c1, 1, "active", 2), o(2, "claimed", c1), s(2, "0.5"), c(c1, 2, "released", 2), o(3, "open", null), s(3, "0"), c(c2, 1, "active", 5), o(4, "claimed", c2), s(4, "0.5")];
	return { order, supply, c1, c2, events };
}

async function applyIn(client: { query: (sql: string, v: unknown[]) => Promise<{ rows: any[] }> }, events: ReplEvent[], batch: number) {
	const totals = { applied: 0, skipped: 0 };
	for (let i = 0; i < events.length; i += batch) {
		const { rows } = await client.query(`SELECT apply_events($1::jsonb) AS r`, [JSON.stringify({ source: A, lane: 0, region: "europe-west1", events: events.slice(i, i + batch) })]);
		totals.applied += rows[0].r.applied;
		totals.skipped += rows[0].r.skipped;
	}
	return totals;
}

async function rowsOf(client: { query: (sql: string, v: unknown[]) => Promise<{ rows: any[] }> }, h: ReturnType<typeof history>) {
	const [s, o, c] = await Promise.all([
		client.query(`SELECT reserved::text, version FROM supplies WHERE id = $1`, [h.supply]),
		client.query(`SELECT status, claim_id, version FROM orders WHERE id = $1`, [h.order]),
		client.query(`SELECT id, status, version FROM claims WHERE order_id = $1 ORDER BY created_at`, [h.order]),
	]);
	return { supply: s.rows, order: o.rows, claims: c.rows };
}

describe("apply_events", () => {
	it("in order: every event applies once; again: every event is skipped and nothing changes", async () => {
		const h = history();
		expect(await applyIn(db.pool, h.events, 4)).toEqual({ applied: 11, skipped: 0 });
		const once = await rowsOf(db.pool, h);
		expect(once.supply).toEqual([{ reserved: "0.500000000000000000", version: 4 }]);
		expect(once.order).toEqual([{ status: "claimed", claim_id: h.c2, version: 4 }]);
		expect(once.claims).toEqual([{ id: h.c1, status: "released", version: 2 }, { id: h.c2, status: "active", version: 1 }]);
		expect(await applyIn(db.pool, h.events, 3)).toEqual({ applied: 0, skipped: 11 });
		expect(await rowsOf(db.pool, h)).toEqual(once);
	});

	it("runs no SQL function as a call of its own (each one planned again at every call before PostgreSQL 18)", async () => {
		const h = history();
		const called = await sqlFunctionsCalled(db.pool, async client => expect(await applyIn(client, h.events, 4)).toEqual({ applied: 11, skipped: 0 }));
		expect(called).toEqual([]);
	});

	it("any order, duplicates and gaps included, ends where in-order ends, and never stalls", async () => {
		const reference = history();
		await applyIn(db.pool, reference.events, 100);
		const expected = await rowsOf(db.pool, reference);
		await fc.assert(
			fc.asyncProperty(
				fc.array(fc.nat({ max: 10 }), { minLength: 11, maxLength: 30 }),
				fc.integer({ min: 1, max: 6 }),
				async (picks, batch) => {
					const h = history();
					// Every event at least once (the last state always arrives), shuffled, with repeats.
					const order = [...new Set([...picks, ...h.events.keys()])].concat(picks);
					const events = order.map(i => h.events[i]);
					const client = await db.pool.connect();
					try {
						await client.query("BEGIN");
						await applyIn(client, events, batch);
						const got = await rowsOf(client, h);
						// The same rows as the reference, up to the ids that differ per history.
						const norm = (r: typeof expected, x: ReturnType<typeof history>) =>
							JSON.stringify(r).replaceAll(x.c1, "C1").replaceAll(x.c2, "C2");
						expect(norm(got, h)).toBe(norm(expected, reference));
						// The replica's one-live-claim index held all along (the transaction would have failed otherwise).
					} finally {
						await client.query("ROLLBACK");
						client.release();
					}
				},
			),
			{ numRuns: 40 },
		);
	});
});

describe("runs of orders and supplies (applied set-based)", () => {
	type Client = { query: (sql: string, v?: unknown[]) => Promise<{ rows: any[] }> };
	const supplyEv = (id: string, v: number, extra: Record<string, unknown> = {}): ReplEvent => ({
		eventId: randomUUID(), aggregateType: "supply", aggregateId: id, version: v, type: "SupplyUpdated", region: A, homeRegion: A, epoch: 1, txId: String(v), schemaVersion: 1, createdAt: t(v),
		payload: { id, userId: `u-${id.slice(0, 4)}`, asset: "ETH", amount: String(v), reserved: "0", spent: "0", status: v % 3 === 0 ? "paused" : "active", homeRegion: A, version: v, createdAt: t(0), updatedAt: t(v), ...extra },
	});
	const orderEv = (id: string, v: number): ReplEvent => ({
		eventId: randomUUID(), aggregateType: "order", aggregateId: id, version: v, type: "OrderUpdated", region: A, homeRegion: A, epoch: 1, txId: String(v), schemaVersion: 1, createdAt: t(v),
		payload: { id, userId: "buyer", asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: String(v), quantity: 1 }], amount: String(v), status: v % 2 ? "open" : "cancelled", claimId: null, claimerId: null, homeRegion: A, version: v, expiresAt: t(900 + v), createdAt: t(0), updatedAt: t(v) },
	});
	const apply = async (c: Client, events: ReplEvent[]) => (await c.query(`SELECT apply_events($1::jsonb) AS r`, [JSON.stringify({ source: A, lane: 9, region: "europe-west1", events })])).rows[0].r;
	/** apply_event's calls so far in this transaction (track_functions on). */
	const applyEventCalls = async (c: Client): Promise<number> =>
		(await c.query(`SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_xact_user_functions WHERE funcname = 'apply_event'`)).rows[0].n;
	/** What the rows, the status counts and the results say, in one transaction that is rolled back. */
	async function outcome(ids: string[], setup: ReplEvent[], events: ReplEvent[], perCall: number) {
		const c = await db.pool.connect();
		try {
			await c.query("BEGIN");
			await c.query("SET LOCAL track_functions = 'all'");
			if (setup.length) await apply(c, setup);
			await c.query("DELETE FROM entity_count_deltas");
			const before = await applyEventCalls(c);
			const results = [];
			for (let i = 0; i < events.length; i += perCall) results.push(await apply(c, events.slice(i, i + perCall)));
			const calls = (await applyEventCalls(c)) - before;
			const rows = await c.query(
				`SELECT id::text, version, status, amount::text, updated_at FROM supplies WHERE id = ANY($1::uuid[])
				 UNION ALL SELECT id::text, version, status, amount::text || items::text || expires_at::text, updated_at FROM orders WHERE id = ANY($1::uuid[]) ORDER BY 1`,
				[ids],
			);
			const counts = await c.query(`SELECT kind, status, sum(d)::int AS d FROM entity_count_deltas GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2`);
			return {
				rows: rows.rows,
				counts: counts.rows,
				applied: results.reduce((n, r) => n + r.applied, 0),
				skipped: results.reduce((n, r) => n + r.skipped, 0),
				changed: results.flatMap(r => r.changed),
				calls,
			};
		} finally {
			await c.query("ROLLBACK");
			c.release();
		}
	}

	it("end as event by event would: rows, status counts, applied and skipped, the changed list in order", async () => {
		const ids = Array.from({ length: 4 }, () => randomUUID());
		await fc.assert(
			fc.asyncProperty(
				// Events of four entities (two supplies, two orders) at versions 1-6, any order, repeats included; some rows exist before.
				fc.array(fc.tuple(fc.nat({ max: 3 }), fc.integer({ min: 1, max: 6 })), { minLength: 4, maxLength: 24 }),
				fc.array(fc.tuple(fc.nat({ max: 3 }), fc.integer({ min: 1, max: 6 })), { maxLength: 3 }),
				async (picks, existing) => {
					const ev = ([k, v]: [number, number]) => (k < 2 ? supplyEv(ids[k], v) : orderEv(ids[k], v));
					const setup = existing.map(ev);
					const events = picks.map(ev);
					const together = await outcome(ids, setup, events, events.length);
					const alone = await outcome(ids, setup, events, 1);
					expect(together.calls).toBe(0); // the run went set-based
					expect(alone.calls).toBe(events.length);
					expect({ ...together, calls: 0 }).toEqual({ ...alone, calls: 0 });
				},
			),
			{ numRuns: 60 },
		);
	});

	it("a supply event naming a claim ends the run and is applied alone, in its place (its hold with it)", async () => {
		const s = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
		const claim = randomUUID();
		const reserved = supplyEv(s[4], 2, { reserved: "1", claimId: claim, orderId: randomUUID(), claimerId: "shopper", holdAmount: "1", orderRegion: "asia-east1" });
		const events = [supplyEv(s[0], 1), supplyEv(s[1], 1), supplyEv(s[2], 1), supplyEv(s[3], 1), supplyEv(s[4], 1), { ...reserved, type: "SupplyReserved" }, supplyEv(s[0], 2), supplyEv(s[1], 2)];
		const r = await outcome(s, [], events, events.length);
		// The run of five set-based; the reservation, and the run of two after it, one by one.
		expect(r.calls).toBe(3);
		expect(r).toMatchObject({ applied: 8, skipped: 0 });
		expect(r.changed.map((x: { id: string }) => x.id)).toEqual([s[0], s[1], s[2], s[3], s[4], s[4], s[0], s[1]]);
		expect(r.rows.map((x: { id: string; version: number }) => [x.id, x.version])).toEqual(
			[[s[0], 2], [s[1], 2], [s[2], 1], [s[3], 1], [s[4], 2]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
		);
		const c = await db.pool.connect();
		try {
			await c.query("BEGIN");
			await apply(c, events);
			expect((await c.query(`SELECT status, supply_id::text FROM holds WHERE claim_id = $1`, [claim])).rows).toEqual([{ status: "held", supply_id: s[4] }]);
		} finally {
			await c.query("ROLLBACK");
			c.release();
		}
	});
});

describe("apply_deliveries (the applier's group commit)", () => {
	const B = "europe-west1";
	const deliver = async (client: { query: (sql: string, v: unknown[]) => Promise<{ rows: any[] }> }, deliveries: { source: string; lane: number; events: ReplEvent[] }[]) =>
		(await client.query(`SELECT apply_deliveries($1::jsonb) AS r`, [JSON.stringify({ region: B, deliveries })])).rows[0].r;

	it("applies each delivery as apply_events alone would, in the order given, each with its own result", async () => {
		const one = history(), two = history();
		const results = await deliver(db.pool, [
			{ source: A, lane: 0, events: one.events.slice(0, 6) },
			{ source: A, lane: 1, events: two.events },
			{ source: A, lane: 0, events: one.events.slice(6) },
			{ source: A, lane: 1, events: two.events.slice(0, 3) },
		]);
		expect(results.map((r: { applied: number; skipped: number; fenced: number }) => [r.applied, r.skipped, r.fenced])).toEqual([
			[6, 0, 0],
			[11, 0, 0],
			[5, 0, 0],
			[0, 3, 0],
		]);
		expect(results[1].changed).toHaveLength(11);
		// The same rows as applied by apply_events in order (the reference of the first test).
		for (const h of [one, two]) {
			const r = await rowsOf(db.pool, h);
			expect(r.supply).toEqual([{ reserved: "0.500000000000000000", version: 4 }]);
			expect(r.order).toEqual([{ status: "claimed", claim_id: h.c2, version: 4 }]);
		}
	});

	it("keeps a fence to the delivery's own lane: a marker in one delivery cuts the events after it there, not another lane's", async () => {
		const h = history(), other = history();
		const marker = fenceEvent({ source: A, homeRegion: A, epoch: 7, owner: B, eventId: randomUUID() });
		// A source of its own: the fences it leaves must not reach the other tests' lanes.
		const results = await deliver(db.pool, [
			{ source: "us-east1", lane: 5, events: [marker, ...h.events] },
			{ source: "us-east1", lane: 6, events: other.events },
		]);
		expect(results[0]).toMatchObject({ applied: 0, fenced: h.events.length });
		expect(results[1]).toMatchObject({ applied: other.events.length, fenced: 0 });
	});

	it("runs no SQL function as a call of its own", async () => {
		const h = history();
		const called = await sqlFunctionsCalled(db.pool, async client => expect((await deliver(client, [{ source: A, lane: 0, events: h.events }]))[0].applied).toBe(11));
		expect(called).toEqual([]);
	});
});

describe("log fences (a takeover's cut of the old owner's log)", () => {
	const B = "europe-west1";
	const marker = (epoch: number) => fenceEvent({ source: A, homeRegion: A, epoch, owner: B, eventId: randomUUID() });
	const applyLane = async (lane: number, events: ReplEvent[]) =>
		(await db.pool.query(`SELECT apply_events($1::jsonb) AS r`, [JSON.stringify({ source: A, lane, region: B, events })])).rows[0].r;

	it("after the marker, its lane skips the home region's events of an older epoch; before it, later epochs, other home regions and other lanes apply", async () => {
		const h = history();
		const cut = 5;
		// One delivery: the first five events, the marker of epoch 2, then the rest of epoch 1 (in flight when it was cut).
		expect(await applyLane(0, [...h.events.slice(0, cut), marker(2), ...h.events.slice(cut)])).toMatchObject({
			applied: cut,
			skipped: 0,
			fenced: h.events.length - cut,
		});
		const cutRows = await rowsOf(db.pool, h);
		expect(cutRows.supply).toEqual([{ reserved: "0.500000000000000000", version: 2 }]);
		expect(cutRows.order).toEqual([{ status: "claimed", claim_id: h.c1, version: 2 }]);
		expect(cutRows.claims).toEqual([{ id: h.c1, status: "active", version: 1 }]);
		// Redelivered later, alone: still fenced (the cut is kept in the database, not in the delivery).
		expect(await applyLane(0, h.events.slice(cut))).toMatchObject({ applied: 0, fenced: h.events.length - cut });
		expect(await rowsOf(db.pool, h)).toEqual(cutRows);
		const { rows: fences } = await db.pool.query(`SELECT lane, home_region, epoch::int, owner, skipped::int FROM log_fences WHERE source = $1`, [A]);
		expect(fences).toEqual([{ lane: 0, home_region: A, epoch: 2, owner: B, skipped: 2 * (h.events.length - cut) }]);

		// The same changes written under the new epoch apply.
		expect(await applyLane(0, h.events.slice(cut).map(e => ({ ...e, eventId: randomUUID(), epoch: 2 })))).toMatchObject({ applied: h.events.length - cut, fenced: 0 });
		expect((await rowsOf(db.pool, h)).order).toEqual([{ status: "claimed", claim_id: h.c2, version: 4 }]);

		// Another home region's events in the fenced lane, and the fenced home region's in another lane, apply.
		const other = history();
		expect(await applyLane(0, other.events.map(e => ({ ...e, homeRegion: B })))).toMatchObject({ applied: other.events.length, fenced: 0 });
		const unfenced = history();
		expect(await applyLane(1, unfenced.events)).toMatchObject({ applied: unfenced.events.length, fenced: 0 });
	});

	it("an older marker moves no cut back", async () => {
		const h = history();
		await applyLane(2, [marker(3)]);
		await applyLane(2, [marker(2)]);
		expect(await applyLane(2, h.events.map(e => ({ ...e, epoch: 2 })))).toMatchObject({ applied: 0, fenced: h.events.length });
		const { rows } = await db.pool.query(`SELECT epoch::int FROM log_fences WHERE source = $1 AND lane = 2`, [A]);
		expect(rows).toEqual([{ epoch: 3 }]);
	});
});

describe("applied event ids", () => {
	it("are recorded as applied (not when fenced), and pruned after a minute but for those of an epoch that has ended, kept a week", async () => {
		const home = "asia-east1";
		const B = "europe-west1";
		const h = history();
		const events = h.events.map(e => ({ ...e, homeRegion: home }));
		const fenced = { ...events[0], eventId: randomUUID(), aggregateId: randomUUID(), epoch: 1 };
		await db.pool.query(`SELECT apply_events($1::jsonb)`, [
			JSON.stringify({ source: home, lane: 0, region: B, events: [...events, fenceEvent({ source: home, homeRegion: home, epoch: 2, owner: B, eventId: randomUUID() }), fenced] }),
		]);
		const ids = async () => (await db.pool.query(`SELECT event_id::text AS id, epoch::int FROM applied_events WHERE home_region = $1`, [home])).rows;
		expect(new Set((await ids()).map(r => r.id))).toEqual(new Set(events.map(e => e.eventId)));
		// Epoch 1 of the home region has ended here (epoch 2 owns it); a current-epoch id is pruned after a minute.
		await db.pool.query(`INSERT INTO ownership_leases (home_region, owner, epoch) VALUES ($1, $2, 2) ON CONFLICT (home_region) DO UPDATE SET epoch = 2`, [home, B]);
		const current = randomUUID(), ancient = randomUUID();
		await db.pool.query(`INSERT INTO applied_events (event_id, home_region, epoch, applied_at) VALUES ($1, $3, 2, now() - interval '2 minutes'), ($2, $3, 1, now() - interval '8 days')`, [current, ancient, home]);
		await db.pool.query(`UPDATE applied_events SET applied_at = now() - interval '2 minutes' WHERE home_region = $1 AND epoch = 1 AND event_id <> $2`, [home, ancient]);
		const { rows } = await db.pool.query(`SELECT prune_applied_events(interval '1 minute', interval '7 days', 1000) AS n`);
		expect(rows[0].n).toBe(2);
		expect(new Set((await ids()).map(r => r.id))).toEqual(new Set(events.map(e => e.eventId)));
	});
});
