// The local multi-region cluster as a user runs it: `npm run cluster -- up` starts every region as separate
// processes (own NATS, own database, several nodes), joined by the Kafka test broker for events and the region
// link. A supply created in A, an order in B, claimed through C, completed through A; forwarded writes answer as
// local ones; a replayed key through another region returns the first claim; every region ends with the same rows.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import { signToken } from "../../src/lib/jwt";
import { loadConfig } from "../../config";
import { Client, item } from "../helpers/http";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "..", "..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-cluster-"));
// Away from the ports fetch refuses (6000, 6665-6669, ...) and from other tests' random ports.
const portBase = 41_000 + Math.floor(Math.random() * 40) * 200;
const env = { ...process.env, CLUSTER_DIR: dir, CLUSTER_PORT_BASE: String(portBase), CLUSTER_LOG_LEVEL: "warn" };
const cluster = (...args: string[]) => run(process.execPath, ["--import", "tsx", "scripts/cluster.ts", ...args], { cwd: ROOT, env, timeout: 240_000 });

interface Region {
	name: string;
	apiUrl: string;
	database: string;
}
let regions: Region[];
let secret: string;
let pools: pg.Pool[];

beforeAll(async () => {
	const up = await cluster("up", "--regions", "3", "--nodes", "2");
	expect(up.stdout).toContain("cluster up");
	const state = JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8"));
	regions = state.regions;
	secret = state.secrets.jwt;
	pools = regions.map(r => {
		const u = new URL(process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
		u.pathname = `/${r.database}`;
		const p = new pg.Pool({ connectionString: u.toString(), max: 2 });
		p.on("error", () => undefined);
		return p;
	});
}, 240_000);

afterAll(async () => {
	await Promise.all((pools ?? []).map(p => p.end()));
	await cluster("down").catch(err => console.error(`cluster down: ${err.message}`));
	fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

const jwt = () => loadConfig({ JWT_SECRET: secret, NODE_ENV: "test" }).jwt;
const scopes = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];
const as = async (r: Region, user: string) => new Client(r.apiUrl.replace("/api/v1", ""), await signToken(jwt(), user, scopes));

async function sameEverywhere(timeoutMs = 30_000) {
	const q = (p: pg.Pool) =>
		Promise.all([
			p.query(`SELECT id, amount::text, reserved::text, spent::text, status, version FROM supplies ORDER BY id`),
			p.query(`SELECT id, status, claim_id, version FROM orders ORDER BY id`),
			p.query(`SELECT id, status, version FROM claims ORDER BY id`),
		]).then(rs => JSON.stringify(rs.map(r => r.rows)));
	const until = Date.now() + timeoutMs;
	for (;;) {
		const snaps = await Promise.all(pools.map(q));
		if (snaps.every(s => s === snaps[0])) return JSON.parse(snaps[0]);
		if (Date.now() > until) throw new Error("the regions did not converge");
		await new Promise(r => setTimeout(r, 100));
	}
}

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
});
