// Fault: one claiming node loses its database (a TCP proxy between it and PostgreSQL cuts every
// connection and refuses new ones), while the other claiming node and PostgreSQL stay healthy.
// Mechanism: the broker-level circuit breaker (moleculer.config.ts) with the per-action thresholds of
// src/lib/fault-tolerance.ts. A claim is routed by its order id (AvailableShard on claiming.claim and
// on the actor's inbox, claiming.command), so it lands on the node of its order's mailbox and runs its
// command there. When that node's database is gone, the breaker of its own actor endpoint opens (in its
// own view: the call is local), its ring leaves itself out, and its orders' commands move to the healthy
// node; after BREAKER_HALF_OPEN_MS a probe goes through, and once the node is healed the breaker closes
// and its orders come back. Users see claims succeed without waiting for the broken node; an operator
// sees Moleculer's breaker store, events and metrics; the books stay exact.
import { createHash } from "node:crypto";
import type { Context, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { PG_ADMIN_URL } from "../helpers/env";
import { item } from "../helpers/http";
import { breakerState, metricValue, startNodes, type NodeSet } from "../helpers/nodes";
import { TcpProxy } from "../helpers/tcp-proxy";
import { TimedClient, type TimedReply } from "../helpers/timed-http";

const HEALTHY = "claiming-a";
const FLAKY = "claiming-b";
const HALF_OPEN_MS = 2000;
const ORDERS = 80;

let db: TestDatabase;
let proxy: TcpProxy;
let nodes: NodeSet;
/** `$circuit-breaker.*` events as each node received them. */
const events: { at: string; from: string; event: string; nodeID: string; action: string }[] = [];
/** Which claiming node's mailbox ran each order command (a spy on the real mailbox). */
const routed: { node: string; orderId: string; at: number }[] = [];

/** The claiming node the Shard strategy picks for a key: Moleculer's consistent hash ring (vnodes 10). */
function shardOwner(key: string, nodeIDs: string[]): string {
	const ids = [...nodeIDs].sort();
	const vnodes = 10;
	const slice = 2 ** 32 / (ids.length * vnodes);
	const ring: { key: number; nodeID: string }[] = [];
	for (let j = 0; j < vnodes; j++) for (const nodeID of ids) ring.push({ key: Math.floor(slice * (ring.length + 1)), nodeID });
	ring[ring.length - 1].key = 2 ** 32;
	const hash = parseInt(createHash("md5").update(key).digest("hex").slice(0, 8), 16);
	return ring.find(r => hash <= r.key)!.nodeID;
}

beforeAll(async () => {
	db = await createTestDatabase();
	const pgUrl = new URL(PG_ADMIN_URL);
	proxy = new TcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
	await proxy.start();
	nodes = await startNodes({
		databaseUrl: db.url,
		env: {
			RATE_LIMIT: "100000",
			BREAKER_MIN_REQUESTS: "3",
			BREAKER_WINDOW_SEC: "10",
			BREAKER_HALF_OPEN_MS: String(HALF_OPEN_MS),
		},
		nodes: [
			{ nodeID: "gw", services: ["api", "supply", "order"] },
			{ nodeID: HEALTHY, services: ["claiming"] },
			{ nodeID: FLAKY, services: ["claiming"], databaseUrl: proxy.wrap(db.url) },
		],
		beforeStart(broker, spec) {
			broker.createService({
				name: "breaker-watch",
				events: {
					"$circuit-breaker.*"(ctx: Context<{ nodeID: string; action: string }>) {
						events.push({ at: spec.nodeID, from: ctx.nodeID!, event: ctx.eventName!, nodeID: ctx.params.nodeID, action: ctx.params.action });
					},
				},
			} as ServiceSchema);
		},
	});
	for (const id of [HEALTHY, FLAKY]) {
		const svc = nodes.broker(id).getLocalService("claiming") as any;
		const run = svc.mailbox.run.bind(svc.mailbox);
		svc.mailbox.run = (key: string, task: () => Promise<unknown>, deadline?: number) => {
			routed.push({ node: id, orderId: key, at: performance.now() });
			return run(key, task, deadline);
		};
	}
}, 60_000);

afterAll(async () => {
	proxy?.heal();
	await nodes?.stop().catch(err => console.error("stopping nodes:", err));
	await proxy?.stop();
	await db?.drop();
});

/** Every broker's breaker states for the claiming actions, as an operator would dump them. */
function breakerDump(): string {
	return nodes.nodes
		.map(n => {
			const store = (n.broker as any).CircuitBreakerStore as Map<string, { state: string; failures: number; count: number }>;
			const items = [...store.entries()].filter(([k]) => k.includes("claiming.")).map(([k, v]) => `${k}=${v.state}(${v.failures}/${v.count})`);
			return `${n.spec.nodeID}: ${items.join(", ")}`;
		})
		.join(" | ");
}

describe("a claiming node that loses its database", () => {
	it("is taken out by its breaker, its orders move to the healthy node, and it comes back when healed", async () => {
		const gwUrl = nodes.apiUrls[0];
		const gw = nodes.broker("gw");
		const healthy = nodes.broker(HEALTHY);
		const shopper = await TimedClient.as(gwUrl, "shopper");
		const buyer = await TimedClient.as(gwUrl, "buyer");
		const supply = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "100" })).body;
		const orders: { id: string; owner: string }[] = [];
		for (let i = 0; i < ORDERS; i++) {
			const o = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] });
			expect(o.status).toBe(201);
			orders.push({ id: o.body.id, owner: shardOwner(o.body.id, [HEALTHY, FLAKY]) });
		}
		const pool: Record<string, { id: string; owner: string }[]> = { [HEALTHY]: orders.filter(o => o.owner === HEALTHY), [FLAKY]: orders.filter(o => o.owner === FLAKY) };
		expect(pool[HEALTHY].length).toBeGreaterThan(10);
		expect(pool[FLAKY].length).toBeGreaterThan(10);
		const next = (owner: string) => pool[owner].shift()!;
		// One Idempotency-Key per order: a claim that failed is retried later with the same key.
		const claim = (orderId: string) =>
			shopper.post("/api/v1/claims", { orderId, supplyId: supply.id }, { "idempotency-key": `k-${orderId}` });
		const claimed = new Set<string>();
		const failed = new Set<string>();
		const record = (orderId: string, r: TimedReply) => (r.status === 201 ? (claimed.add(orderId), failed.delete(orderId)) : failed.add(orderId));

		// 1. Healthy: each order's commands run on the node the shard ring names.
		for (const owner of [HEALTHY, FLAKY, HEALTHY, FLAKY]) {
			const o = next(owner);
			const r = await claim(o.id);
			expect(r.status).toBe(201);
			record(o.id, r);
			expect(routed.filter(x => x.orderId === o.id).map(x => x.node)).toEqual([owner]);
		}

		// 2. The flaky node's database link breaks. Claims for its orders still reach it (they are routed by
		//    order id), and fail until the breaker of its own order actor (claiming.command, a local call)
		//    opens: its shard ring then leaves it out, and it sends its orders' commands to the healthy node.
		proxy.break();
		const tripStatuses: Record<string, number> = {};
		const flaky = nodes.broker(FLAKY);
		const actorOpen = () => breakerState(flaky, FLAKY, "claiming.command") === "open";
		let tripAttempts = 0;
		let slowestTrip = 0;
		while (!actorOpen() && tripAttempts < 20) {
			const o = next(FLAKY);
			const r = await claim(o.id);
			record(o.id, r);
			tripAttempts++;
			slowestTrip = Math.max(slowestTrip, r.ms);
			if (r.status !== 201) expect(r.headers.get("retry-after")).toBe("1");
			const k = `${r.status} ${r.body?.error?.code ?? ""}`.trim();
			tripStatuses[k] = (tripStatuses[k] ?? 0) + 1;
		}
		console.log(
			`breaker: open after ${tripAttempts} claims for the broken node's orders: ${JSON.stringify(tripStatuses)}; ` +
				`slowest ${Math.round(slowestTrip)} ms; proxy refused ${proxy.refused} connections`,
		);
		expect(actorOpen()).toBe(true);
		// A database outage is the service's problem, not the user's: 503 + Retry-After (outcome: nothing
		// was created, the key can be retried), answered fast, not a 500 and not a hang.
		expect(Object.keys(tripStatuses).every(k => k === "201" || k === "503 SERVICE_UNAVAILABLE")).toBe(true);
		expect(slowestTrip).toBeLessThan(2000);
		const opened = events.filter(e => e.event === "$circuit-breaker.opened" && e.nodeID === FLAKY);
		expect(opened.some(e => e.from === FLAKY && e.action === "claiming.command")).toBe(true);
		expect(metricValue(flaky, "moleculer.circuit-breaker.opened.total", { affectedNodeID: FLAKY, action: "claiming.command" })).toBeGreaterThan(0);
		expect(metricValue(flaky, "moleculer.circuit-breaker.opened.active", { affectedNodeID: FLAKY, action: "claiming.command" })).toBe(1);

		// 3. While the breaker is open, claims succeed without the broken node's database: its orders'
		//    commands run on the healthy node (the balancer skips an open endpoint; the ring does without it).
		const batch = [...Array(4)].flatMap(() => [next(FLAKY), next(HEALTHY)]);
		const routedBefore = routed.length;
		const replies = await Promise.all(batch.map(o => claim(o.id)));
		batch.forEach((o, i) => record(o.id, replies[i]));
		const during = replies.map((r, i) => `${batch[i].owner === FLAKY ? "flaky-owned" : "healthy-owned"} ${r.status} ${r.body?.error?.code ?? ""}`.trim());
		console.log("breaker: claims while open:", JSON.stringify(during.reduce<Record<string, number>>((a, k) => ((a[k] = (a[k] ?? 0) + 1), a), {})));
		expect.soft(replies.map(r => r.status), `claims while the breaker is open: ${JSON.stringify(during)}`).toEqual(batch.map(() => 201));
		console.log(`breaker: states after the batch: ${breakerDump()}`);
		expect(routed.slice(routedBefore).every(x => x.node === HEALTHY)).toBe(true);
		// The healthy node itself must stay in service: its own claiming.claim endpoint must not trip.
		expect.soft(breakerState(gw, HEALTHY, "claiming.claim") ?? "close", "the gateway's breaker for the healthy node's claiming.claim").toBe("close");

		// 4. Healed: after the half-open time a probe reaches the node's actor, succeeds, and its breaker closes.
		proxy.heal();
		const healedAt = performance.now();
		let probes = 0;
		await expect
			.poll(
				async () => {
					// Retry a claim that failed during the outage (same key) if one is left, else a new one.
					const id = [...failed].find(f => orders.find(o => o.id === f)!.owner === FLAKY) ?? next(FLAKY).id;
					record(id, await claim(id));
					probes++;
					return breakerState(flaky, FLAKY, "claiming.command");
				},
				{ timeout: 20_000, interval: 200 },
			)
			.toBe("close");
		console.log(`breaker: closed ${Math.round(performance.now() - healedAt)} ms after the heal (${probes} claims)`);
		const cmdEvents = events
			.filter(e => e.from === FLAKY && e.nodeID === FLAKY && e.action === "claiming.command")
			.map(e => e.event.replace("$circuit-breaker.", ""));
		// The flaky node's view of its own actor: opened, then half-opened, and finally closed.
		expect(cmdEvents[0]).toBe("opened");
		expect(cmdEvents).toContain("half-opened");
		expect(cmdEvents.at(-1)).toBe("closed");
		expect(metricValue(flaky, "moleculer.circuit-breaker.opened.active", { affectedNodeID: FLAKY, action: "claiming.command" })).toBe(0);
		// The healed node runs commands again: its own orders come back to it.
		const back = next(FLAKY);
		const afterHeal = routed.length;
		const backReply = await claim(back.id);
		record(back.id, backReply);
		expect(backReply.status).toBe(201);
		expect(routed.slice(afterHeal).map(x => x.node)).toEqual([FLAKY]);

		// 5. Every claim that failed during the outage, retried with its key, now succeeds; the books are exact.
		for (const id of [...failed]) {
			const r = await claim(id);
			expect(r.status, JSON.stringify(r.body)).toBe(201);
			record(id, r);
		}
		const report = await checkInvariants(db.pool);
		console.log("breaker: invariant check:", JSON.stringify(report.counts), `violations: ${report.violations.length}`);
		expect(report.violations).toEqual([]);
		expect(report.counts.active).toBe(claimed.size);
		const s = await db.pool.query("SELECT reserved::text FROM supplies WHERE id = $1", [supply.id]);
		expect(Number(s.rows[0].reserved)).toBeCloseTo(claimed.size * 0.1, 10);
	});
});
