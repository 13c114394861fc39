// A recorded concurrent run against a real region (three nodes over NATS, with Redis), then the
// history checker: it must find nothing, must have seen contention, and must find each anomaly
// planted in the database afterwards (a lost claim, overlapping claims, a wrong balance, a missing
// event, a wrong order amount), and nothing else.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHistory, type HistoryReport } from "../../src/checker/history-check";
import { History } from "../../src/checker/history";
import { checkInvariants } from "../../src/checker/invariants";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item, type Reply } from "../helpers/http";
import { inPool } from "../helpers/pool";

const SHOPPERS = 12;
const BUYERS = 6;
const ORDERS = 60;
const CONTENDERS = 3;
const IN_FLIGHT = 24;

let region: Region & { db: TestDatabase };
let db: TestDatabase;
const history = new History();
let clean: HistoryReport;


const kinds = (r: HistoryReport) => [...new Set(r.violations.map(v => v.kind))].sort();

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nats: true,
		nodes: [["api", "supply", "order"], ["api", "claiming"], ["claiming"]],
		env: { RATE_LIMIT: "100000" },
	});
	db = region.db;
	const gw = region.apiUrls;
	const shoppers = await Promise.all(Array.from({ length: SHOPPERS }, (_, i) => Client.as(gw[i % gw.length], `shopper-${i}`)));
	const buyers = await Promise.all(Array.from({ length: BUYERS }, (_, i) => Client.as(gw[(i + 1) % gw.length], `buyer-${i}`)));

	const supplies = await Promise.all(
		shoppers.map((s, i) =>
			history.record({ op: "createSupply", userId: `shopper-${i}` }, () => s.post("/api/v1/supplies", { asset: "ETH", amount: "1.5" })),
		),
	);
	const orders = await inPool(
		Array.from({ length: ORDERS }, (_, i) => () =>
			history.record({ op: "createOrder", userId: `buyer-${i % BUYERS}` }, () =>
				buyers[i % BUYERS].post("/api/v1/orders", {
					asset: "ETH",
					items: [item(`0.${(i % 4) + 1}`, 1, "a"), item("0.000000000000000001", (i % 3) + 1, "b")],
				}),
			),
		),
		IN_FLIGHT,
	);
	const supplyOf = (s: number) => supplies[s].body.id as string;
	const orderOf = (o: number) => orders[o].body.id as string;

	const claim = (s: number, o: number, key: string) =>
		history.record({ op: "claim", userId: `shopper-${s}`, idempotencyKey: key, orderId: orderOf(o), supplyId: supplyOf(s) }, () =>
			shoppers[s].post("/api/v1/claims", { orderId: orderOf(o), supplyId: supplyOf(s) }, { "idempotency-key": key }),
		);

	// Round 1: contenders race for every order; every other attempt is sent twice with its key, at once.
	const attempts: { s: number; o: number; key: string }[] = [];
	// Every tenth order is left alone, for its buyer to cancel.
	for (let o = 0; o < ORDERS; o++)
		for (let k = 0; k < CONTENDERS && o % 10 !== 9; k++) {
			const s = (o * 5 + k * 4) % SHOPPERS;
			const a = { s, o, key: `r1-${o}-${s}` };
			attempts.push(a);
			if ((o + k) % 2 === 0) attempts.push(a);
		}
	for (let i = attempts.length - 1; i > 0; i--) {
		const j = (i * 7919) % (i + 1);
		[attempts[i], attempts[j]] = [attempts[j], attempts[i]];
	}
	// Owners raise their supplies while the claims run: amount changes interleave with reservations.
	const raises = shoppers.map((s, i) => () =>
		history.record({ op: "updateSupply", userId: `shopper-${i}`, supplyId: supplyOf(i) }, () =>
			s.patch(`/api/v1/supplies/${supplyOf(i)}`, { amount: "2.75" }),
		),
	);
	const round1 = await inPool<Reply>([...attempts.map(a => () => claim(a.s, a.o, a.key)), ...raises], IN_FLIGHT);

	// Round 2: winners complete, release (while the same key is replayed), or keep; buyers try to cancel.
	const winners = new Map<number, { s: number; key: string; claimId: string }>();
	attempts.forEach((a, i) => {
		if (round1[i].status === 201) winners.set(a.o, { s: a.s, key: a.key, claimId: round1[i].body.id });
	});
	const round2: (() => Promise<Reply>)[] = [];
	for (let o = 0; o < ORDERS; o++) {
		const w = winners.get(o);
		const buyer = buyers[o % BUYERS];
		const buyerId = `buyer-${o % BUYERS}`;
		if (!w || o % 3 === 2)
			round2.push(() => history.record({ op: "cancel", userId: buyerId, orderId: orderOf(o) }, () => buyer.post(`/api/v1/orders/${orderOf(o)}/cancel`)));
		if (!w) continue;
		if (o % 3 === 0)
			round2.push(() =>
				history.record({ op: "complete", userId: buyerId, orderId: orderOf(o), claimId: w.claimId }, () =>
					buyer.post(`/api/v1/orders/${orderOf(o)}/complete`),
				),
			);
		if (o % 3 === 1)
			round2.push(() =>
				history.record({ op: "release", userId: `shopper-${w.s}`, orderId: orderOf(o), claimId: w.claimId }, () =>
					shoppers[w.s].post(`/api/v1/claims/${w.claimId}/release`),
				),
			);
		round2.push(() => claim(w.s, o, w.key));
	}
	await inPool(round2, IN_FLIGHT);

	// Round 3: released orders are open again; a new race gives them a second claim lifetime.
	const round3: (() => Promise<Reply>)[] = [];
	for (const [o, w] of winners)
		if (o % 3 === 1)
			for (let k = 1; k <= 2; k++) {
				const s = (w.s + k * 5) % SHOPPERS;
				round3.push(() => claim(s, o, `r3-${o}-${s}`));
			}
	await inPool(round3, IN_FLIGHT);

	clean = await checkHistory([db.pool], history);
	console.log(clean.summary);
});

