// The local multi-region cluster as a user runs it: `npm run cluster -- up` starts every region as separate
// processes (own NATS, own database, several nodes), joined by the Kafka test broker for events and the region
// link. A supply created in A, an order in B, claimed through C, completed through A; forwarded writes answer as
// local ones; a replayed key through another region returns the first claim; every region ends with the same rows.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import { item } from "../helpers/http";
import { clusterUp, type ClusterRegion, type LocalCluster } from "../helpers/local-cluster";

let cl: LocalCluster;
let regions: ClusterRegion[];
let pools: LocalCluster["pools"];
beforeAll(async () => {
	cl = await clusterUp({ regions: 3, nodes: 2 });
	regions = cl.regions;
	pools = cl.pools;
}, 240_000);
afterAll(async () => cl?.down(), 120_000);

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
	});
});
