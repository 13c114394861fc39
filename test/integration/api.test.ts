// The REST contract of brief §3 on one node, against real PostgreSQL and Redis: the whole flow,
// balances to the last decimal, visibility, and every error status with its body.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL, TEST_JWT_SECRET } from "../helpers/env";
import { startRegion, startTestRegion, type Region } from "../helpers/cluster";
import { Client, item, tokenFor } from "../helpers/http";
import { rawRequest } from "../helpers/raw-http";
import { checkInvariants } from "../../src/checker/invariants";
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";

let db: TestDatabase;
let region: Region & { db: TestDatabase };
let shopper: Client, buyer: Client, other: Client, anon: Client;

const expectError = (r: { status: number; body: any }, status: number, code?: string) => {
	expect(r.status, JSON.stringify(r.body)).toBe(status);
	expect(r.body.error).toBeDefined();
	expect(typeof r.body.error.message).toBe("string");
	expect(typeof r.body.error.requestId).toBe("string");
	expect(JSON.stringify(r.body)).not.toMatch(/stack|SELECT|INSERT|UPDATE /);
	if (code) expect(r.body.error.code).toBe(code);
};

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nodes: [["api", "supply", "order", "claiming"]],
		env: { CLAIM_HOLD_SEC: "2", SWEEP_INTERVAL_MS: "100", RATE_LIMIT: "10000" },
	});
	db = region.db;
	shopper = await Client.as(region.apiUrl, "shopper-1");
	buyer = await Client.as(region.apiUrl, "buyer-1");
	other = await Client.as(region.apiUrl, "other-1");
	anon = new Client(region.apiUrl);
});

afterAll(async () => {
	await region?.stop();
});

async function supply(client = shopper, amount = "10", asset = "ETH") {
	const r = await client.post("/api/v1/supplies", { asset, amount });
	expect(r.status, JSON.stringify(r.body)).toBe(201);
	return r.body;
}

async function order(client = buyer, items = [item("0.1", 3), item("0.05", 1, "sku-2")], asset = "ETH", extra = {}) {
	const r = await client.post("/api/v1/orders", { asset, items, ...extra });
	expect(r.status, JSON.stringify(r.body)).toBe(201);
	return r.body;
}

const claim = (client: Client, orderId: string, supplyId: string, key: string) =>
	client.post("/api/v1/claims", { orderId, supplyId }, { "idempotency-key": key });

