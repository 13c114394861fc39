// `npm start` with no configuration: three regions in one process, each with its API on PORT + i and its own
// database in one embedded PostgreSQL, joined by the in-memory event log and link. A user can call any region.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";
import { Client, item } from "../helpers/http";
import { freePort, freePortRange } from "../helpers/ports";

const ROOT = path.resolve(__dirname, "..", "..");
const REGIONS = ["us-central1", "europe-west1", "asia-east1"];
let dataDir: string;
let port: number;
let proc: ChildProcess | undefined;
let log = "";

beforeAll(async () => {
	dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-regions-"));
	fs.chmodSync(dataDir, 0o755);
	port = await freePortRange(REGIONS.length);
	const env: Record<string, string> = {};
	for (const [k, v] of Object.entries(process.env))
		if (v !== undefined && !["DATABASE_URL", "REDIS_URL", "NATS_URL", "REGION", "REGIONS", "VITEST", "VITEST_POOL_ID", "VITEST_WORKER_ID"].includes(k)) env[k] = v;
	// What `npm start` runs (package.json), without npm in between.
	proc = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
		cwd: ROOT,
		env: { ...env, NODE_ENV: "development", LOG_FORMAT: "json", LOG_LEVEL: "info", DATA_DIR: dataDir, PORT: String(port), EMBEDDED_PG_PORT: String(await freePort()), METRICS_PORT: "0" },
		stdio: ["ignore", "pipe", "pipe"],
	});
	proc.stdout!.on("data", d => (log += d));
	proc.stderr!.on("data", d => (log += d));
	for (const until = Date.now() + 60_000; !log.includes("3 regions running in this process"); await new Promise(r => setTimeout(r, 200)))
		if (Date.now() > until || proc.exitCode !== null) {
			// Why it stopped comes first in the message (its last lines are the brokers stopping).
			const why = log.split("\n").filter(l => l.startsWith("Start failed") || /"level":(50|60)/.test(l));
			throw new Error(`npm start did not list its regions (exit code ${proc.exitCode}):\n${why.slice(0, 5).join("\n").slice(0, 3000)}\n...\n${log.slice(-1500)}`);
		}
}, 90_000);

afterAll(async () => {
	if (proc && proc.exitCode === null) {
		proc.kill("SIGTERM");
		await new Promise(r => proc!.once("exit", r));
	}
	fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("npm start: three regions in one process", () => {
	it("lists each region's API, and each answers as itself", async () => {
		for (const [i, region] of REGIONS.entries()) {
			expect(log).toContain(`${region}`);
			expect(log).toContain(`API http://127.0.0.1:${port + i}/api/v1`);
			const res = await fetch(`http://127.0.0.1:${port + i}/health/ready`);
			expect(res.status).toBe(200);
			expect(res.headers.get("x-region")).toBe(region);
		}
	});

	it("creates in one region, reads and claims through another, and every region converges", async () => {
		const jwt = loadConfig({}).jwt;
		const api = (i: number) => `http://127.0.0.1:${port + i}`;
		const scopes = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];
		const as = async (i: number, user: string) => new Client(api(i), await signToken(jwt, user, scopes));
		const supply = (await (await as(1, "ann")).post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		expect(supply.homeRegion).toBe("europe-west1");
		const order = (await (await as(0, "ben")).post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })).body;
		expect(order.homeRegion).toBe("us-central1");
		const claimer = await as(2, "ann");
		// asia-east1 has both copies once replication delivered them.
		await expect.poll(async () => (await claimer.get(`/api/v1/orders/${order.id}`)).status, { timeout: 10_000 }).toBe(200);
		await expect.poll(async () => (await claimer.get(`/api/v1/supplies/${supply.id}`)).status, { timeout: 10_000 }).toBe(200);
		const claim = await claimer.post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": "embedded-1" });
		expect(claim.status).toBe(201);
		expect(claim.headers.get("x-region")).toBe("us-central1");
		// Every region's copy of the supply shows the reservation B made.
		for (const i of [0, 1, 2])
			await expect
				.poll(async () => (await (await as(i, "ann")).get(`/api/v1/supplies/${supply.id}`)).body.reserved, { timeout: 10_000 })
				.toBe("0.5");
		const regions = await claimer.get("/api/v1/regions");
		expect(regions.body.servedBy).toBe("asia-east1");
		expect(regions.body.replication).toBe("memory");
		expect(regions.body.regions.map((r: { name: string; health: string }) => [r.name, r.health])).toEqual(REGIONS.map(r => [r, "up"]));
		// One database per region in the one embedded server.
		expect(log).not.toMatch(/"level":50/);
	});
});
