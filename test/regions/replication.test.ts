// Two regions joined by the event log (the in-memory twin of Kafka): what one region writes, the other
// applies, and both show the same rows.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { checkHistory } from "../../src/checker/history-check";
import { Client, item } from "../helpers/http";
import { metricValue } from "../helpers/nodes";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 2 });
});
afterAll(async () => rs?.stop());

describe("replication between two regions", () => {
	it("applies every write of one region to the other, and both end equal", async () => {
		const [a, b] = rs.regions;
		const shopper = await Client.as(a.apiUrl, "alice");
		const buyer = await Client.as(a.apiUrl, "bob");
		const supply = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "2.5" });
		expect(supply.status).toBe(201);
		const orders = [];
		for (let i = 0; i < 3; i++) orders.push((await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1", 2)] })).body);
		const claim = await shopper.post("/api/v1/claims", { orderId: orders[0].id, supplyId: supply.body.id }, { "Idempotency-Key": randomUUID() });
		expect(claim.status).toBe(201);
		expect((await buyer.post(`/api/v1/orders/${orders[0].id}/complete`)).status).toBe(200);
		const second = await shopper.post("/api/v1/claims", { orderId: orders[1].id, supplyId: supply.body.id }, { "Idempotency-Key": randomUUID() });
		expect((await shopper.post(`/api/v1/claims/${second.body.id}/release`)).status).toBe(200);
		expect((await buyer.post(`/api/v1/orders/${orders[2].id}/cancel`)).status).toBe(200);

		const rows = await converged(rs);
		expect(rows.supplies).toHaveLength(1);
		expect(rows.supplies[0]).toMatchObject({ home_region: a.name, reserved: "0.000000000000000000", spent: "0.200000000000000000", version: 5 });
		expect(rows.orders.map(o => o.status).sort()).toEqual(["cancelled", "completed", "open"]);
		expect(rows.claims.map(c => c.status).sort()).toEqual(["released", "settled"]);

		// The other region answers reads from its copy, through its own API.
		const fromB = await Client.as(b.apiUrl, "alice");
		const read = await fromB.get(`/api/v1/supplies/${supply.body.id}`);
		expect(read.status).toBe(200);
		expect(read.body).toMatchObject({ id: supply.body.id, spent: "0.2", available: "2.3", homeRegion: a.name });
		expect(read.headers.get("x-region")).toBe(b.name);

		// Every region's published events are marked so, and B's progress names A.
		const pending = await a.db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL`);
		expect(pending.rows[0].n).toBe(0);
		const progress = await b.db.pool.query(`SELECT sum(applied)::int AS applied FROM replication_progress WHERE source = $1`, [a.name]);
		expect(progress.rows[0].applied).toBeGreaterThanOrEqual(12);

		// B's view of the regions: A's events measured as they were applied, none left.
		const regions = await fromB.get("/api/v1/regions");
		expect(regions.status).toBe(200);
		expect(regions.body).toMatchObject({ servedBy: b.name, replication: "memory" });
		const viewOfA = regions.body.regions.find((r: any) => r.name === a.name);
		expect(viewOfA).toMatchObject({ health: "up", owner: a.name, epoch: 1, backlog: 0 });
		expect(viewOfA.eventsApplied).toBe(progress.rows[0].applied);
		expect(typeof viewOfA.replicationLagMs).toBe("number");
		expect(viewOfA.lastEventAt).toMatch(/^2\d{3}-/);
		// Reads say how far behind the copies may be (refreshed every second in the background).
		await expect.poll(async () => (await fromB.get(`/api/v1/supplies/${supply.body.id}`)).headers.get("x-replica-lag-ms"), { timeout: 3000 }).toMatch(/^\d+$/);
		// ... the gateway's answers from the cache too (docs/gateway.md, "Cached reads").
		const cachedBefore = metricValue(b.broker, "wallet.gateway.cached.reads.total", { entity: "supply" });
		const cached = await fromB.get(`/api/v1/supplies/${supply.body.id}`);
		expect(metricValue(b.broker, "wallet.gateway.cached.reads.total", { entity: "supply" })).toBe(cachedBefore + 1);
		expect(cached.headers.get("x-replica-lag-ms")).toMatch(/^\d+$/);

		const inv = await checkInvariants([a.db.pool, b.db.pool]);
		expect(inv.violations).toEqual([]);
		const hist = await checkHistory([a.db.pool, b.db.pool]);
		expect(hist.violations).toEqual([]);
	});
});
