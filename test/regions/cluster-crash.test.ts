// Crashes at each step of a claim across regions (docs/multi-region.md, "Crash points"), on the local cluster's
// separate processes: the order's region A or the supply's region B is SIGKILLed while A's actor stands between
// the hold (written in B) and the claim (to be written in A), held there by a failpoint. After the restart: no
// double claim, no negative or wrong balance, every region equal, and no hold left standing past its bound.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import { claimIdFor } from "../../src/store/holds";
import { item } from "../helpers/http";
import { clusterUp, type LocalCluster } from "../helpers/local-cluster";

// Longer than any claim's deadline (REQUEST_TIMEOUT_MS), as the configuration demands.
const HOLD_CONFIRM_SEC = 5;
let cl: LocalCluster;
beforeAll(async () => {
	cl = await clusterUp({
		regions: 2,
		nodes: 1,
		env: { FAILPOINTS: "after-hold=pause:2500", HOLD_CONFIRM_SEC: String(HOLD_CONFIRM_SEC), REQUEST_TIMEOUT_MS: "4500", SWEEP_INTERVAL_MS: "250" },
	});
}, 240_000);
afterAll(async () => cl?.down(), 120_000);

const holdOf = async (claimId: string) =>
	(await cl.pools[1].query(`SELECT status FROM holds WHERE claim_id = $1`, [claimId])).rows[0]?.status as string | undefined;

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000, everyMs = 100): Promise<T> {
	const end = Date.now() + ms;
	for (;;) {
		const v = await f();
		if (ok(v)) return v;
		if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)})`);
		await new Promise(r => setTimeout(r, everyMs));
	}
}

async function setup(shopper: string) {
	const [a, b] = cl.regions;
	const supply = (await (await cl.as(b, shopper)).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
	const order = (await (await cl.as(a, `${shopper}-buyer`)).post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] })).body;
	await cl.converged();
	return { supply, order };
}

async function checked() {
	const rows = await cl.converged(60_000);
	expect((await checkInvariants(cl.pools)).violations).toEqual([]);
	const history = await checkHistory(cl.pools);
	if (history.violations.length) console.log(JSON.stringify(history.violations, null, 1));
	expect(history.violations).toEqual([]);
	return rows;
}

describe("a claim across regions, crashed between its steps", () => {
	it("the order's region dies after the hold: the hold is released once A is back and says the claim never came", async () => {
		const [a, b] = cl.regions;
		const { supply, order } = await setup("xena");
		const key = randomUUID();
		const claimId = claimIdFor("xena", key);
		const answer = (await cl.as(a, "xena")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key }).catch(e => e);
		await until("the hold in B", () => holdOf(claimId), s => s === "held", 10_000, 20);
		cl.killNow(a);
		// The client's answer never comes: an unknown outcome, not a refusal.
		const got = await answer;
		expect(got instanceof Error || got.status >= 500).toBe(true);
		const killedAt = Date.now();
		await cl.cmd("start", a.name);
		// B asks A after HOLD_CONFIRM_SEC; A (back) voids the id; B gives the funds back.
		await until("the hold released", () => holdOf(claimId), s => s === "released");
		console.log(`orphaned hold released ${Date.now() - killedAt} ms after the kill (bound: restart + ${HOLD_CONFIRM_SEC} s + a sweep)`);
		const rows = await checked();
		expect(rows[0].find((s: { id: string }) => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000" });
		expect(rows[2].find((c: { id: string }) => c.id === claimId)).toBeUndefined();
		// The key's first attempt was abandoned: a retry says so, and a new key claims.
		const retry = await (await cl.as(a, "xena")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(retry.status).toBe(409);
		expect(retry.body.error.code).toBe("CLAIM_ABANDONED");
		const fresh = await (await cl.as(b, "xena")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(fresh.status, JSON.stringify(fresh.body)).toBe(201);
		await checked();
	});

	it("the supply's region dies after the hold: the claim is written, settled while B is down, and B spends the funds when it is back", async () => {
		const [a, b] = cl.regions;
		const { supply, order } = await setup("yuri");
		const key = randomUUID();
		const claimId = claimIdFor("yuri", key);
		const answer = (await cl.as(a, "yuri")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		await until("the hold in B", () => holdOf(claimId), s => s === "held", 10_000, 20);
		cl.killNow(b);
		const claim = await answer;
		expect(claim.status).toBe(201);
		expect(claim.body.id).toBe(claimId);
		const done = await (await cl.as(a, "yuri-buyer")).post(`/api/v1/orders/${order.id}/complete`);
		expect(done.status).toBe(200);
		await cl.cmd("start", b.name);
		await until("the hold settled", () => holdOf(claimId), s => s === "settled");
		const rows = await checked();
		expect(rows[0].find((s: { id: string }) => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000", spent: "0.400000000000000000" });
		expect(rows[1].find((o: { id: string }) => o.id === order.id)).toMatchObject({ status: "completed" });
	});

	it("the supply's region is down before the hold: 503, and nothing is written anywhere", async () => {
		const [a, b] = cl.regions;
		const { supply, order } = await setup("zoe");
		await cl.cmd("kill", b.name);
		const res = await (await cl.as(a, "zoe")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(res.status).toBe(503);
		expect(res.headers.get("retry-after")).toBeTruthy();
		expect((await cl.pools[0].query(`SELECT count(*)::int AS n FROM claims WHERE order_id = $1`, [order.id])).rows[0].n).toBe(0);
		await cl.cmd("start", b.name);
		expect((await cl.pools[1].query(`SELECT count(*)::int AS n FROM holds WHERE supply_id = $1`, [supply.id])).rows[0].n).toBe(0);
		await checked();
	});
});
