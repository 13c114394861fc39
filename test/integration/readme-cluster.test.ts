// The README's cluster, started exactly as the README shows it: separate processes through moleculer-runner,
// one node with api+supply+order and two claiming nodes, on real NATS, Redis and PostgreSQL. The whole flow
// runs through its REST API. (A strategy known only to nodes that load the claiming service once left the
// gateway node unable to route `claiming.command`: complete and cancel answered 503.)
import { randomBytes } from "node:crypto";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { NATS_URL, REDIS_URL } from "../helpers/env";
import { Client, item } from "../helpers/http";
import { NodeProcess } from "../helpers/node-process";
import { freePort } from "../helpers/ports";

let db: TestDatabase;
let observer: ServiceBroker;
let nodes: NodeProcess[] = [];
let api: string;

beforeAll(async () => {
	db = await createTestDatabase();
	const namespace = `t${randomBytes(4).toString("hex")}`;
	const port = await freePort();
	api = `http://127.0.0.1:${port}`;
	observer = new ServiceBroker({ namespace, nodeID: "observer", transporter: { type: "NATS", options: { url: NATS_URL } }, logger: false });
	await observer.start();
	const common = { namespace, natsUrl: NATS_URL, databaseUrl: db.url, redisUrl: REDIS_URL, env: { RATE_LIMIT: "100000" } };
	nodes = [
		new NodeProcess({ ...common, nodeID: "gateway", services: ["api", "supply", "order"], env: { ...common.env, PORT: String(port) } }),
		new NodeProcess({ ...common, nodeID: "claiming-1", services: ["claiming"] }),
		new NodeProcess({ ...common, nodeID: "claiming-2", services: ["claiming"] }),
	];
	// The README starts them one after the other; the first applies the migrations.
	for (const n of nodes) await n.start(observer);
}, 120_000);

afterAll(async () => {
	await Promise.all(nodes.map(n => n.kill()));
	await observer?.stop();
	await db?.drop();
});

describe("the README's cluster, as separate processes", () => {
	it("walks the whole flow: supply, order, claim, complete, cancel, release", async () => {
		const shopper = await Client.as(api, "alice");
		const buyer = await Client.as(api, "bob");
		const s = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "2.5" });
		expect(s.status, JSON.stringify(s.body)).toBe(201);

		const o1 = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1", 3), item("0.05", 1, "b")] });
		expect(o1.status).toBe(201);
		expect(o1.body.amount).toBe("0.35");
		const c1 = await shopper.post("/api/v1/claims", { orderId: o1.body.id, supplyId: s.body.id }, { "idempotency-key": "k1" });
		expect(c1.status, JSON.stringify(c1.body)).toBe(201);
		const done = await buyer.post(`/api/v1/orders/${o1.body.id}/complete`);
		expect(done.status, JSON.stringify(done.body)).toBe(200);
		expect(done.body.status).toBe("completed");

		const o2 = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.2")] });
		const cancelled = await buyer.post(`/api/v1/orders/${o2.body.id}/cancel`);
		expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
		expect(cancelled.body.status).toBe("cancelled");

		const o3 = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] });
		const c3 = await shopper.post("/api/v1/claims", { orderId: o3.body.id, supplyId: s.body.id }, { "idempotency-key": "k3" });
		expect(c3.status).toBe(201);
		const released = await shopper.post(`/api/v1/claims/${c3.body.id}/release`);
		expect(released.status, JSON.stringify(released.body)).toBe(200);
		expect(released.body.status).toBe("released");
		expect((await buyer.get(`/api/v1/orders/${o3.body.id}`)).body.status).toBe("open");

		const final = await shopper.get(`/api/v1/supplies/${s.body.id}`);
		expect(final.body).toMatchObject({ amount: "2.5", reserved: "0", spent: "0.35", available: "2.15" });
		expect((await checkInvariants(db.pool)).violations).toEqual([]);
	});
});