describe("the happy path", () => {
	it("supply, order, claim, complete: balances move exactly", async () => {
		const s = await supply(shopper, "2.5");
		expect(s).toMatchObject({ asset: "ETH", amount: "2.5", reserved: "0", spent: "0", available: "2.5", status: "active", version: 1 });
		const o = await order();
		expect(o.amount).toBe("0.35");
		expect(o.status).toBe("open");
		expect(o.userId).toBe("buyer-1");

		const c = await claim(shopper, o.id, s.id, "happy-1");
		expect(c.status).toBe(201);
		expect(c.headers.get("location")).toBe(`/api/v1/claims/${c.body.id}`);
		expect(c.body).toMatchObject({ orderId: o.id, supplyId: s.id, claimerId: "shopper-1", amount: "0.35", status: "active" });

		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body).toMatchObject({ reserved: "0.35", available: "2.15" });
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body).toMatchObject({ status: "claimed", claimId: c.body.id });

		const done = await buyer.post(`/api/v1/orders/${o.id}/complete`);
		expect(done.status).toBe(200);
		expect(done.body.status).toBe("completed");
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body).toMatchObject({
			amount: "2.5",
			reserved: "0",
			spent: "0.35",
			available: "2.15",
		});
		expect((await shopper.get(`/api/v1/claims/${c.body.id}`)).body.status).toBe("settled");
	});

	it("a released claim reopens the order and returns the funds", async () => {
		const s = await supply(shopper, "1");
		const o = await order(buyer, [item("0.4")]);
		const c = await claim(shopper, o.id, s.id, "release-1");
		const r = await shopper.post(`/api/v1/claims/${c.body.id}/release`);
		expect(r.status).toBe(200);
		expect(r.body.status).toBe("released");
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body).toMatchObject({ status: "open", claimId: null });
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body).toMatchObject({ reserved: "0", available: "1" });
		// and it can be claimed again
		expect((await claim(shopper, o.id, s.id, "release-2")).status).toBe(201);
	});

	it("exact money with 18 decimals and large quantities", async () => {
		const s = await supply(shopper, "12345678901234567890.123456789012345678");
		const o = await order(buyer, [item("0.000000000000000001", 1_000_000), item("0.1", 3, "b")]);
		expect(o.amount).toBe("0.300000000001");
		await claim(shopper, o.id, s.id, "exact-1");
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body.available).toBe("12345678901234567889.823456789011345678");
	});

	it("replays a claim with the same Idempotency-Key instead of making a second one", async () => {
		const s = await supply(shopper, "5");
		const o = await order();
		const first = await claim(shopper, o.id, s.id, "idem-1");
		const again = await claim(shopper, o.id, s.id, "idem-1");
		expect(again.status).toBe(201);
		expect(again.headers.get("idempotent-replayed")).toBe("true");
		expect(again.body.id).toBe(first.body.id);
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body.reserved).toBe("0.35");
		const o2 = await order();
		expectError(await claim(shopper, o2.id, s.id, "idem-1"), 422, "IDEMPOTENCY_KEY_REUSED");
	});

	it("buyer cancels an open order", async () => {
		const o = await order();
		const r = await buyer.post(`/api/v1/orders/${o.id}/cancel`);
		expect(r.body.status).toBe("cancelled");
		expectError(await buyer.post(`/api/v1/orders/${o.id}/cancel`), 409, "ORDER_NOT_OPEN");
	});

	it("supply lifecycle: pause, resume, raise, lower, close", async () => {
		const s = await supply(shopper, "3");
		expect((await shopper.post(`/api/v1/supplies/${s.id}/pause`)).body.status).toBe("paused");
		const o = await order();
		expectError(await claim(shopper, o.id, s.id, "paused-1"), 409, "SUPPLY_NOT_ACTIVE");
		expectError(await shopper.post(`/api/v1/supplies/${s.id}/pause`), 409, "INVALID_TRANSITION");
		expect((await shopper.post(`/api/v1/supplies/${s.id}/resume`)).body.status).toBe("active");
		await claim(shopper, o.id, s.id, "lifecycle-1");
		expect((await shopper.patch(`/api/v1/supplies/${s.id}`, { amount: "4" })).body).toMatchObject({ amount: "4", available: "3.65" });
		expect((await shopper.patch(`/api/v1/supplies/${s.id}`, { amount: "0.35" })).body.available).toBe("0");
		const below = await shopper.patch(`/api/v1/supplies/${s.id}`, { amount: "0.3" });
		expectError(below, 409, "AMOUNT_BELOW_COMMITTED");
		expect(below.body.error.details).toMatchObject({ reserved: "0.35", spent: "0" });
		expectError(await shopper.post(`/api/v1/supplies/${s.id}/close`), 409, "SUPPLY_HAS_RESERVATIONS");
		await buyer.post(`/api/v1/orders/${o.id}/complete`);
		expect((await shopper.post(`/api/v1/supplies/${s.id}/close`)).body.status).toBe("closed");
		expectError(await shopper.patch(`/api/v1/supplies/${s.id}`, { amount: "9" }), 409, "INVALID_TRANSITION");
	});
});

