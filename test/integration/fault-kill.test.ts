// Fault: a supply node is SIGKILLed with requests running on it (a crash, an OOM kill: no graceful
// stop, no DISCONNECT; its peers learn it is gone from missing heartbeats or their own timeouts).
// Mechanism: per-action retry policies (src/lib/fault-tolerance.ts). Reads (READ) are retried, and a
// retry can land on another node, so a user's read still ends 200. Writes (WRITE) are never retried,
// because the dead node may or may not have committed them: the user gets a 503 (outcome unknown) and
// the database never holds a create twice.
// The node that dies runs in a child process started like production (moleculer-runner); a PostgreSQL
// lock holds the requests in flight on both nodes, so the kill certainly hits running requests.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { NATS_URL } from "../helpers/env";
import { NodeProcess } from "../helpers/node-process";
import { metricValue, seesService, startNodes, type NodeSet } from "../helpers/nodes";
import { TimedClient, type TimedReply } from "../helpers/timed-http";

const READS = 8;
const WRITES = 8;
const CHILD_APP = "fault-kill-child"; // application_name of the child's PostgreSQL sessions
const RETRIES = "moleculer.request.retry.attempts.total";

let db: TestDatabase;
let nodes: NodeSet;
let child: NodeProcess;
let locker: pg.Client | undefined;

beforeAll(async () => {
	db = await createTestDatabase();
	const namespace = `t${randomBytes(4).toString("hex")}`;
	nodes = await startNodes({
		namespace,
		databaseUrl: db.url,
		env: { RATE_LIMIT: "100000" },
		nodes: [
			{ nodeID: "gw", services: ["api"] },
			{ nodeID: "supply-local", services: ["supply"] },
		],
	});
	const childDb = new URL(db.url);
	childDb.searchParams.set("application_name", CHILD_APP);
	child = new NodeProcess({
		nodeID: "supply-child",
		namespace,
		services: ["supply"],
		natsUrl: NATS_URL,
		databaseUrl: childDb.toString(),
	});
	// Started once both in-process brokers route to it.
	await child.start([nodes.broker("gw"), nodes.broker("supply-local")]);
}, 60_000);

afterAll(async () => {
	await locker?.query("ROLLBACK").catch(() => undefined);
	await locker?.end().catch(() => undefined);
	await child?.kill();
	await nodes?.stop().catch(err => console.error("stopping nodes:", err));
	await db?.drop();
});