afterAll(async () => {
	await region?.stop();
});

describe("the history checker on a recorded concurrent run", () => {
	it("finds no violation, after real contention", async () => {
		expect(clean.violations).toEqual([]);
		expect((await checkInvariants([db.pool])).violations).toEqual([]);
		const c = clean.counts;
		expect(c.operations).toBe(history.ops.length);
		expect(history.ops.every(o => o.status !== 0 && o.status < 500)).toBe(true);
		expect(c.acknowledgedClaims).toBeGreaterThanOrEqual(70);
		expect(c.replays).toBeGreaterThanOrEqual(30);
		// Losers of a race: 409 for what they may see, 404 for an order someone else claimed.
		expect(c.conflicts + (c.statuses.claim?.["404"] ?? 0)).toBeGreaterThanOrEqual(40);
		expect(c.statuses.complete?.["200"]).toBeGreaterThanOrEqual(10);
		expect(c.statuses.release?.["200"]).toBeGreaterThanOrEqual(10);
		expect(c.statuses.cancel?.["409"]).toBeGreaterThanOrEqual(5);
		expect(c.statuses.updateSupply?.["200"]).toBe(SHOPPERS);
		expect(c.statuses.cancel?.["200"]).toBeGreaterThanOrEqual(ORDERS / 10);
		// Released orders were claimed again: more claims than orders claimed, each one lifetime.
		const acked = history.ops.filter(o => o.op === "claim" && o.status === 201);
		const claims = new Set(acked.map(o => (o.body as any).id));
		expect(claims.size).toBeGreaterThan(new Set(acked.map(o => o.orderId)).size);
		expect(c.claimLifetimes).toBe(claims.size);
		expect(c.suppliesRebuilt).toBe(SHOPPERS);
		expect(c.ordersSummed).toBe(ORDERS);
	});

	// Each tamper is undone after its check, so the next one starts from a clean database.
	async function tampered(plant: () => Promise<() => Promise<void>>): Promise<HistoryReport> {
		const undo = await plant();
		try {
			return await checkHistory([db.pool], history);
		} finally {
			await undo();
			expect((await checkHistory([db.pool], history)).violations).toEqual([]);
		}
	}

	it("reports an acknowledged claim that was lost", async () => {
		const ack = history.ops.find(o => o.op === "claim" && o.status === 201)!;
		const id = (ack.body as any).id;
		const report = await tampered(async () => {
			const { rows } = await db.pool.query(`DELETE FROM claims WHERE id = $1 RETURNING *`, [id]);
			return async () => {
				const cols = Object.keys(rows[0]);
				await db.pool.query(
					`INSERT INTO claims (${cols.join(",")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(",")})`,
					cols.map(c => rows[0][c]),
				);
			};
		});
		expect(kinds(report)).toEqual(["ack-missing", "row-missing"]);
		expect(report.violations.every(v => v.id === id)).toBe(true);
	});

	it("reports two live claims of one order whose lifetimes overlap", async () => {
		// A released claim whose order was claimed again: move its release after the next claim's creation. Its
		// transaction moves whole (its events keeping their order), and a batch of the actor's group commit may hold
		// several releases (and no claim, for a transaction of releases only): every order released there and
		// claimed again later overlaps.
		const { rows } = await db.pool.query(
			`SELECT r.id AS release_id, r.tx_id
			   FROM outbox r JOIN outbox c ON c.event_type = 'ClaimCreated' AND c.payload->>'orderId' = r.payload->>'orderId'
			                             AND c.aggregate_id <> r.aggregate_id AND c.id > r.id
			  WHERE r.event_type = 'ClaimReleased'
			    AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.tx_id = r.tx_id AND x.event_type = 'ClaimCreated')
			  LIMIT 1`,
		);
		expect(rows).toHaveLength(1);
		const overlapping = await db.pool.query<{ order_id: string }>(
			`SELECT DISTINCT r.payload->>'orderId' AS order_id FROM outbox r
			  WHERE r.tx_id = $1 AND r.event_type = 'ClaimReleased'
			    AND EXISTS (SELECT 1 FROM outbox c WHERE c.event_type = 'ClaimCreated' AND c.payload->>'orderId' = r.payload->>'orderId'
			                                         AND c.aggregate_id <> r.aggregate_id AND c.id > r.id)`,
			[rows[0].tx_id],
		);
		const report = await tampered(async () => {
			await db.pool.query(`UPDATE outbox SET id = id + 1000000000 WHERE tx_id = $1`, [rows[0].tx_id]);
			return async () => void (await db.pool.query(`UPDATE outbox SET id = id - 1000000000 WHERE id > 1000000000`));
		});
		expect(kinds(report)).toEqual(["overlapping-claims"]);
		expect(report.violations.map(v => v.id).sort()).toEqual(overlapping.rows.map(r => r.order_id).sort());
		expect(overlapping.rows.length).toBeGreaterThan(0);
	});

	it("reports a second live claim added with its events", async () => {
		// A forged claim on a completed order: its row is released (the unique index allows that), but its
		// events say it was created while the settled claim was live, and released later.
		const { rows } = await db.pool.query(
			`SELECT o.id, o.claim_id, c.supply_id, c.amount::text, c.claimer_id FROM orders o JOIN claims c ON c.id = o.claim_id
			  WHERE o.status = 'completed' LIMIT 1`,
		);
		const o = rows[0];
		const forged = "00000000-0000-4000-8000-000000000001";
		const report = await tampered(async () => {
			const c = await db.pool.connect();
			try {
				await c.query("BEGIN");
				await c.query(
					`INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, status, idempotency_key, region, expires_at, released_at, version)
					 VALUES ($1,$2,$3,$4,$5,'released','forged','local', now(), now(), 2)`,
					[forged, o.id, o.claimer_id, o.supply_id, o.amount],
				);
				const snap = (status: string, version: number) =>
					JSON.stringify({ id: forged, orderId: o.id, supplyId: o.supply_id, amount: o.amount, status, version });
				// Created and released in one transaction, with no supply event: the balances never moved.
				await c.query(
					`INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, payload)
					 VALUES (gen_random_uuid(), 'claim', $1, 1, 'ClaimCreated', 'local', 'local', $2),
					        (gen_random_uuid(), 'claim', $1, 2, 'ClaimReleased', 'local', 'local', $3)`,
					[forged, snap("active", 1), snap("released", 2)],
				);
				await c.query("COMMIT");
			} finally {
				c.release();
			}
			return async () => {
				await db.pool.query(`DELETE FROM outbox WHERE aggregate_id = $1`, [forged]);
				await db.pool.query(`DELETE FROM claims WHERE id = $1`, [forged]);
			};
		});
		// The overlap, and the two events no supply change explains.
		expect(kinds(report)).toEqual(["orphan-event", "overlapping-claims"]);
		expect(report.violations.find(v => v.kind === "overlapping-claims")!.id).toBe(o.id);
		expect(report.violations.filter(v => v.kind === "orphan-event").map(v => v.id)).toEqual([forged, forged]);
	});

	it("reports a supply whose reserved differs from its events", async () => {
		const { rows } = await db.pool.query(`SELECT id FROM supplies WHERE amount - reserved - spent >= 0.001 LIMIT 1`);
		const id = rows[0].id;
		const report = await tampered(async () => {
			await db.pool.query(`UPDATE supplies SET reserved = reserved + 0.000000000000000001 WHERE id = $1`, [id]);
			return async () => void (await db.pool.query(`UPDATE supplies SET reserved = reserved - 0.000000000000000001 WHERE id = $1`, [id]));
		});
		expect(kinds(report)).toEqual(["supply-rebuild"]);
		expect(report.violations.map(v => v.id)).toEqual([id]);
	});

	it("reports a gap in an aggregate's event versions", async () => {
		// The middle event of an order that was claimed and completed.
		const { rows } = await db.pool.query(
			`SELECT * FROM outbox WHERE aggregate_type = 'order' AND event_type = 'OrderClaimed'
			    AND aggregate_id IN (SELECT id FROM orders WHERE status = 'completed') LIMIT 1`,
		);
		const e = rows[0];
		const report = await tampered(async () => {
			await db.pool.query(`DELETE FROM outbox WHERE id = $1`, [e.id]);
			return async () => {
				const cols = Object.keys(e);
				await db.pool.query(
					`INSERT INTO outbox (${cols.join(",")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(",")})`,
					cols.map(c => (c === "payload" ? JSON.stringify(e[c]) : e[c])),
				);
			};
		});
		expect(kinds(report)).toEqual(["version-gap"]);
		expect(report.violations.map(v => v.id)).toEqual([e.aggregate_id]);
	});

	it("reports a repeated event version", async () => {
		const { rows } = await db.pool.query(`SELECT * FROM outbox WHERE event_type = 'OrderCancelled' LIMIT 1`);
		const e = rows[0];
		const report = await tampered(async () => {
			await db.pool.query(
				`INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, payload, tx_id)
				 VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8)`,
				[e.aggregate_type, e.aggregate_id, e.aggregate_version, e.event_type, e.region, e.home_region, JSON.stringify(e.payload), e.tx_id],
			);
			return async () => void (await db.pool.query(`DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox)`));
		});
		expect(kinds(report)).toEqual(["version-gap"]);
		expect(report.violations.map(v => v.id)).toEqual([e.aggregate_id]);
	});

	it("reports an order whose amount is not the exact sum of its items", async () => {
		const { rows } = await db.pool.query(`SELECT id FROM orders WHERE status = 'cancelled' LIMIT 1`);
		const id = rows[0].id;
		let invariants: Awaited<ReturnType<typeof checkInvariants>>["violations"] = [];
		const report = await tampered(async () => {
			// One unit of 10^-18: a float comparison could not see it.
			await db.pool.query(`UPDATE orders SET amount = amount + 0.000000000000000001 WHERE id = $1`, [id]);
			invariants = (await checkInvariants(db.pool)).violations;
			return async () => void (await db.pool.query(`UPDATE orders SET amount = amount - 0.000000000000000001 WHERE id = $1`, [id]));
		});
		expect(kinds(report)).toEqual(["order-amount"]);
		expect(report.violations.map(v => v.id)).toEqual([id]);
		expect(invariants.map(v => [v.invariant, v.id])).toEqual([[6, id]]);
	});

	it("reads amounts stored as JSON numbers exactly, to the last of 18 decimals", async () => {
		// A writer in SQL (jsonb_build_object) stores numbers, not strings: still exact, still checked.
		const { rows } = await db.pool.query(`SELECT aggregate_id FROM outbox WHERE event_type = 'SupplyReserved' LIMIT 1`);
		const id = rows[0].aggregate_id;
		const asNumbers = (delta: string) =>
			db.pool.query(
				`UPDATE outbox SET payload = payload
				   || jsonb_build_object('amount', (payload->>'amount')::numeric, 'spent', (payload->>'spent')::numeric,
				                         'reserved', (payload->>'reserved')::numeric + $2::numeric)
				  WHERE aggregate_id = $1 AND aggregate_version = (SELECT max(aggregate_version) FROM outbox WHERE aggregate_id = $1)`,
				[id, delta],
			);
		const report = await tampered(async () => {
			await asNumbers("0");
			expect((await checkHistory([db.pool], history)).violations).toEqual([]);
			await asNumbers("0.000000000000000001");
			return async () => void (await asNumbers("-0.000000000000000001"));
		});
		expect(kinds(report)).toEqual(["supply-rebuild"]);
		expect(report.violations.map(v => v.id)).toEqual([id]);
	});

	it("reports an acknowledged release that the database does not show", async () => {
		const rel = history.ops.find(o => o.op === "release" && o.status === 200)!;
		const forgedHistory = [...history.ops.filter(o => o !== rel), { ...rel, claimId: (history.ops.find(o => o.op === "complete" && o.status === 200)!.claimId) }];
		const report = await checkHistory([db.pool], forgedHistory);
		expect(kinds(report)).toEqual(["ack-not-applied"]);
	});
});