describe("visibility", () => {
	it("open orders are public without the buyer's id; others only to buyer and claimer", async () => {
		const o = await order();
		const seen = await other.get(`/api/v1/orders/${o.id}`);
		expect(seen.status).toBe(200);
		expect(seen.body.userId).toBeUndefined();
		const s = await supply();
		await claim(shopper, o.id, s.id, "vis-1");
		expectError(await other.get(`/api/v1/orders/${o.id}`), 404, "ORDER_NOT_FOUND");
		expect((await shopper.get(`/api/v1/orders/${o.id}`)).status).toBe(200);
		expect((await shopper.get(`/api/v1/orders/${o.id}`)).body.userId).toBeUndefined();
		const list = await other.get(`/api/v1/orders?status=claimed`);
		expect(list.body.rows.find((r: any) => r.id === o.id)).toBeUndefined();
	});

	it("supplies and claims are their owner's only", async () => {
		const s = await supply();
		expectError(await other.get(`/api/v1/supplies/${s.id}`), 404, "SUPPLY_NOT_FOUND");
		expectError(await other.post(`/api/v1/supplies/${s.id}/pause`), 404, "SUPPLY_NOT_FOUND");
		const o = await order();
		const c = await claim(shopper, o.id, s.id, "vis-2");
		expectError(await other.get(`/api/v1/claims/${c.body.id}`), 404, "CLAIM_NOT_FOUND");
		expectError(await other.post(`/api/v1/claims/${c.body.id}/release`), 404, "CLAIM_NOT_FOUND");
		// another user cannot claim with somebody else's supply
		const o2 = await order();
		expectError(await claim(other, o2.id, s.id, "steal-1"), 404, "SUPPLY_NOT_FOUND");
		const mine = await other.get("/api/v1/supplies");
		expect(mine.body.rows.every((r: any) => r.userId === "other-1")).toBe(true);
	});

	it("lists paginate, filter and cap pageSize at 100", async () => {
		const lister = await Client.as(region.apiUrl, "lister-1");
		for (let i = 0; i < 5; i++) await lister.post("/api/v1/supplies", { asset: "USDC", amount: `${i + 1}` });
		const p1 = await lister.get("/api/v1/supplies?asset=USDC&pageSize=2&page=1");
		expect(p1.body).toMatchObject({ total: 5, page: 1, pageSize: 2, totalPages: 3 });
		expect(p1.body.rows).toHaveLength(2);
		const p3 = await lister.get("/api/v1/supplies?asset=USDC&pageSize=2&page=3");
		expect(p3.body.rows).toHaveLength(1);
		expect((await lister.get("/api/v1/supplies?pageSize=1000")).body.pageSize).toBe(100);
		expect((await lister.get("/api/v1/supplies?status=closed")).body.total).toBe(0);
		// the list cache is invalidated by a write
		await lister.post("/api/v1/supplies", { asset: "USDC", amount: "9" });
		expect((await lister.get("/api/v1/supplies?asset=USDC&pageSize=2&page=1")).body.total).toBe(6);
	});

	it("a write to another user's supply neither waits on its lock nor takes it: 404 at once", async () => {
		const s = await supply(shopper, "3");
		const holder = await db.pool.connect();
		await holder.query("BEGIN");
		await holder.query("SELECT 1 FROM supplies WHERE id = $1 FOR UPDATE", [s.id]);
		try {
			// A write that locked the row before checking its owner would wait here, then time out (503).
			expectError(await other.patch(`/api/v1/supplies/${s.id}`, { amount: "5" }), 404, "SUPPLY_NOT_FOUND");
			expectError(await other.post(`/api/v1/supplies/${s.id}/pause`), 404, "SUPPLY_NOT_FOUND");
		} finally {
			await holder.query("ROLLBACK");
			holder.release();
		}
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body).toMatchObject({ amount: "3", status: "active" });
	});

	it("lists are bounded: a page past 10,000 rows is refused, and the count stops there", async () => {
		const deep = await shopper.get("/api/v1/supplies?page=1000000&pageSize=100");
		expectError(deep, 422, "PAGE_TOO_DEEP");
		expect(deep.body.error.details).toEqual({ maxPage: 100 });
		expectError(await shopper.get("/api/v1/orders?page=101&pageSize=100"), 422, "PAGE_TOO_DEEP");
		expect((await shopper.get("/api/v1/supplies?page=100&pageSize=100")).status).toBe(200);
		// A user with more rows than are counted: total says 10,000 and the list says it is capped.
		await region.db.pool.query(
			`INSERT INTO supplies (id, user_id, asset, amount, home_region)
			 SELECT gen_random_uuid(), 'hoarder', 'DAI', 1, 'us-central1' FROM generate_series(1, 10005)`,
		);
		const hoarder = await Client.as(region.apiUrl, "hoarder");
		const many = await hoarder.get("/api/v1/supplies?pageSize=100");
		expect(many.body).toMatchObject({ total: 10_000, totalPages: 100, totalCapped: true });
		const few = await shopper.get("/api/v1/supplies");
		expect(few.body.totalCapped).toBeUndefined();
	});
});

