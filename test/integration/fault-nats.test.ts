// Fault: the NATS server dies (SIGKILL) under a running region and comes back on the same address.
// Mechanism: Moleculer's NATS transporter reconnects forever (maxReconnectAttempts -1); calls that need
// another node meanwhile end at the gateway's budget (or sooner, once heartbeats time out and the peers
// are dropped) as 503 with Retry-After: an unknown outcome, never a hang or a crash. When NATS is back
// the same broker objects rediscover each other and serve again, without any restart.
// A private nats-server on a free port: the machine's shared NATS is never touched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { item } from "../helpers/http";
import { NatsServer } from "../helpers/nats-server";
import { startNodes, type NodeSet } from "../helpers/nodes";
import { freePort } from "../helpers/redis-server";
import { TimedClient } from "../helpers/timed-http";

const GATEWAY_BUDGET_MS = 8000; // services/api.service.ts: callOptions.timeout of /api/v1

let db: TestDatabase;
let nats: NatsServer;
let nodes: NodeSet;

beforeAll(async () => {
	db = await createTestDatabase();
	nats = new NatsServer(await freePort());
	await nats.start();
	nodes = await startNodes({
		databaseUrl: db.url,
		natsUrl: nats.url,
		env: { RATE_LIMIT: "100000" },
		nodes: [
			{ nodeID: "gw", services: ["api"] },
			{ nodeID: "core", services: ["supply", "order"] },
			{ nodeID: "claims", services: ["claiming"] },
		],
	});
}, 60_000);

afterAll(async () => {
	// A NATS client flushes on disconnect: with the server down, stopping could wait forever.
	if (nats && !nats.running) await nats.start().catch(err => console.error("restarting nats for cleanup:", err));
	await nodes?.stop().catch(err => console.error("stopping nodes:", err));
	await nats?.kill();
	await db?.drop();
});

