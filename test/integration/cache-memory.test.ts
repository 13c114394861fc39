// The per-node memory cache, through the REST API: list keys come from validated parameters (page=01 and
// page=1, pageSize=1000 and 100 share one entry), checks still come before cached answers, a user's
// write leaves other users' lists alone, and a claim's invalidation runs after the order's mailbox task
// but before the answer.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { Client, item } from "../helpers/http";

let region: Region & { db: TestDatabase };
let sql: pg.Client;

beforeAll(async () => {
	region = await startTestRegion({
		nodes: [["api", "supply", "order", "claiming"]],
		env: { CACHE_TTL_SEC: "300", CACHE_LIST_TTL_SEC: "300", SWEEP_INTERVAL_MS: "600000", RATE_LIMIT: "10000" },
	});
	sql = new pg.Client({ connectionString: region.db.url });
	await sql.connect();
});

afterAll(async () => {
	await sql?.end();
	await region?.stop();
});

/** Changes a supply behind the cache's back: a cached answer keeps the old amount. */
const sneak = (id: string, amount: string) => sql.query(`UPDATE supplies SET amount = $2 WHERE id = $1`, [id, amount]);

describe("list keys", () => {
	it("page=01 and page=1 are one entry, and pageSize=1000 is served and cached as 100", async () => {
		const u = await Client.as(region.apiUrl, "paging-user");
		const s = (await u.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		expect((await u.get("/api/v1/supplies?page=1")).body.rows[0].amount).toBe("1");
		await sneak(s.id, "2");
		expect((await u.get("/api/v1/supplies?page=01")).body.rows[0].amount).toBe("1");
		expect((await u.get("/api/v1/supplies")).body.rows[0].amount).toBe("1");

		const big = await u.get("/api/v1/supplies?pageSize=100");
		expect(big.body).toMatchObject({ pageSize: 100, rows: [{ amount: "2" }] });
		await sneak(s.id, "3");
		const capped = await u.get("/api/v1/supplies?pageSize=1000");
		expect(capped.body).toMatchObject({ pageSize: 100, rows: [{ amount: "2" }] });
	});

	it("a cached list is still refused to a token without the scope, and bad parameters still get 422", async () => {
		const u = await Client.as(region.apiUrl, "scoped-user");
		await u.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect((await u.get("/api/v1/supplies")).status).toBe(200);
		const noScope = await Client.as(region.apiUrl, "scoped-user", ["order:read"]);
		expect((await noScope.get("/api/v1/supplies")).status).toBe(403);
		expect((await u.get("/api/v1/supplies?page=0")).status).toBe(422);
		expect((await u.get("/api/v1/supplies?page=1x")).status).toBe(422);
	});
});

describe("list invalidation", () => {
	it("a supply write leaves other users' cached lists alone, and refreshes the writer's", async () => {
		const a = await Client.as(region.apiUrl, "mem-a");
		const b = await Client.as(region.apiUrl, "mem-b");
		const s = (await a.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		expect((await a.get("/api/v1/supplies")).body.rows[0].amount).toBe("1");
		await sneak(s.id, "7");
		const sb = (await b.post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		expect((await b.post(`/api/v1/supplies/${sb.id}/pause`)).status).toBe(200);
		expect((await a.get("/api/v1/supplies")).body.rows[0].amount).toBe("1");
		await a.post("/api/v1/supplies", { asset: "ETH", amount: "3" });
		const own = (await a.get("/api/v1/supplies")).body;
		expect(own.rows.map((r: any) => r.amount).sort()).toEqual(["3", "7"]);
	});

	it("an order write refreshes the public listing and the buyer's own, not other buyers' own", async () => {
		const b1 = await Client.as(region.apiUrl, "ord-b1");
		const b2 = await Client.as(region.apiUrl, "ord-b2");
		const o1 = (await b1.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		expect((await b1.get("/api/v1/orders?mine=true")).body.total).toBe(1);
		await sql.query(`UPDATE orders SET amount = 9 WHERE id = $1`, [o1.id]);
		const o2 = (await b2.post("/api/v1/orders", { asset: "ETH", items: [item("2")] })).body;
		expect((await b1.get("/api/v1/orders?mine=true")).body.rows[0].amount).toBe("1");
		const open = (await b1.get("/api/v1/orders?status=open&pageSize=100")).body.rows.map((r: any) => r.id);
		expect(open).toContain(o2.id);
		// mine=false is the public listing too (a converted parameter, not the string "false").
		expect((await b1.get("/api/v1/orders?status=open&mine=false&pageSize=100")).body.rows.map((r: any) => r.id)).toContain(o2.id);
		const o3 = (await b2.post("/api/v1/orders", { asset: "ETH", items: [item("3")] })).body;
		expect((await b1.get("/api/v1/orders?status=open&mine=false&pageSize=100")).body.rows.map((r: any) => r.id)).toContain(o3.id);
		expect((await b2.post(`/api/v1/orders/${o2.id}/cancel`)).status).toBe(200);
		expect((await b1.get("/api/v1/orders?status=open&pageSize=100")).body.rows.map((r: any) => r.id)).not.toContain(o2.id);
		expect((await b2.get("/api/v1/orders?mine=true")).body.rows.find((r: any) => r.id === o2.id).status).toBe("cancelled");
	});
});

describe("a claim's invalidation", () => {
	it("runs after the order's mailbox task (the next command does not wait on it) and before the answer", async () => {
		const shopper = await Client.as(region.apiUrl, "defer-shopper");
		const buyer = await Client.as(region.apiUrl, "defer-buyer");
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "5" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;

		// Hold the next invalidation until released.
		const cacher = region.brokers[0].cacher as any;
		const apply = cacher.applyWrite;
		let release!: () => void;
		const held = new Promise<void>(r => (release = r));
		let holding = false;
		cacher.applyWrite = async function (this: unknown, plan: unknown) {
			cacher.applyWrite = apply;
			holding = true;
			await held;
			return apply.call(this, plan);
		};
		try {
			let claimAnswered = false;
			const claim = shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "defer-1" }).then(r => {
				claimAnswered = true;
				return r;
			});
			await expect.poll(() => holding).toBe(true);
			// The order's next command gets through the mailbox while the claim's invalidation is held.
			const cancel = await buyer.post(`/api/v1/orders/${o.id}/cancel`);
			expect(cancel.status).toBe(409);
			expect(claimAnswered).toBe(false);
			release();
			expect((await claim).status).toBe(201);
		} finally {
			release();
			cacher.applyWrite = apply;
		}
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
	});
});
