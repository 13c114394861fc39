// Home region as single writer: a write sent to a region that does not own the entity's home region is run
// by the region that does, and answered as if it were local; X-Region names the region that served it.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { Client, item } from "../helpers/http";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 2 });
});
afterAll(async () => rs?.stop());

describe("writes through another region", () => {
	it("are forwarded to the home region and answer exactly as there", async () => {
		const [a, b] = rs.regions;
		const shopperA = await Client.as(a.apiUrl, "carol");
		const shopperB = await Client.as(b.apiUrl, "carol");
		const buyerA = await Client.as(a.apiUrl, "dave");
		const buyerB = await Client.as(b.apiUrl, "dave");
		const supply = (await shopperA.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		const order = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.25")] })).body;
		const other = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })).body;
		await converged(rs);

		// A supply write through B: run by A.
		const paused = await shopperB.post(`/api/v1/supplies/${supply.id}/pause`);
		expect(paused.status).toBe(200);
		expect(paused.headers.get("x-region")).toBe(a.name);
		expect(paused.body).toMatchObject({ id: supply.id, status: "paused", version: 2 });
		// A refusal made by the owner comes back as it is.
		const again = await shopperB.post(`/api/v1/supplies/${supply.id}/pause`);
		expect(again.status).toBe(409);
		expect(again.body.error.code).toBe("INVALID_TRANSITION");
		expect((await shopperB.post(`/api/v1/supplies/${supply.id}/resume`)).status).toBe(200);
		await converged(rs);

		// A claim through B of an order homed in A: 201, Location, the claim written by A.
		const key = randomUUID();
		const claim = await shopperB.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(claim.status).toBe(201);
		expect(claim.headers.get("x-region")).toBe(a.name);
		expect(claim.headers.get("location")).toBe(`/api/v1/claims/${claim.body.id}`);
		expect(claim.body).toMatchObject({ orderId: order.id, supplyId: supply.id, region: a.name, status: "active" });
		// The same key through A: the first claim, replayed.
		const replay = await shopperA.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(replay.status).toBe(201);
		expect(replay.headers.get("idempotent-replayed")).toBe("true");
		expect(replay.body.id).toBe(claim.body.id);
		// ... and through B again, once B has the claim too.
		await converged(rs);
		const replayB = await shopperB.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(replayB.status).toBe(201);
		expect(replayB.body.id).toBe(claim.body.id);

		// The buyer completes through B; a cancel of another order through B; a second claim released through B.
		const done = await buyerB.post(`/api/v1/orders/${order.id}/complete`);
		expect(done.status).toBe(200);
		expect(done.headers.get("x-region")).toBe(a.name);
		expect(done.body.status).toBe("completed");
		await converged(rs);
		const second = await shopperB.post("/api/v1/claims", { orderId: other.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(second.status).toBe(201);
		await converged(rs);
		const released = await shopperB.post(`/api/v1/claims/${second.body.id}/release`);
		expect(released.status).toBe(200);
		expect(released.headers.get("x-region")).toBe(a.name);
		expect(released.body.status).toBe("released");
		const third = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] })).body;
		await converged(rs);
		const cancelled = await buyerB.post(`/api/v1/orders/${third.id}/cancel`);
		expect(cancelled.status).toBe(200);
		expect(cancelled.headers.get("x-region")).toBe(a.name);

		// Nothing was written by B: every event of these entities came from A.
		const written = await b.db.pool.query(`SELECT count(*)::int AS n FROM outbox`);
		expect(written.rows[0].n).toBe(0);
		const rows = await converged(rs);
		expect(rows.supplies[0]).toMatchObject({ spent: "0.250000000000000000", reserved: "0.000000000000000000" });
		expect((await checkInvariants([a.db.pool, b.db.pool])).violations).toEqual([]);
	});

	it("reads are served by the region asked, from its copy", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(a.apiUrl, "erin")).post("/api/v1/supplies", { asset: "BTC", amount: "0.5" })).body;
		await converged(rs);
		const read = await (await Client.as(b.apiUrl, "erin")).get(`/api/v1/supplies/${supply.id}`);
		expect(read.status).toBe(200);
		expect(read.headers.get("x-region")).toBe(b.name);
		expect(read.body).toEqual(supply);
	});
});
