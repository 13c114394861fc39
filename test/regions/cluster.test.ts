// The local multi-region cluster as a user runs it: `npm run cluster -- up` starts every region as separate
// processes (own NATS, own database, several nodes), joined by the Kafka test broker for events and the region
// link. A supply created in A, an order in B, claimed through C, completed through A; forwarded writes answer as
// local ones; a replayed key through another region returns the first claim; every region ends with the same rows.
// Then crashes at each step of a claim across regions (docs/multi-region.md, "Crash points"): the order's region
// or the supply's is SIGKILLed while the order's actor stands between the hold (written in the supply's region)
// and the claim, held there by a failpoint. After the restart: no double claim, no wrong balance, every region
// equal, and no hold left standing past its bound. One file, one cluster: the tests run one after the other.
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import { claimIdFor } from "../../src/store/holds";
import { item } from "../helpers/http";
import { clusterUp, type ClusterRegion, type LocalCluster } from "../helpers/local-cluster";

// Longer than any claim's deadline (REQUEST_TIMEOUT_MS), as the configuration demands.
const HOLD_CONFIRM_SEC = 5;
let cl: LocalCluster;
let regions: ClusterRegion[];
let pools: LocalCluster["pools"];
beforeAll(async () => {
	cl = await clusterUp({
		regions: 3,
		nodes: 2,
		// The pause leaves time to kill a region between a claim's steps (the test waits for the failpoint's log line,
		// so A has the hold's answer, and kills at once), well inside the claim's 5 s action timeout.
		env: { FAILPOINTS: "after-hold=pause:1500", HOLD_CONFIRM_SEC: String(HOLD_CONFIRM_SEC), REQUEST_TIMEOUT_MS: "4500", SWEEP_INTERVAL_MS: "250" },
	});
	regions = cl.regions;
	pools = cl.pools;
}, 240_000);
afterAll(async () => cl?.down(), 120_000);
// A failed test must not leave a region down or cut off for the next one.
afterEach(async () => {
	const status = JSON.parse((await cl.cmd("status")).stdout);
	if (status.regions.some((r: { partitioned: boolean }) => r.partitioned)) await cl.cmd("heal");
	for (const r of status.regions)
		if (!r.nodes.every((n: { alive: boolean }) => n.alive)) {
			await cl.cmd("kill", r.name);
			await cl.cmd("start", r.name);
		}
}, 120_000);

const as = (r: ClusterRegion, user: string) => cl.as(r, user);
const sameEverywhere = (timeoutMs?: number) => cl.converged(timeoutMs);
const cluster = (...args: string[]) => cl.cmd(...args);

