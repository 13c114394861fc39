// Fault: a supply node is stopped (a deploy, a scale-down) while requests are running on it.
// Mechanism: graceful stop (moleculer.config.ts): the node first tells its peers it has no services
// (registry.stopDelay), so new requests go elsewhere, then waits for its in-flight requests
// (tracking.shutdownTimeout) before its services and its database pool stop. A user sees no failure:
// the requests caught on the stopping node finish 201, and requests sent meanwhile are served by the
// other node. A PostgreSQL lock holds the requests in flight, so "in flight during stop" is certain.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { Client, type Reply } from "../helpers/http";
import { seesService, startNodes, type NodeSet } from "../helpers/nodes";

const IN_FLIGHT = 8; // round-robin: half on each supply node

let db: TestDatabase;
let nodes: NodeSet;
let locker: pg.Client | undefined;
/** Which node ran each supply.create (a spy on the service's group commit). */
const ranOn: { node: string; amount: string; at: number }[] = [];

beforeAll(async () => {
	db = await createTestDatabase();
	nodes = await startNodes({
		databaseUrl: db.url,
		env: { RATE_LIMIT: "100000" },
		nodes: [
			{ nodeID: "gw", services: ["api"] },
			{ nodeID: "supply-x", services: ["supply"] },
			{ nodeID: "supply-y", services: ["supply"] },
		],
	});
	for (const id of ["supply-x", "supply-y"]) {
		// Creates that meet on a node leave in one statement (group commit, at most CREATE_BATCH_CONCURRENCY of them
		// in flight; the others wait in the node), so each service's batcher notes which node took each supply.
		const svc = nodes.broker(id).getLocalService("supply") as unknown as { creates: { submit(item: { amount: string }, deadline?: number): Promise<unknown> } };
		const submit = svc.creates.submit.bind(svc.creates);
		svc.creates.submit = (item, deadline) => {
			ranOn.push({ node: id, amount: item.amount, at: performance.now() });
			return submit(item, deadline);
		};
	}
}, 60_000);

afterAll(async () => {
	await locker?.query("ROLLBACK").catch(() => undefined);
	await locker?.end().catch(() => undefined);
	await nodes?.stop().catch(err => console.error("stopping nodes:", err));
	await db?.drop();
});

describe("a supply node stopped with requests in flight", () => {
	it("finishes its in-flight requests and hands new ones to the other node", async () => {
		const gw = nodes.broker("gw");
		const x = nodes.node("supply-x");
		const shopper = await Client.as(nodes.apiUrls[0], "shopper");
		let n = 0;
		const create = (tag: string) => {
			const amount = `2.${String(++n).padStart(4, "0")}`;
			return shopper.post("/api/v1/supplies", { asset: "ETH", amount }).then(reply => ({ tag, amount, reply }));
		};

		// Both nodes serve before the stop.
		const warm = await Promise.all([create("warm"), create("warm")]);
		expect(warm.map(w => w.reply.status)).toEqual([201, 201]);
		expect(new Set(ranOn.map(r => r.node))).toEqual(new Set(["supply-x", "supply-y"]));
		ranOn.length = 0;

		locker = new pg.Client({ connectionString: db.url });
		locker.on("error", () => undefined); // the database is dropped with FORCE at the end
		await locker.connect();
		await locker.query("BEGIN");
		await locker.query("LOCK TABLE supplies IN ACCESS EXCLUSIVE MODE");

		const caught = Array.from({ length: IN_FLIGHT }, () => create("in-flight"));
		await expect.poll(() => ranOn.length, { timeout: 5000 }).toBe(IN_FLIGHT);
		const onX = ranOn.filter(r => r.node === "supply-x").map(r => r.amount);
		expect(onX.length).toBe(IN_FLIGHT / 2);

		// Stop X now, while half the requests are blocked on it.
		const stopStarted = performance.now();
		let stopResolvedAt = -1;
		const stopping = x.stop().then(() => {
			stopResolvedAt = performance.now();
		});

		// Keep sending while X stops: a steady stream, as real traffic would be.
		const during: Promise<{ tag: string; amount: string; reply: Reply }>[] = [];
		let sawGone = -1;
		const stream = (async () => {
			for (let i = 0; i < 10; i++) {
				if (sawGone < 0 && !seesService(gw, "supply", "supply-x")) sawGone = performance.now();
				during.push(create(sawGone < 0 ? "during-stop" : "after-x-left"));
				await new Promise(r => setTimeout(r, 40));
			}
		})();
		// The gateway hears that X left (the empty INFO of the stop), and X waits for its requests.
		await expect.poll(() => seesService(gw, "supply", "supply-x"), { timeout: 2000, interval: 10 }).toBe(false);
		await expect.poll(() => (x.broker as any).stopping, { timeout: 2000, interval: 10 }).toBe(true);
		await stream;
		expect(stopResolvedAt).toBe(-1);

		// End the stall, well inside tracking.shutdownTimeout (5 s).
		await locker.query("ROLLBACK");
		const releasedAt = performance.now();
		const results = [...(await Promise.all(caught)), ...(await Promise.all(during))];
		await stopping;
		const stopMs = performance.now() - stopStarted;

		const tally: Record<string, number> = {};
		for (const r of results) tally[`${r.tag} ${r.reply.status}`] = (tally[`${r.tag} ${r.reply.status}`] ?? 0) + 1;
		const servedBy = (amount: string) => ranOn.filter(r => Number(r.amount) === Number(amount)).map(r => r.node);
		const afterLeft = results.filter(r => r.tag === "after-x-left");
		console.log(
			`shutdown: stop took ${Math.round(stopMs)} ms, X left the gateway's registry after ${Math.round(sawGone - stopStarted)} ms; ` +
				`${JSON.stringify(tally)}; X ran ${onX.length} caught requests; after X left: ` +
				JSON.stringify(afterLeft.map(r => servedBy(r.amount)).flat().reduce<Record<string, number>>((a, id) => ((a[id] = (a[id] ?? 0) + 1), a), {})),
		);

		// Every request, caught on X or sent during the stop, succeeded.
		expect(results.map(r => r.reply.status)).toEqual(results.map(() => 201));
		// The caught ones really ran on X, and finished there (no retry elsewhere: a create is not retried).
		for (const amount of onX) expect(servedBy(amount)).toEqual(["supply-x"]);
		// Requests sent once the gateway knew X was leaving went to Y only.
		expect(afterLeft.length).toBeGreaterThan(0);
		for (const r of afterLeft) expect(servedBy(r.amount)).toEqual(["supply-y"]);
		// X waited for its requests: the stop ended after the stall did, not before, and not by timeout.
		expect(stopResolvedAt).toBeGreaterThan(releasedAt);
		expect(stopMs).toBeLessThan(5000);

		// One row per 201, nothing lost, nothing twice.
		const { rows } = await db.pool.query<{ n: number; d: number }>(
			"SELECT count(*)::int AS n, count(DISTINCT amount)::int AS d FROM supplies WHERE amount > 2 AND amount < 3",
		);
		expect(rows[0]).toEqual({ n: results.length + warm.length, d: results.length + warm.length });

		// Y alone keeps serving.
		expect((await create("after")).reply.status).toBe(201);
	});
});
