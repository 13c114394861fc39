// PostgreSQL goes away: a read whose entity was seen before answers from the stale copy (with a
// Warning header) instead of an error; anything else is a 503 the client may retry, never a 500.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { PG_ADMIN_URL } from "../helpers/env";
import { Client, item } from "../helpers/http";

let region: Region & { db: TestDatabase };

async function admin(sql: string) {
	const c = new pg.Client({ connectionString: PG_ADMIN_URL });
	await c.connect();
	try {
		await c.query(sql);
	} finally {
		await c.end();
	}
}

const cutDatabase = async (name: string) => {
	await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
	await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid()`);
};

beforeAll(async () => {
	region = await startTestRegion({ nodes: [["api", "supply", "order", "claiming"]], env: { CACHE_TTL_SEC: "1", SWEEP_INTERVAL_MS: "60000", BREAKER_HALF_OPEN_MS: "1000" } });
});

afterAll(async () => {
	if (region) await admin(`ALTER DATABASE ${region.db.name} ALLOW_CONNECTIONS true`);
	await region?.stop();
});

describe("reads while PostgreSQL is away", () => {
	it("serve a stale answer where one exists and a retryable 503 otherwise", async () => {
		const buyer = await Client.as(region.apiUrl, "stale-buyer");
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).status).toBe(200);
		await new Promise(r => setTimeout(r, 1100)); // let the fresh cache entry expire (CACHE_TTL_SEC=1)

		await cutDatabase(region.db.name);
		const stale = await buyer.get(`/api/v1/orders/${o.id}`);
		expect(stale.status).toBe(200);
		expect(stale.body).toMatchObject({ id: o.id, status: "open" });
		expect(stale.headers.get("warning")).toMatch(/110/);

		const missing = await buyer.get("/api/v1/orders/00000000-0000-4000-8000-000000000000");
		expect(missing.status).toBe(503);
		expect(missing.body.error.code).toBe("SERVICE_UNAVAILABLE");
		expect(missing.headers.get("retry-after")).toBe("1");
		const write = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] });
		expect(write.status).toBe(503);
		expect((await new Client(region.apiUrl).get("/health/ready")).status).toBe(503);

		await admin(`ALTER DATABASE ${region.db.name} ALLOW_CONNECTIONS true`);
		await expect.poll(async () => (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).status, { timeout: 10_000 }).toBe(201);
		const fresh = await buyer.get(`/api/v1/orders/${o.id}`);
		expect(fresh.headers.get("warning")).toBeNull();
	});

	it("never serve a copy older than the last write: a claimed order is not shown as open to strangers", async () => {
		const buyer = await Client.as(region.apiUrl, "stale-buyer-2");
		const shopper = await Client.as(region.apiUrl, "stale-shopper-2");
		const stranger = await Client.as(region.apiUrl, "stale-stranger-2");
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "5" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		// Both read it while open: the stale copy says "open".
		expect((await stranger.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
		expect((await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "stale-2" })).status).toBe(201);
		await new Promise(r => setTimeout(r, 1100)); // the fresh entry expires; nobody read the order since the claim

		await cutDatabase(region.db.name);
		try {
			const seen = await stranger.get(`/api/v1/orders/${o.id}`);
			expect(seen.body?.status).not.toBe("open");
			expect(seen.status).toBe(503);
			const own = await buyer.get(`/api/v1/orders/${o.id}`);
			expect(own.body?.status).not.toBe("open");
			expect(own.status).toBe(503);
		} finally {
			await admin(`ALTER DATABASE ${region.db.name} ALLOW_CONNECTIONS true`);
		}
		await expect.poll(async () => (await buyer.get(`/api/v1/orders/${o.id}`)).status, { timeout: 10_000 }).toBe(200);
		expect((await stranger.get(`/api/v1/orders/${o.id}`)).status).toBe(404);
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
	});

	it("serve the copy a read stored after the last write", async () => {
		const buyer = await Client.as(region.apiUrl, "stale-buyer-3");
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		expect((await buyer.post(`/api/v1/orders/${o.id}/cancel`)).status).toBe(200);
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("cancelled");
		await new Promise(r => setTimeout(r, 1100));
		await cutDatabase(region.db.name);
		try {
			const stale = await buyer.get(`/api/v1/orders/${o.id}`);
			expect(stale.status).toBe(200);
			expect(stale.body).toMatchObject({ id: o.id, status: "cancelled" });
			expect(stale.headers.get("warning")).toMatch(/110/);
		} finally {
			await admin(`ALTER DATABASE ${region.db.name} ALLOW_CONNECTIONS true`);
		}
	});
});