describe("npm run cluster: three regions as processes", () => {
	it("a supply in A, an order in B, claimed through C, completed through A", async () => {
		const [a, b, c] = regions;
		const supply = await (await as(a, "sam")).post("/api/v1/supplies", { asset: "ETH", amount: "3" });
		expect(supply.status).toBe(201);
		expect(supply.body.homeRegion).toBe(a.name);
		const order = await (await as(b, "tia")).post("/api/v1/orders", { asset: "ETH", items: [item("0.75", 2)] });
		expect(order.status).toBe(201);
		await sameEverywhere();

		const key = randomUUID();
		const claim = await (await as(c, "sam")).post("/api/v1/claims", { orderId: order.body.id, supplyId: supply.body.id }, { "Idempotency-Key": key });
		expect(claim.status, JSON.stringify(claim.body)).toBe(201);
		expect(claim.headers.get("x-region")).toBe(b.name);
		expect(claim.headers.get("location")).toBe(`/api/v1/claims/${claim.body.id}`);
		// The same key through A: the first claim, replayed.
		const replay = await (await as(a, "sam")).post("/api/v1/claims", { orderId: order.body.id, supplyId: supply.body.id }, { "Idempotency-Key": key });
		expect(replay.status).toBe(201);
		expect(replay.body.id).toBe(claim.body.id);
		expect(replay.headers.get("idempotent-replayed")).toBe("true");

		await sameEverywhere();
		const done = await (await as(a, "tia")).post(`/api/v1/orders/${order.body.id}/complete`);
		expect(done.status).toBe(200);
		expect(done.headers.get("x-region")).toBe(b.name);
		const rows = await sameEverywhere();
		expect(rows[0][0]).toMatchObject({ id: supply.body.id, spent: "1.500000000000000000", reserved: "0.000000000000000000" });
		expect(rows[1][0]).toMatchObject({ id: order.body.id, status: "completed" });
		expect((await checkInvariants(pools)).violations).toEqual([]);
		expect((await checkHistory(pools)).violations).toEqual([]);
	});

	it("a forwarded write answers exactly as the owner does, refusals included", async () => {
		const [a, , c] = regions;
		const supply = (await (await as(a, "uma")).post("/api/v1/supplies", { asset: "USDC", amount: "10" })).body;
		await sameEverywhere();
		const local = await (await as(a, "uma")).patch(`/api/v1/supplies/${supply.id}`, { amount: "12" });
		const remote = await (await as(c, "uma")).patch(`/api/v1/supplies/${supply.id}`, { amount: "12.5" });
		expect([local.status, remote.status]).toEqual([200, 200]);
		expect(remote.headers.get("x-region")).toBe(a.name);
		expect(remote.body).toMatchObject({ id: supply.id, amount: "12.5", version: 3 });
		const bad = await (await as(c, "uma")).patch(`/api/v1/supplies/${supply.id}`, { amount: "12.1234567" });
		const badLocal = await (await as(a, "uma")).patch(`/api/v1/supplies/${supply.id}`, { amount: "12.1234567" });
		expect(bad.status).toBe(badLocal.status);
		expect(bad.body.error.code).toBe(badLocal.body.error.code);
		// Someone else's supply: the same 404 from anywhere.
		const stranger = await (await as(c, "vic")).post(`/api/v1/supplies/${supply.id}/pause`);
		expect(stranger.status).toBe(404);
	});

	it("status lists every region, node and pid; a killed region's writes answer 503, and it comes back", async () => {
		const status = JSON.parse((await cluster("status")).stdout);
		expect(status.regions.map((r: { name: string; ready: boolean }) => [r.name, r.ready])).toEqual(regions.map(r => [r.name, true]));
		expect(status.regions.every((r: { nodes: { alive: boolean; pid: number }[] }) => r.nodes.length === 2 && r.nodes.every(n => n.alive && n.pid > 0))).toBe(true);
		const [a, , c] = regions;
		const supply = (await (await as(a, "wes")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		await sameEverywhere();
		await cluster("kill", a.name);
		// Until failover lands, A's entities cannot be written while A is gone: a retryable 503, never a 500 or a hang.
		const refused = await (await as(c, "wes")).post(`/api/v1/supplies/${supply.id}/pause`);
		expect(refused.status).toBe(503);
		expect(refused.headers.get("retry-after")).toBeTruthy();
		// Reads of A's entities still come from C's copy.
		expect((await (await as(c, "wes")).get(`/api/v1/supplies/${supply.id}`)).status).toBe(200);
		await cluster("start", a.name);
		await expect.poll(async () => (await (await as(c, "wes")).post(`/api/v1/supplies/${supply.id}/pause`)).status, { timeout: 30_000, interval: 500 }).toBe(200);
	});

	it("partition C: C serves its own clients, what crosses to or from C answers 503, and after heal every region is equal", async () => {
		const [a, , c] = regions;
		const supplyC = (await (await as(c, "pia")).post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		const orderA = (await (await as(a, "pia-buyer")).post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })).body;
		await sameEverywhere();

		await cluster("partition", c.name);
		const health = async (from: ClusterRegion, of: ClusterRegion) =>
			(await (await as(from, "pia")).get("/api/v1/regions")).body.regions.find((x: { name: string }) => x.name === of.name).health;
		// Each side loses the other once the link's heartbeats stop: A sees C down, and C sees A down.
		await expect.poll(() => health(a, c), { timeout: 30_000, interval: 500 }).toBe("down");
		await expect.poll(() => health(c, a), { timeout: 30_000, interval: 500 }).toBe("down");

		// C is alive: its own clients write what C owns.
		const during = await (await as(c, "pia")).post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(during.status).toBe(201);
		expect(during.body.homeRegion).toBe(c.name);
		expect((await (await as(c, "pia")).patch(`/api/v1/supplies/${supplyC.id}`, { amount: "2.5" })).status).toBe(200);
		// A is alive too, for what A owns.
		const orderDuring = await (await as(a, "pia-buyer")).post("/api/v1/orders", { asset: "ETH", items: [item("0.25")] });
		expect(orderDuring.status).toBe(201);
		// What needs the other side is refused, retryably: A's order through C, C's supply through A, and a claim
		// in A that would hold C's funds.
		const throughC = await (await as(c, "pia-buyer")).post(`/api/v1/orders/${orderA.id}/cancel`);
		const throughA = await (await as(a, "pia")).post(`/api/v1/supplies/${supplyC.id}/pause`);
		const claim = await (await as(a, "pia")).post("/api/v1/claims", { orderId: orderA.id, supplyId: supplyC.id }, { "Idempotency-Key": randomUUID() });
		for (const refused of [throughC, throughA, claim]) {
			expect(refused.status).toBe(503);
			expect(refused.headers.get("retry-after")).toBeTruthy();
		}
		expect((await pools[0].query(`SELECT count(*)::int AS n FROM claims WHERE order_id = $1`, [orderA.id])).rows[0].n).toBe(0);
		expect((await pools[2].query(`SELECT count(*)::int AS n FROM holds WHERE supply_id = $1`, [supplyC.id])).rows[0].n).toBe(0);

		await cluster("heal", c.name);
		expect(JSON.parse((await cluster("status")).stdout).regions.every((r: { partitioned: boolean }) => !r.partitioned)).toBe(true);
		// What each side wrote alone reaches the other, and every region ends equal.
		const [supplies, orders] = await sameEverywhere(60_000);
		expect(supplies.map((x: { id: string }) => x.id)).toContain(during.body.id);
		expect(orders.map((x: { id: string }) => x.id)).toContain(orderDuring.body.id);
		// And the claim that was refused goes through once the link is back.
		const key = randomUUID();
		await expect
			.poll(async () => (await (await as(c, "pia")).post("/api/v1/claims", { orderId: orderA.id, supplyId: supplyC.id }, { "Idempotency-Key": key })).status, {
				timeout: 30_000,
				interval: 500,
			})
			.toBe(201);
		await sameEverywhere(30_000);
		expect((await checkInvariants(pools)).violations).toEqual([]);
	});

	it("an applier killed mid-stream (its region's node SIGKILLed under writes) resumes without loss or double apply", async () => {
		const [a, b] = regions;
		const writer = await as(a, "ray");
		let stop = false;
		let created = 0;
		const load = (async () => {
			while (!stop) {
				const r = await writer.post("/api/v1/orders", { asset: "ETH", items: [item("0.01")] }).catch(() => undefined);
				if (r?.status === 201) created++;
			}
		})();
		await new Promise(r => setTimeout(r, 1500));
		await cluster("kill", b.name);
		await new Promise(r => setTimeout(r, 1000));
		await cluster("start", b.name);
		await new Promise(r => setTimeout(r, 1000));
		stop = true;
		await load;
		expect(created).toBeGreaterThan(20);
		const rows = await sameEverywhere(60_000);
		expect(rows[1].filter((o: { status: string }) => o.status === "open").length).toBeGreaterThanOrEqual(created);
		// Every event of A applied in B exactly once in effect: B's rows equal A's, versions without gaps.
		expect((await checkHistory(pools)).violations).toEqual([]);
		const redelivered = await pools[1].query(`SELECT coalesce(sum(skipped), 0)::int AS n FROM replication_progress WHERE source = $1`, [a.name]);
		console.log(`applier kill: ${created} orders written in A during the kill; B skipped ${redelivered.rows[0].n} redelivered events`);
	}, 180_000);
});

/** A's order actor has the hold's answer and stands at the failpoint (its log line names the claim). */
async function atFailpoint(claimId: string, answer: Promise<unknown>) {
	const logs = path.join(cl.dir, "logs");
	await until(
		`the failpoint of claim ${claimId}`,
		async () => fs.readdirSync(logs).some(f => f.endsWith(".log") && fs.readFileSync(path.join(logs, f), "utf8").includes(`(claim ${claimId})`)),
		found => found,
		15_000,
		20,
	).catch(async err => {
		// Why the claim never got there: its answer, if one came.
		const got = await Promise.race([answer, new Promise(r => setTimeout(() => r("no answer yet"), 100))]);
		throw new Error(`${(err as Error).message}; the claim's answer: ${JSON.stringify((got as { status?: number; body?: unknown })?.status !== undefined ? { status: (got as any).status, body: (got as any).body } : String(got))}`);
	});
}

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
	// The tests before kill and restart nodes: a region may still be coming back (503) when this one starts.
	const created = async (what: string, post: () => Promise<{ status: number; body: any }>) =>
		(await until(`${what} created`, post, r => r.status === 201, 60_000, 250)).body;
	const supply = await created("the supply", async () => (await cl.as(b, shopper)).post("/api/v1/supplies", { asset: "ETH", amount: "1" }));
	const order = await created("the order", async () => (await cl.as(a, `${shopper}-buyer`)).post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] }));
	await cl.converged();
	// The link between A and B is up both ways (after the tests that kill and cut regions, it may still be rejoining):
	// a claim sent before would be refused with 503 REGION_UNREACHABLE and never reach the failpoint.
	// Another answer than the list (a region's node still restarting after the tests before) is waited out too.
	const sees = async (from: ClusterRegion, to: ClusterRegion) => {
		const res = await (await cl.as(from, shopper)).get("/api/v1/regions");
		return (res.body?.regions?.find((r: { name: string }) => r.name === to.name)?.health as string | undefined) ?? `HTTP ${res.status}`;
	};
	await until(`${a.name} and ${b.name} linked`, async () => [await sees(a, b), await sees(b, a)], v => v.every(h => h === "up"), 60_000, 250);
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
		await atFailpoint(claimId, answer);
		expect(await holdOf(claimId)).toBe("held");
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
		await atFailpoint(claimId, answer);
		expect(await holdOf(claimId)).toBe("held");
		cl.killNow(b);
		// 201, or (on a loaded machine) a timeout: an unknown outcome, which a client settles by retrying the key.
		const sentAt = Date.now();
		let claim = await answer;
		console.log(`claim across regions with B killed after its hold: ${claim.status} ${claim.body?.error?.code ?? ""} after ${Date.now() - sentAt} ms more`);
		for (let i = 0; claim.status === 503 && i < 30; i++) {
			await new Promise(r => setTimeout(r, 500));
			claim = await (await cl.as(a, "yuri")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		}
		expect(claim.status, JSON.stringify(claim.body)).toBe(201);
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