describe("a NATS restart", () => {
	it("answers 503 while NATS is down and serves again with the same brokers when it returns", async () => {
		const gwUrl = nodes.apiUrls[0];
		const shopper = await TimedClient.as(gwUrl, "shopper");
		const buyer = await TimedClient.as(gwUrl, "buyer");
		const anon = new TimedClient(gwUrl, "");
		const brokersBefore = nodes.nodes.map(n => n.broker);
		const instancesBefore = brokersBefore.map(b => b.instanceID);

		/** supply → order → claim → read: every step crosses NATS (the gateway runs no other service). */
		const flow = async (key: string) => {
			const s = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
			const o = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] });
			if (s.status !== 201 || o.status !== 201) return [s.status, o.status];
			const c = await shopper.post("/api/v1/claims", { orderId: o.body.id, supplyId: s.body.id }, { "idempotency-key": key });
			const g = await buyer.get(`/api/v1/orders/${o.body.id}`);
			return [s.status, o.status, c.status, g.status, g.body?.status];
		};
		expect(await flow("before")).toEqual([201, 201, 201, 200, "claimed"]);
		// An open order and a supply to claim it with during the outage.
		const supply = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		const order = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.2")] })).body;

		await nats.kill();
		const killedAt = performance.now();

		// Everything that needs another node, at once; and the gateway's own endpoints.
		const [createSupply, createOrder, readSupply, claim, live] = await Promise.all([
			shopper.post("/api/v1/supplies", { asset: "ETH", amount: "7" }),
			buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.7")] }),
			shopper.get(`/api/v1/supplies/${supply.id}`),
			shopper.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "idempotency-key": "during-outage" }),
			anon.get("/health/live"),
		]);
		// Asked once the outage has lasted the whole gateway budget: no excuse of "not noticed yet".
		const ready = await anon.get("/health/ready");
		const remote = { createSupply, createOrder, readSupply, claim };
		console.log(
			"nats down:",
			JSON.stringify(Object.fromEntries(Object.entries(remote).map(([k, r]) => [k, `${r.status} ${r.body?.error?.code} ${Math.round(r.ms)}ms`]))),
			`live ${live.status}, ready ${ready.status} ${JSON.stringify(ready.body?.error?.details ?? ready.body)}`,
		);

		// The process is alive and says so; every remote call is a 503 with Retry-After, within the budget.
		expect(live.status).toBe(200);
		for (const [name, r] of Object.entries(remote)) {
			expect(r.status, name).toBe(503);
			expect(["TIMEOUT", "SERVICE_UNAVAILABLE"], name).toContain(r.body?.error?.code);
			expect(r.headers.get("retry-after"), name).toBe("1");
		}
		// Soft from here: a failure is reported, and the recovery below is still checked.
		// No answer takes longer than the gateway's budget for a whole request, retries included.
		for (const [name, r] of Object.entries(remote))
			expect.soft(r.ms, `${name} took ${Math.round(r.ms)} ms`).toBeLessThan(GATEWAY_BUDGET_MS + 1000);
		// Readiness tells an operator (and a load balancer) that this gateway cannot serve.
		expect.soft(ready.status, "readiness during the NATS outage").toBe(503);
		const health: any = await nodes.nodes[0].broker.call("api.health");
		expect.soft(health.checks.transporter, "transporter check during the NATS outage").toBe("down");

		// NATS returns on the same port; the same brokers serve the whole flow again.
		await nats.start();
		const restartedAt = performance.now();
		let attempts = 0;
		await expect
			.poll(async () => (await flow(`after-${++attempts}`)).join(" "), { timeout: 30_000, interval: 250 })
			.toBe("201 201 201 200 claimed");
		console.log(
			`nats: down ${Math.round(restartedAt - killedAt)} ms; flow served again ${Math.round(performance.now() - restartedAt)} ms after the restart (${attempts} polls)`,
		);
		expect(nodes.nodes.map(n => n.broker)).toEqual(brokersBefore);
		expect(nodes.nodes.map(n => n.broker.instanceID)).toEqual(instancesBefore);
		expect(nodes.nodes.every(n => n.broker.started)).toBe(true);
		await expect.poll(async () => (await anon.get("/health/ready")).status, { timeout: 10_000 }).toBe(200);

		// The claim sent during the outage had an unknown outcome: retried with its key, it resolves to one claim.
		const retried = await shopper.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "idempotency-key": "during-outage" });
		expect(retried.status).toBe(201);
		const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM claims WHERE order_id = $1", [order.id]);
		expect(rows[0].n).toBe(1);
		// The writes answered 503 during the outage had unknown outcomes too: each happened at most once.
		const outageWrites = await db.pool.query<{ supplies: number; orders: number }>(
			`SELECT (SELECT count(*)::int FROM supplies WHERE amount = 7) AS supplies,
			        (SELECT count(*)::int FROM orders WHERE amount = 0.7) AS orders`,
		);
		console.log(`nats: writes answered 503 during the outage that happened anyway: ${JSON.stringify(outageWrites.rows[0])}`);
		expect(outageWrites.rows[0].supplies).toBeLessThanOrEqual(1);
		expect(outageWrites.rows[0].orders).toBeLessThanOrEqual(1);
		const report = await checkInvariants(db.pool);
		expect(report.violations).toEqual([]);

		// The outage leaves nothing behind: the gateway has no request still "in flight", so a deploy
		// after the outage stops it at once instead of waiting tracking.shutdownTimeout (5 s).
		const gw = nodes.node("gw");
		const tracked: { action?: { name: string }; nodeID?: string }[] = (gw.broker as any)._trackedContexts;
		const leaked = tracked.length;
		if (leaked) console.log("nats: still tracked on the gateway:", tracked.map(c => `${c.action?.name}@${c.nodeID}`));
		const stopStarted = performance.now();
		await gw.stop();
		const stopMs = performance.now() - stopStarted;
		console.log(`nats: gateway tracked ${leaked} context(s) when idle; its graceful stop took ${Math.round(stopMs)} ms`);
		expect.soft(leaked, "contexts the idle gateway still tracks").toBe(0);
		expect(stopMs).toBeLessThan(2000);
	});
});
