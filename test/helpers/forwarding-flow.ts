// What every region link must give a user (in-process and over Kafka run this same flow): writes sent through
// region B for entities homed in A run in A and answer exactly as A does, refusals and headers included.
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { Client, item } from "./http";
import { converged, type TestRegion, type TestRegions } from "./regions";

export interface ClaimedThroughB {
	a: TestRegion;
	b: TestRegion;
	order: { id: string };
	supply: { id: string };
	key: string;
	claim: { id: string };
}

export async function forwardedWritesFlow(rs: TestRegions, o: { convergeMs?: number; afterClaim?: (c: ClaimedThroughB) => Promise<void> } = {}) {
	const [a, b] = rs.regions;
	const settle = () => converged(rs, o.convergeMs);
	const shopperA = await Client.as(a.apiUrl, "carol");
	const shopperB = await Client.as(b.apiUrl, "carol");
	const buyerA = await Client.as(a.apiUrl, "dave");
	const buyerB = await Client.as(b.apiUrl, "dave");
	const supply = (await shopperA.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
	const order = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.25")] })).body;
	const other = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })).body;
	await settle();

	// A supply write through B: run by A.
	const paused = await shopperB.post(`/api/v1/supplies/${supply.id}/pause`);
	expect(paused.status).toBe(200);
	expect(paused.headers.get("x-region")).toBe(a.name);
	expect(paused.body).toMatchObject({ id: supply.id, status: "paused", version: 2 });
	// A refusal made by the owner comes back as it is (type, code and details).
	const again = await shopperB.post(`/api/v1/supplies/${supply.id}/pause`);
	expect(again.status).toBe(409);
	expect(again.body.error.code).toBe("INVALID_TRANSITION");
	expect((await shopperB.post(`/api/v1/supplies/${supply.id}/resume`)).status).toBe(200);
	await settle();

	// A claim through B of an order homed in A: 201, Location, the claim written by A.
	const key = randomUUID();
	const claim = await shopperB.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
	expect(claim.status).toBe(201);
	expect(claim.headers.get("x-region")).toBe(a.name);
	expect(claim.headers.get("location")).toBe(`/api/v1/claims/${claim.body.id}`);
	expect(claim.body).toMatchObject({ orderId: order.id, supplyId: supply.id, region: a.name, status: "active" });
	await o.afterClaim?.({ a, b, order, supply, key, claim: claim.body });
	// The same key through A: the first claim, replayed.
	const replay = await shopperA.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
	expect(replay.status).toBe(201);
	expect(replay.headers.get("idempotent-replayed")).toBe("true");
	expect(replay.body.id).toBe(claim.body.id);
	// ... and through B again, once B has the claim too.
	await settle();
	const replayB = await shopperB.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
	expect(replayB.status).toBe(201);
	expect(replayB.headers.get("idempotent-replayed")).toBe("true");
	expect(replayB.body.id).toBe(claim.body.id);

	// The buyer completes through B; a second claim released through B; a cancel through B.
	const done = await buyerB.post(`/api/v1/orders/${order.id}/complete`);
	expect(done.status).toBe(200);
	expect(done.headers.get("x-region")).toBe(a.name);
	expect(done.body.status).toBe("completed");
	await settle();
	const second = await shopperB.post("/api/v1/claims", { orderId: other.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
	expect(second.status).toBe(201);
	await settle();
	const released = await shopperB.post(`/api/v1/claims/${second.body.id}/release`);
	expect(released.status).toBe(200);
	expect(released.headers.get("x-region")).toBe(a.name);
	expect(released.body.status).toBe("released");
	const third = (await buyerA.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] })).body;
	await settle();
	const cancelled = await buyerB.post(`/api/v1/orders/${third.id}/cancel`);
	expect(cancelled.status).toBe(200);
	expect(cancelled.headers.get("x-region")).toBe(a.name);

	// B wrote nothing: every event of these entities came from A.
	expect((await b.db.pool.query(`SELECT count(*)::int AS n FROM outbox`)).rows[0].n).toBe(0);
	const rows = await settle();
	expect(rows.supplies[0]).toMatchObject({ spent: "0.250000000000000000", reserved: "0.000000000000000000" });
	expect((await checkInvariants([a.db.pool, b.db.pool])).violations).toEqual([]);
}
