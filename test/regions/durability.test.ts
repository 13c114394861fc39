// CLAIM_DURABILITY=replicated: a claim is acknowledged only once its events are in the event log (outside its
// region). With the relay stopped, the claim is written but answered 503 NOT_DURABLE; the retry with the same
// key, once the relay runs again, replays it as 201; an order change (completion, cancellation, a claim's release) waits the
// same way. With `local`, the same claim is acknowledged at the commit.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OutboxRelay } from "../../src/replication/relay";
import { Client, item } from "../helpers/http";
import { startTestRegions, type TestRegion, type TestRegions } from "../helpers/regions";

const relayOf = (r: TestRegion) => (r.broker.getLocalService("replication") as unknown as { relay: OutboxRelay }).relay;

async function claimWithRelayStopped(rs: TestRegions) {
	const [a] = rs.regions;
	const supply = (await (await Client.as(a.apiUrl, "ned")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
	const order = (await (await Client.as(a.apiUrl, "ned-buyer")).post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] })).body;
	await relayOf(a).stop();
	const key = randomUUID();
	const claim = () => Client.as(a.apiUrl, "ned").then(c => c.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key }));
	const first = await claim();
	const written = (await a.db.pool.query(`SELECT count(*)::int AS n FROM claims WHERE order_id = $1`, [order.id])).rows[0].n;
	relayOf(a).start();
	return { first, written, claim };
}

describe("CLAIM_DURABILITY=replicated", () => {
	let rs: TestRegions;
	beforeAll(async () => {
		rs = await startTestRegions({ count: 2, env: { CLAIM_DURABILITY: "replicated", REQUEST_TIMEOUT_MS: "1500", HOLD_CONFIRM_SEC: "5" } });
	}, 60_000);
	afterAll(async () => rs?.stop());

	it("answers 503 NOT_DURABLE while the claim is not in the log, and 201 to the retry once it is", async () => {
		const { first, written, claim } = await claimWithRelayStopped(rs);
		expect(first.status).toBe(503);
		expect(first.body.error.code).toBe("NOT_DURABLE");
		expect(first.headers.get("retry-after")).toBeTruthy();
		expect(written).toBe(1);
		const again = await claim();
		expect(again.status).toBe(201);
		expect(again.headers.get("idempotent-replayed")).toBe("true");
		const pending = await rs.regions[0].db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL AND aggregate_id = $1`, [again.body.id]);
		expect(pending.rows[0].n).toBe(0);
	});

	it("answers a completion only once it is in the log: 503 NOT_DURABLE before, and the order completed after", async () => {
		const [a] = rs.regions;
		const supply = (await (await Client.as(a.apiUrl, "oda")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		const buyer = await Client.as(a.apiUrl, "oda-buyer");
		const order = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] })).body;
		const claim = await (await Client.as(a.apiUrl, "oda")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(claim.status).toBe(201);
		await relayOf(a).stop();
		const done = await buyer.post(`/api/v1/orders/${order.id}/complete`);
		expect([done.status, done.body.error?.code]).toEqual([503, "NOT_DURABLE"]);
		// Committed all the same: the order reads completed; it leaves for the log once the relay runs again.
		expect((await buyer.get(`/api/v1/orders/${order.id}`)).body.status).toBe("completed");
		const pending = async () => (await a.db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL AND aggregate_id = $1`, [order.id])).rows[0].n;
		expect(await pending()).toBeGreaterThan(0);
		relayOf(a).start();
		await expect.poll(pending, { timeout: 5000 }).toBe(0);
	});
});

describe("CLAIM_DURABILITY=local", () => {
	let rs: TestRegions;
	beforeAll(async () => {
		rs = await startTestRegions({ count: 2, env: { CLAIM_DURABILITY: "local", REQUEST_TIMEOUT_MS: "1500", HOLD_CONFIRM_SEC: "5" } });
	}, 60_000);
	afterAll(async () => rs?.stop());

	it("acknowledges at the commit, published or not", async () => {
		const { first } = await claimWithRelayStopped(rs);
		expect(first.status).toBe(201);
	});
});