/** Sessions waiting on the lock: by node, and the creates' statements among them. */
async function lockWaiters(): Promise<{ child: number; local: number; creates: number }> {
	const { rows } = await db.pool.query<{ child: number; local: number; creates: number }>(
		`SELECT count(*) FILTER (WHERE application_name = $1)::int AS child,
		        count(*) FILTER (WHERE application_name <> $1)::int AS local,
		        count(*) FILTER (WHERE query LIKE '%INSERT INTO supplies%')::int AS creates
		   FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
		[CHILD_APP],
	);
	return rows[0];
}

describe("a supply node killed with requests in flight", () => {
	it("retries the reads elsewhere and never retries (or duplicates) the writes", async () => {
		const gw = nodes.broker("gw");
		const local = nodes.broker("supply-local");
		const shopper = await TimedClient.as(nodes.apiUrls[0], "shopper");

		// Supplies to read, created while all is well (and never read, so no cache can answer for them).
		const existing = await Promise.all(Array.from({ length: READS }, () => shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" })));
		expect(existing.map(r => r.status)).toEqual(Array(READS).fill(201));
		const retriesBefore = {
			reads: metricValue(gw, RETRIES, { action: "supply.get" }) + metricValue(local, RETRIES, { action: "supply.find" }),
			writes: metricValue(gw, RETRIES, { action: "supply.create" }),
		};

		locker = new pg.Client({ connectionString: db.url });
		locker.on("error", () => undefined); // the database is dropped with FORCE at the end
		await locker.connect();
		await locker.query("BEGIN");
		await locker.query("LOCK TABLE supplies IN ACCESS EXCLUSIVE MODE");

		const amounts = Array.from({ length: WRITES }, (_, i) => `3.${String(i + 1).padStart(4, "0")}`);
		const reads = existing.map(s => shopper.get(`/api/v1/supplies/${s.body.id}`));
		const writes = amounts.map(amount => shopper.post("/api/v1/supplies", { asset: "ETH", amount }));

		// Every request is running on a node, and waits on PostgreSQL: each read in a statement of its own; the creates
		// (group commit) in one statement a node (CREATE_BATCH_CONCURRENCY), the others queued for the next one.
		await expect.poll(async () => {
			const w = await lockWaiters();
			return `${w.child + w.local - w.creates} reads, ${w.creates} create statements`;
		}, { timeout: 5000 }).toBe(`${READS} reads, 2 create statements`);
		const waiting = await lockWaiters();
		expect(waiting.child).toBeGreaterThan(0);
		expect(waiting.local).toBeGreaterThan(0);

		await child.kill();
		const killedAt = performance.now();
		// The stall ends at once: the survivor's requests complete, the dead node's are lost with it.
		await locker.query("ROLLBACK");

		const readReplies: TimedReply[] = await Promise.all(reads);
		const writeReplies: TimedReply[] = await Promise.all(writes);
		const endedAfterKill = Math.round(performance.now() - killedAt);
		const tally = (rs: TimedReply[]) =>
			rs.reduce<Record<string, number>>((a, r) => {
				const k = `${r.status}${r.body?.error?.code ? ` ${r.body.error.code}` : ""}`;
				a[k] = (a[k] ?? 0) + 1;
				return a;
			}, {});
		const retriesAfter = {
			reads: metricValue(gw, RETRIES, { action: "supply.get" }) + metricValue(local, RETRIES, { action: "supply.find" }),
			writes: metricValue(gw, RETRIES, { action: "supply.create" }),
		};
		console.log(
			`kill: ${waiting.child} requests waiting on the killed node, ${waiting.local} on the survivor; ` +
				`reads ${JSON.stringify(tally(readReplies))} (slowest ${Math.round(Math.max(...readReplies.map(r => r.ms)))} ms), ` +
				`writes ${JSON.stringify(tally(writeReplies))} (slowest ${Math.round(Math.max(...writeReplies.map(r => r.ms)))} ms), ` +
				`all ended ${endedAfterKill} ms after the kill; retry attempts: reads +${retriesAfter.reads - retriesBefore.reads}, ` +
				`writes +${retriesAfter.writes - retriesBefore.writes}`,
		);

		// Reads: every one answered, with the right supply; the ones caught on the dead node were retried.
		expect(readReplies.map(r => r.status)).toEqual(Array(READS).fill(200));
		expect(readReplies.map(r => r.body.id)).toEqual(existing.map(s => s.body.id));
		expect(retriesAfter.reads).toBeGreaterThan(retriesBefore.reads);

		// Writes: never retried. The ones on the survivor succeeded; the ones on the dead node are 503,
		// an unknown outcome the client must resolve (the contract: retry, or read back).
		expect(retriesAfter.writes).toBe(retriesBefore.writes);
		const created = writeReplies.filter(r => r.status === 201);
		const unknown = writeReplies.filter(r => r.status !== 201);
		expect(created.length).toBeGreaterThan(0);
		expect(unknown.length).toBeGreaterThan(0);
		for (const r of unknown) {
			expect(r.status).toBe(503);
			expect(["TIMEOUT", "SERVICE_UNAVAILABLE"]).toContain(r.body?.error?.code);
			expect(r.headers.get("retry-after")).toBe("1");
		}

		// The database: at most one supply per attempt, and every 201 is there.
		const { rows } = await db.pool.query<{ amount: string; n: number }>(
			"SELECT amount::text, count(*)::int AS n FROM supplies WHERE amount > 3 AND amount < 4 GROUP BY amount",
		);
		expect(rows.every(r => r.n === 1)).toBe(true);
		expect(rows.length).toBeGreaterThanOrEqual(created.length);
		expect(rows.length).toBeLessThanOrEqual(created.length + unknown.length);
		const ids = await db.pool.query("SELECT count(*)::int AS n FROM supplies WHERE id = ANY($1::uuid[])", [created.map(r => r.body.id)]);
		expect(ids.rows[0].n).toBe(created.length);
		console.log(`kill: ${rows.length} supplies in the database for ${created.length} 201s and ${unknown.length} unknown outcomes`);

		// The survivor serves alone from now on.
		await expect.poll(() => seesService(gw, "supply", "supply-child"), { timeout: 15_000 }).toBe(false);
		expect((await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "0.5" })).status).toBe(201);
		expect((await shopper.get(`/api/v1/supplies/${existing[0].body.id}`)).status).toBe(200);
	});
});
