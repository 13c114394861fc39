// Fault: PostgreSQL stalls (a transaction holds ACCESS EXCLUSIVE on `supplies`), so every supply.create
// blocks. Mechanism: the WRITE bulkhead of supply.create (src/lib/fault-tolerance.ts) admits
// `concurrency` running + `maxQueueSize` queued calls and refuses the rest at once, instead of letting
// them pile up on the pg pool until everything times out. A user sees the excess refused fast with
// 429 + Retry-After (the contract's status for "slow down"); every admitted request completes once the
// stall ends, and exactly the admitted requests created rows.
// A read caught in the same stall must still be answered within the gateway's budget for a request.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WRITE } from "../../src/lib/fault-tolerance";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { Client, type Reply } from "../helpers/http";
import { metricValue } from "../helpers/nodes";
import { TimedClient } from "../helpers/timed-http";

const ADMITTED = WRITE.bulkhead.concurrency + WRITE.bulkhead.maxQueueSize; // 16 + 128
const EXCESS = 56;
const FIRED = ADMITTED + EXCESS;

let region: Region & { db: TestDatabase };
const GATEWAY_BUDGET_MS = 8000; // services/api.service.ts: callOptions.timeout of /api/v1
const lockers: pg.Client[] = [];

/** A transaction holding ACCESS EXCLUSIVE on supplies: every read and write of the table waits. */
async function stallSupplies(): Promise<pg.Client> {
	const c = new pg.Client({ connectionString: region.db.url });
	c.on("error", () => undefined); // the database is dropped with FORCE at the end
	lockers.push(c);
	await c.connect();
	await c.query("BEGIN");
	await c.query("LOCK TABLE supplies IN ACCESS EXCLUSIVE MODE");
	return c;
}

beforeAll(async () => {
	// One node: the gateway calls supply.create locally, so the bulkhead (callee side) is on this broker.
	region = await startTestRegion({ nodes: [["api", "supply", "order", "claiming"]], env: { RATE_LIMIT: "100000" } });
});

afterAll(async () => {
	// Whatever happened, the locks go first, or the brokers' pools would wait on them while stopping.
	for (const c of lockers) {
		await c.query("ROLLBACK").catch(() => undefined);
		await c.end().catch(() => undefined);
	}
	await region?.stop();
});

describe("a PostgreSQL stall behind the supply.create bulkhead", () => {
	it("refuses the excess fast with 429 and completes every admitted request", async () => {
		const broker = region.brokers[0];
		const shopper = await Client.as(region.apiUrl, "shopper");
		const before = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(before.status).toBe(201);

		const locker = await stallSupplies();

		const started = performance.now();
		const done: { reply: Reply; ms: number }[] = [];
		const all = Array.from({ length: FIRED }, (_, i) =>
			shopper
				.post("/api/v1/supplies", { asset: "ETH", amount: `1.${String(i + 1).padStart(4, "0")}` })
				.then(reply => {
					const r = { reply, ms: performance.now() - started };
					done.push(r);
					return r;
				}),
		);

		// While the lock is held: the bulkhead is full (16 running, 128 queued, as Moleculer's own metrics
		// say) and the excess has already been answered.
		const labels = { action: "supply.create" };
		await expect.poll(() => metricValue(broker, "moleculer.request.bulkhead.queue.size", labels), { timeout: 5000 }).toBe(
			WRITE.bulkhead.maxQueueSize,
		);
		expect(metricValue(broker, "moleculer.request.bulkhead.inflight", labels)).toBe(WRITE.bulkhead.concurrency);
		await expect.poll(() => done.length, { timeout: 3000 }).toBe(EXCESS);
		const refused = [...done];
		const stallMs = performance.now() - started;

		// The stall ends well inside the 5 s WRITE timeout (and the pg pool's 5 s connect timeout).
		await locker.query("ROLLBACK");
		const results = await Promise.all(all);

		const statuses: Record<number, number> = {};
		for (const r of results) statuses[r.reply.status] = (statuses[r.reply.status] ?? 0) + 1;
		const slowestRefusal = Math.max(...refused.map(r => r.ms));
		console.log(
			`bulkhead: ${FIRED} fired, statuses ${JSON.stringify(statuses)}, stall ${Math.round(stallMs)} ms, ` +
				`slowest 429 after ${Math.round(slowestRefusal)} ms, sample 429 body ${JSON.stringify(refused[0]?.reply.body)}`,
		);

		// The excess: refused, fast, with the contract's error body and Retry-After.
		expect(refused.map(r => r.reply.status)).toEqual(Array(EXCESS).fill(429));
		expect(slowestRefusal).toBeLessThan(2000);
		for (const { reply } of refused) {
			expect(reply.headers.get("retry-after")).toMatch(/^\d+$/);
			expect(reply.body).toMatchObject({ error: { code: "QUEUE_FULL", message: expect.any(String), requestId: expect.any(String) } });
			// Nothing internal (node ids, action names) in what the client sees.
			expect(JSON.stringify(reply.body)).not.toContain(broker.nodeID);
			expect(JSON.stringify(reply.body)).not.toContain("supply.create");
		}
		// Everything admitted finished, and created exactly one row each.
		expect(statuses).toEqual({ 201: ADMITTED, 429: EXCESS });
		const { rows } = await region.db.pool.query<{ n: number; distinct_amounts: number }>(
			"SELECT count(*)::int AS n, count(DISTINCT amount)::int AS distinct_amounts FROM supplies WHERE amount > 1",
		);
		expect(rows[0]).toEqual({ n: ADMITTED, distinct_amounts: ADMITTED });
		// And the 201s are exactly the rows: every id answered exists.
		const ids = results.filter(r => r.reply.status === 201).map(r => r.reply.body.id);
		const found = await region.db.pool.query("SELECT count(*)::int AS n FROM supplies WHERE id = ANY($1::uuid[])", [ids]);
		expect(found.rows[0].n).toBe(ADMITTED);

		// The bulkhead drained: nothing left running or queued, and new requests are admitted again.
		expect(metricValue(broker, "moleculer.request.bulkhead.queue.size", labels)).toBe(0);
		expect(metricValue(broker, "moleculer.request.bulkhead.inflight", labels)).toBe(0);
		expect((await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "0.5" })).status).toBe(201);
	});

	it("answers a read caught in the stall within the gateway's budget", async () => {
		// READ (fault-tolerance.ts): short timeout, retried. A never-read supply: no cache, no stale copy.
		const shopper = await TimedClient.as(region.apiUrl, "reader");
		const s = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(s.status).toBe(201);
		const locker = await stallSupplies();
		try {
			const r = await shopper.get(`/api/v1/supplies/${s.body.id}`);
			const { rows } = await region.db.pool.query(
				"SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
			);
			console.log(`stalled read: ${r.status} ${r.body?.error?.code} after ${Math.round(r.ms)} ms; ${rows[0].n} queries still waiting on the lock`);
			expect(r.status).toBe(503);
			expect(r.body.error.code).toBe("TIMEOUT");
			expect(r.headers.get("retry-after")).toBe("1");
			expect(r.ms, "the read outlived the request budget").toBeLessThan(GATEWAY_BUDGET_MS + 1000);
		} finally {
			await locker.query("ROLLBACK");
		}
	});
});
