// Nodes over NATS without Redis: per-node memory caches are invalidated on every node by a broadcast,
// and a service with no live node answers 503, never a hang or a 5xx crash.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SERVICES, startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { Client, item } from "../helpers/http";

let db: TestDatabase;
let region: Region & { db: TestDatabase };

beforeAll(async () => {
	region = await startTestRegion({
		nats: true,
		nodes: [["api", "order"], ["api", "order", "supply"], ["claiming"]],
		env: { CACHE_TTL_SEC: "300", CACHE_LIST_TTL_SEC: "300" },
	});
	db = region.db;
});

afterAll(async () => {
	await region?.stop();
});

describe("several nodes with memory caches", () => {
	it("a write on one node invalidates cached reads on every node", async () => {
		const [a, b] = region.apiUrls;
		const buyerA = await Client.as(a, "buyer");
		const buyerB = await Client.as(b, "buyer");
		const o = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		// Read enough times through both gateways that both order nodes hold it in their caches.
		for (let i = 0; i < 4; i++) {
			expect((await buyerA.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
			expect((await buyerB.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
			expect((await buyerB.get("/api/v1/orders?mine=true")).body.total).toBe(1);
		}
		const cached = region.brokers.filter(br => br.getLocalService("order")).map(br => (br.cacher as any).cache.size);
		expect(cached.every(n => n > 0)).toBe(true);

		expect((await buyerB.post(`/api/v1/orders/${o.id}/cancel`)).status).toBe(200);
		for (let i = 0; i < 4; i++) {
			expect((await buyerA.get(`/api/v1/orders/${o.id}`)).body.status).toBe("cancelled");
			expect((await buyerB.get(`/api/v1/orders/${o.id}`)).body.status).toBe("cancelled");
			expect((await buyerA.get("/api/v1/orders?status=open&mine=true")).body.total).toBe(0);
		}
	});

	it("answers 503 when no node runs the service, and recovers when one joins", async () => {
		const claiming = region.brokers.find(br => br.getLocalService("claiming"))!;
		await claiming.destroyService(claiming.getLocalService("claiming")!);
		const shopper = await Client.as(region.apiUrl, "shopper");
		const buyer = await Client.as(region.apiUrl, "buyer");
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		await expect
			.poll(async () => (await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "x-1" })).status)
			.toBe(503);
		const r = await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "x-1" });
		expect(r.body.error).toMatchObject({ code: "SERVICE_UNAVAILABLE" });
		expect(r.headers.get("retry-after")).toBe("1");
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");

		claiming.createService(SERVICES.claiming as any);
		await claiming.waitForServices("claiming");
		await expect
			.poll(async () => (await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "x-1" })).status, {
				timeout: 10_000,
			})
			.toBe(201);
	});
});
