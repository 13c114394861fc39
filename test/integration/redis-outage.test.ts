// Redis dies mid-run: reads and writes keep being answered (uncached), readiness says so, nothing
// crashes, and the cache comes back when Redis does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegion, type Region } from "../helpers/cluster";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { Client, item } from "../helpers/http";
import { freePort, RedisServer } from "../helpers/redis-server";

let db: TestDatabase;
let redis: RedisServer;
let region: Region;

beforeAll(async () => {
	db = await createTestDatabase();
	redis = new RedisServer(await freePort());
	await redis.start();
	region = await startRegion({ databaseUrl: db.url, redisUrl: redis.url, nodes: [["api", "supply", "order", "claiming"]] });
});

afterAll(async () => {
	await region?.stop();
	await redis?.kill();
	await db?.drop();
});

describe("a Redis outage", () => {
	it("degrades to uncached reads and keeps writes working", async () => {
		const shopper = await Client.as(region.apiUrl, "shopper");
		const buyer = await Client.as(region.apiUrl, "buyer");
		const anon = new Client(region.apiUrl);
		const cacher = region.brokers[0].cacher as any;
		await expect.poll(() => cacher.connected).toBe(true);

		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "5" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		// Warm the cache: the second read is a hit.
		await buyer.get(`/api/v1/orders/${o.id}`);
		expect((await cacher.client.keys("*")).length).toBeGreaterThan(0);

		await redis.kill();
		await expect.poll(() => cacher.connected, { timeout: 5000 }).toBe(false);

		// Reads, writes, lists, the claim itself: all answered during the outage.
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).status).toBe(200);
		const c = await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "outage-1" });
		expect(c.status).toBe(201);
		const after = await buyer.get(`/api/v1/orders/${o.id}`);
		expect(after.body.status).toBe("claimed"); // not a stale cached "open"
		expect((await shopper.get("/api/v1/supplies")).body.rows[0].reserved).toBe("1");
		const ready = await anon.get("/health/ready");
		expect(ready.status).toBe(503);
		expect(((await region.brokers[0].call("api.health")) as any).checks).toMatchObject({ postgres: "ok", redis: "down" });
		expect((await anon.get("/health/live")).status).toBe(200);

		// Redis returns (empty, as after a restart): the cache and readiness recover.
		await redis.start();
		await expect.poll(async () => (await anon.get("/health/ready")).status, { timeout: 10_000, interval: 200 }).toBe(200);
		await expect.poll(() => cacher.connected).toBe(true);
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
		expect((await buyer.post(`/api/v1/orders/${o.id}/complete`)).status).toBe(200);
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("completed");
	});
});
