// Claims whose order and supply live in different regions: a hold in the supply's region, the claim in the
// order's region; settled or released by the supply's region when the claim's events reach it. A 201 means
// both happened, a refusal means neither, whatever region the claim was sent to.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { claimIdFor } from "../../src/store/holds";
import { Client, item } from "../helpers/http";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 3, env: { HOLD_CONFIRM_SEC: "3", REQUEST_TIMEOUT_MS: "2500", SWEEP_INTERVAL_MS: "200" } });
});
afterAll(async () => rs?.stop());

const holds = (r: TestRegions["regions"][number]) =>
	r.db.pool.query(`SELECT claim_id, status, amount::text FROM holds ORDER BY created_at`).then(x => x.rows);

async function setup(shopper: string, amount: string) {
	const [a, b] = rs.regions;
	const supply = (await (await Client.as(b.apiUrl, shopper)).post("/api/v1/supplies", { asset: "ETH", amount })).body;
	const buyer = await Client.as(a.apiUrl, `${shopper}-buyer`);
	const order = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] })).body;
	await converged(rs);
	return { supply, order, buyer };
}

describe("a claim across regions (order in A, supply in B)", () => {
	it("holds in B, claims in A, through any region; completing spends the funds in B", async () => {
		const [a, b, c] = rs.regions;
		const { supply, order, buyer } = await setup("frank", "1");
		const viaC = await Client.as(c.apiUrl, "frank");
		const key = randomUUID();
		const claim = await viaC.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(claim.status).toBe(201);
		expect(claim.headers.get("x-region")).toBe(a.name);
		expect(claim.body).toMatchObject({ id: claimIdFor("frank", key), orderId: order.id, supplyId: supply.id, amount: "0.4", region: a.name });
		// The funds are reserved in B at once (B wrote it), before any replication.
		const inB = await b.db.pool.query(`SELECT reserved::text FROM supplies WHERE id = $1`, [supply.id]);
		expect(inB.rows[0].reserved).toBe("0.400000000000000000");
		// Held, or already confirmed if A's ClaimCreated reached B in the meantime.
		const [hold] = await holds(b);
		expect(hold).toMatchObject({ claim_id: claim.body.id, amount: "0.400000000000000000" });
		expect(hold.status === "held" || hold.status === "confirmed").toBe(true);
		// A retry with the key, through B: the same claim, no second hold.
		const replay = await Client.as(b.apiUrl, "frank").then(x => x.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key }));
		expect(replay.status).toBe(201);
		expect(replay.body.id).toBe(claim.body.id);
		await converged(rs);
		expect((await holds(b))[0].status).toBe("confirmed");

		const done = await buyer.post(`/api/v1/orders/${order.id}/complete`);
		expect(done.status).toBe(200);
		const rows = await converged(rs);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000", spent: "0.400000000000000000" });
		expect((await holds(b))[0].status).toBe("settled");
		// Only B ever wrote the supply; only A wrote the order and the claim.
		const writers = await Promise.all(
			rs.regions.map(r => r.db.pool.query(`SELECT DISTINCT aggregate_type FROM outbox WHERE aggregate_id = ANY($1::uuid[])`, [[supply.id, order.id, claim.body.id]])),
		);
		expect(writers.map(w => w.rows.map(x => x.aggregate_type).sort())).toEqual([["claim", "order"], ["supply"], []]);
		expect((await checkInvariants(rs.regions.map(r => r.db.pool))).violations).toEqual([]);
	});

	it("a release gives the funds back in B", async () => {
		const [, b] = rs.regions;
		const { supply, order } = await setup("gina", "1");
		const shopper = await Client.as(b.apiUrl, "gina");
		const claim = await shopper.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(claim.status).toBe(201);
		// B learns of the claim from the log: until then it answers 404 for it, as for any entity it has not seen.
		await converged(rs);
		const released = await shopper.post(`/api/v1/claims/${claim.body.id}/release`);
		expect(released.status).toBe(200);
		const rows = await converged(rs);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000", spent: "0.000000000000000000" });
		expect(rows.orders.find(o => o.id === order.id)).toMatchObject({ status: "open" });
		expect((await holds(b)).find(h => h.claim_id === claim.body.id)!.status).toBe("released");
	});

	it("refused in B (not enough funds): no claim in A, no hold in B", async () => {
		const [a, b] = rs.regions;
		const { supply, order } = await setup("hank", "0.3");
		const res = await (await Client.as(a.apiUrl, "hank")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(res.status).toBe(409);
		expect(res.body.error).toMatchObject({ code: "INSUFFICIENT_SUPPLY", details: { available: "0.3", required: "0.4" } });
		expect((await a.db.pool.query(`SELECT count(*)::int AS n FROM claims WHERE order_id = $1`, [order.id])).rows[0].n).toBe(0);
		expect((await b.db.pool.query(`SELECT count(*)::int AS n FROM holds WHERE supply_id = $1`, [supply.id])).rows[0].n).toBe(0);
	});

	it("a claim that cannot be written after its hold gives the hold back (compensation)", async () => {
		const [a, b] = rs.regions;
		const { supply, order } = await setup("ivy", "1");
		const key = randomUUID();
		// The claim id was voided in A (as if B had asked about an earlier attempt): the second step refuses.
		await a.db.pool.query(`SELECT void_claim($1)`, [claimIdFor("ivy", key)]);
		const res = await (await Client.as(a.apiUrl, "ivy")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(res.status).toBe(409);
		expect(res.body.error.code).toBe("CLAIM_ABANDONED");
		expect((await b.db.pool.query(`SELECT reserved::text FROM supplies WHERE id = $1`, [supply.id])).rows[0].reserved).toBe("0.000000000000000000");
		expect((await holds(b)).find(h => h.claim_id === claimIdFor("ivy", key))!.status).toBe("released");
		const rows = await converged(rs);
		expect(rows.orders.find(o => o.id === order.id)).toMatchObject({ status: "open" });
	});

	it("a hold whose claim never came is released once A says so; one whose claim exists is kept", async () => {
		const [a, b] = rs.regions;
		const { supply, order } = await setup("jack", "1");
		// A hold made for a claim A never wrote (A crashed between the two steps).
		const orphan = randomUUID();
		const req = (claimId: string) => ({ claimId, supplyId: supply.id, orderId: order.id, claimerId: "jack", asset: "ETH", amount: "0.4", orderRegion: a.name, region: b.name });
		expect((await b.db.pool.query(`SELECT supply_hold($1::jsonb) AS r`, [JSON.stringify(req(orphan))])).rows[0].r.ok).toBe(true);
		expect((await b.db.pool.query(`SELECT reserved::text FROM supplies WHERE id = $1`, [supply.id])).rows[0].reserved).toBe("0.400000000000000000");
		// B's resolver asks A after HOLD_CONFIRM_SEC (3 s here): A voids the id and B releases the funds.
		const until = Date.now() + 10_000;
		while ((await holds(b)).find(h => h.claim_id === orphan)!.status !== "released" && Date.now() < until) await new Promise(r => setTimeout(r, 100));
		expect((await holds(b)).find(h => h.claim_id === orphan)!.status).toBe("released");
		expect((await a.db.pool.query(`SELECT outcome FROM claim_ids WHERE id = $1`, [orphan])).rows[0].outcome).toBe("void");
		const rows = await converged(rs);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000" });
		// A late second step for that id can no longer write the claim.
		const late = await a.db.pool.query(`SELECT void_claim($1) AS f`, [orphan]);
		expect(late.rows[0].f).toBe("void");
		expect((await checkInvariants(rs.regions.map(r => r.db.pool))).violations).toEqual([]);
	});
});