describe("expiry", () => {
	it("a claim's hold expires and the sweeper releases it", async () => {
		const s = await supply(shopper, "1");
		const o = await order(buyer, [item("0.5")]);
		const c = await claim(shopper, o.id, s.id, "hold-1");
		await expect.poll(async () => (await shopper.get(`/api/v1/claims/${c.body.id}`)).body.status, { timeout: 10_000, interval: 200 }).toBe("released");
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body.reserved).toBe("0");
	});

	it("an order past expiresAt expires and cannot be claimed", async () => {
		const o = await order(buyer, [item("0.1")], "ETH", { expiresInSec: 1 });
		await expect.poll(async () => (await buyer.get(`/api/v1/orders/${o.id}`)).body.status, { timeout: 10_000, interval: 200 }).toBe("expired");
		const s = await supply();
		// An expired order is no longer public: a stranger learns nothing about it.
		expectError(await claim(shopper, o.id, s.id, "expired-1"), 404, "ORDER_NOT_FOUND");
		expectError(await buyer.post(`/api/v1/orders/${o.id}/cancel`), 409, "ORDER_EXPIRED");
	});
});

describe("errors", () => {
	it("401 for missing, malformed, expired, forged and wrong-audience tokens", async () => {
		expectError(await anon.get("/api/v1/supplies"), 401, "UNAUTHORIZED");
		expectError(await anon.get("/api/v1/supplies", { authorization: "Basic abc" }), 401, "INVALID_TOKEN");
		expectError(await anon.get("/api/v1/supplies", { authorization: "Bearer not.a.jwt" }), 401, "INVALID_TOKEN");
		const expired = await tokenFor("u", undefined, Math.floor(Date.now() / 1000) - 10);
		expectError(await anon.get("/api/v1/supplies", { authorization: `Bearer ${expired}` }), 401, "TOKEN_EXPIRED");
		const forged = await signToken(loadConfig({ JWT_SECRET: "x".repeat(40) }).jwt, "u", ["admin"]);
		expectError(await anon.get("/api/v1/supplies", { authorization: `Bearer ${forged}` }), 401, "INVALID_TOKEN");
		const wrongAud = await signToken(loadConfig({ JWT_SECRET: TEST_JWT_SECRET, JWT_AUDIENCE: "someone-else" }).jwt, "u", ["admin"]);
		expectError(await anon.get("/api/v1/supplies", { authorization: `Bearer ${wrongAud}` }), 401, "INVALID_TOKEN");
	});

	it("403 for a missing scope and for claiming one's own order", async () => {
		const reader = await Client.as(region.apiUrl, "reader-1", ["supply:read", "order:read"]);
		const r = await reader.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expectError(r, 403, "MISSING_SCOPE");
		expect(r.body.error.details).toEqual({ scope: "supply:write" });
		const o = await order(buyer);
		const s = await supply(buyer);
		expectError(await claim(buyer, o.id, s.id, "own-1"), 403, "OWN_ORDER");
		const o2 = await order();
		expectError(await other.post(`/api/v1/orders/${o2.id}/cancel`), 403, "NOT_BUYER");
	});

	it("400 for malformed JSON and a missing Idempotency-Key; the claimer is never a body field", async () => {
		expectError(await shopper.request("POST", "/api/v1/supplies", "{not json"), 400, "INVALID_BODY");
		const o = await order();
		const s = await supply();
		expectError(await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }), 400, "IDEMPOTENCY_KEY_REQUIRED");
		const r = await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id, claimerId: "buyer-1", idempotencyKey: "x" }, { "idempotency-key": "body-1" });
		expect(r.status).toBe(201);
		expect(r.body).toMatchObject({ claimerId: "shopper-1", idempotencyKey: "body-1" });
	});

	it("404 for unknown ids and unknown routes", async () => {
		expectError(await shopper.get("/api/v1/supplies/00000000-0000-4000-8000-000000000000"), 404, "SUPPLY_NOT_FOUND");
		expectError(await shopper.get("/api/v1/orders/00000000-0000-4000-8000-000000000000"), 404, "ORDER_NOT_FOUND");
		expectError(await shopper.get("/api/v1/claims/00000000-0000-4000-8000-000000000000"), 404, "CLAIM_NOT_FOUND");
		expectError(await shopper.get("/api/v1/nothing-here"), 404, "NOT_FOUND");
		expectError(await anon.get("/nothing"), 404, "NOT_FOUND");
	});

	it("409 with the current state for transitions that are not allowed", async () => {
		const s = await supply();
		const o = await order();
		await claim(shopper, o.id, s.id, "conflict-1");
		const s2 = await supply(other);
		// A stranger is told nothing about an order that is no longer open; its claimer gets the state.
		expectError(await claim(other, o.id, s2.id, "conflict-2"), 404, "ORDER_NOT_FOUND");
		const r = await claim(shopper, o.id, s.id, "conflict-3");
		expectError(r, 409, "ORDER_NOT_OPEN");
		expect(r.body.error.details).toEqual({ id: o.id, status: "claimed" });
		expect(JSON.stringify(r.body)).not.toContain("buyer-1");
		expectError(await buyer.post(`/api/v1/orders/${o.id}/cancel`), 409, "ORDER_NOT_OPEN");
		const small = await supply(other, "0.1");
		const o2 = await order();
		expectError(await claim(other, o2.id, small.id, "poor-1"), 409, "INSUFFICIENT_SUPPLY");
	});

	it("422 for invalid fields, too many decimals, unknown assets and mismatched assets", async () => {
		const bad = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: 2.5 });
		expectError(bad, 422, "VALIDATION_ERROR");
		expect(bad.body.error.details.fields[0].field).toBe("amount");
		expectError(await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "-1" }), 422, "VALIDATION_ERROR");
		expectError(await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "0" }), 422, "INVALID_AMOUNT");
		expectError(await shopper.post("/api/v1/supplies", { asset: "USDC", amount: "1.0000001" }), 422, "INVALID_AMOUNT");
		expectError(await shopper.post("/api/v1/supplies", { asset: "DOGE", amount: "1" }), 422, "UNKNOWN_ASSET");
		expectError(await buyer.post("/api/v1/orders", { asset: "ETH", items: [] }), 422, "VALIDATION_ERROR");
		expectError(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1", 0)] }), 422, "VALIDATION_ERROR");
		expectError(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("99999999999999999999", 1000)] }), 422, "AMOUNT_TOO_LARGE");
		expectError(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")], expiresInSec: 10 ** 9 }), 422, "INVALID_EXPIRY");
		expectError(await shopper.get("/api/v1/supplies/not-a-uuid"), 422, "VALIDATION_ERROR");
		expectError(await shopper.get("/api/v1/orders?status=weird"), 422, "VALIDATION_ERROR");
		expectError(await shopper.get("/api/v1/orders?page=0"), 422, "VALIDATION_ERROR");
		const usdc = await supply(shopper, "100", "USDC");
		const o = await order();
		expectError(await claim(shopper, o.id, usdc.id, "mismatch-1"), 422, "ASSET_MISMATCH");
	});

	it("429 with Retry-After and X-RateLimit headers past the per-user limit", async () => {
		const limited = await startRegion({
			databaseUrl: db.url,
			redisUrl: REDIS_URL,
			nodes: [["api", "supply", "order", "claiming"]],
			env: { RATE_LIMIT: "3", RATE_LIMIT_WINDOW_SEC: "60", MIGRATE_ON_START: "false" },
		});
		try {
			const a = await Client.as(limited.apiUrl, "busy-1");
			const b = await Client.as(limited.apiUrl, "calm-1");
			const replies = [];
			for (let i = 0; i < 4; i++) replies.push(await a.get("/api/v1/supplies"));
			expect(replies.slice(0, 3).map(r => r.status)).toEqual([200, 200, 200]);
			expect(replies[0].headers.get("x-ratelimit-limit")).toBe("3");
			expect(replies[2].headers.get("x-ratelimit-remaining")).toBe("0");
			expectError(replies[3], 429, "RATE_LIMITED");
			expect(Number(replies[3].headers.get("retry-after"))).toBeGreaterThan(0);
			expect((await b.get("/api/v1/supplies")).status).toBe(200);
		} finally {
			await limited.stop();
		}
	});
});

describe("headers, health and actions", () => {
	it("echoes X-Request-ID and names the region", async () => {
		const r = await shopper.get("/api/v1/supplies", { "x-request-id": "trace-abc-123" });
		expect(r.headers.get("x-request-id")).toBe("trace-abc-123");
		expect(r.headers.get("x-region")).toBe("us-central1");
		const e = await anon.get("/api/v1/supplies", { "x-request-id": "trace-err-1" });
		expect(e.body.error.requestId).toBe("trace-err-1");
		expect(e.headers.get("x-region")).toBe("us-central1");
	});

	it("liveness answers while the broker's call path is wedged; a liveness request with a body still goes that way", async () => {
		const broker = region.brokers[0];
		const endpoint = (broker.registry as any).actions.get("api.live").endpoints[0];
		const handler = endpoint.action.handler;
		// What a node with full bulkheads or a stuck event handler would do to an action call: never answer.
		endpoint.action.handler = () => new Promise(() => {});
		try {
			const live = await anon.get("/health/live", { "x-request-id": "probe-1" });
			expect(live.status).toBe(200);
			expect(live.body).toEqual({ status: "live" });
			expect(live.headers.get("content-type")).toBe("application/json; charset=utf-8");
			expect(live.headers.get("x-request-id")).toBe("probe-1");
			expect(live.headers.get("x-region")).toBe("us-central1");
			expect((await anon.get("/health/live", { "x-request-id": "not a sane id" })).headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
			// The broker's way, where the wedged action holds it: no answer within the half second.
			const withBody = await rawRequest(region.apiUrl, "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 500);
			expect(withBody.status).toBe(0);
		} finally {
			endpoint.action.handler = handler;
		}
		const restored = await rawRequest(region.apiUrl, "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
		expect([restored.status, restored.body]).toEqual([200, { status: "live" }]);
	});

	it("health endpoints and regions", async () => {
		expect((await anon.get("/health/live")).status).toBe(200);
		const ready = await anon.get("/health/ready");
		expect(ready.status).toBe(200);
		expect(ready.body).toEqual({ status: "ready" });
		// The dependencies' details are for operators, through the broker.
		expect(((await region.brokers[0].call("api.health")) as any).checks).toEqual({ postgres: "ok", redis: "ok", transporter: "disabled" });
		const regions = await shopper.get("/api/v1/regions");
		expect(regions.body.servedBy).toBe("us-central1");
		expect(regions.body.regions.map((r: any) => r.name)).toEqual(["us-central1", "europe-west1", "asia-east1"]);
	});

	it("actions apply the same checks when called directly (REPL and services)", async () => {
		const broker = region.brokers[0];
		await expect(broker.call("supply.list", {})).rejects.toMatchObject({ code: 401 });
		const token = await tokenFor("repl-user", ["supply:read", "supply:write"]);
		const s: any = await broker.call("supply.create", { asset: "BTC", amount: "0.5" }, { meta: { token } });
		expect(s).toMatchObject({ userId: "repl-user", amount: "0.5" });
		await expect(broker.call("order.create", { asset: "BTC", items: [item("1")] }, { meta: { token } })).rejects.toMatchObject({
			code: 403,
			type: "MISSING_SCOPE",
		});
		await expect(broker.call("supply.create", { asset: "BTC", amount: 1 }, { meta: { token } })).rejects.toMatchObject({ code: 422 });
		await expect(broker.call("claiming.command", { op: "cancel", orderId: s.id }, { meta: { token } })).rejects.toMatchObject({
			code: 403,
			type: "INTERNAL_ACTION",
		});
	});

	it("leaves the database consistent", async () => {
		const report = await checkInvariants(db.pool);
		expect(report.violations).toEqual([]);
		expect(report.counts.claims).toBeGreaterThan(5);
	});
});
