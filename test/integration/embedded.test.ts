// The zero-configuration run command: `npm start` with no DATABASE_URL, REDIS_URL or NATS_URL starts
// an embedded PostgreSQL, serves the API, keeps data across restarts, and recovers from a crash that
// left its PostgreSQL behind.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";
import { Client } from "../helpers/http";
import { freePort } from "../helpers/redis-server";

const ROOT = path.resolve(__dirname, "..", "..");
let dataDir: string;
let port: number;
let pgPort: number;
let proc: ChildProcess | undefined;
let lastLog = () => "";

function start(): ChildProcess {
	const env: Record<string, string> = {};
	for (const [k, v] of Object.entries(process.env))
		if (v !== undefined && !["DATABASE_URL", "REDIS_URL", "NATS_URL", "VITEST", "VITEST_POOL_ID", "VITEST_WORKER_ID"].includes(k)) env[k] = v;
	const child = spawn(
		process.execPath,
		// What `npm start` runs, with one region: scripts/start.ts hands over to moleculer-runner.
		["--import", "tsx", "scripts/start.ts"],
		{
			cwd: ROOT,
			env: { ...env, REGIONS: "us-central1", NODE_ENV: "development", LOG_FORMAT: "json", LOG_LEVEL: "warn", DATA_DIR: dataDir, PORT: String(port), EMBEDDED_PG_PORT: String(pgPort), METRICS_PORT: "0" },
			stdio: ["ignore", "pipe", "pipe"],
		},
	);
	let log = "";
	lastLog = () => log;
	child.stdout!.on("data", d => (log += d));
	child.stderr!.on("data", d => (log += d));
	child.on("exit", code => {
		if (code && code !== 0 && code !== 143) console.error(`npm start exited ${code}:\n${log.slice(-3000)}`);
	});
	return child;
}

async function ready(base: string) {
	await expect
		.poll(
			async () => {
				try {
					return (await fetch(`${base}/health/ready`)).status;
				} catch {
					return 0;
				}
			},
			{ timeout: 45_000, interval: 250 },
		)
		.toBe(200);
}

const exited = (p: ChildProcess) => new Promise(resolve => (p.exitCode !== null ? resolve(p.exitCode) : p.once("exit", resolve)));

function postmasterPid(): number | undefined {
	const file = path.join(dataDir, "postgres", "postmaster.pid");
	return fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").split("\n")[0]) : undefined;
}

function alive(pid: number) {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

beforeAll(async () => {
	// The embedded PostgreSQL runs as user "postgres" when we are root: give it a reachable folder.
	dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-embedded-"));
	fs.chmodSync(dataDir, 0o755);
	port = await freePort();
	pgPort = await freePort();
});

afterAll(async () => {
	if (proc && proc.exitCode === null) {
		proc.kill("SIGTERM");
		await exited(proc);
	}
	const pid = postmasterPid();
	if (pid && alive(pid)) process.kill(pid, "SIGINT");
	await new Promise(r => setTimeout(r, 300));
	fs.rmSync(dataDir, { recursive: true, force: true });
});

describe("npm start with no configuration", () => {
	it("serves the API on an embedded PostgreSQL that survives a crash and a restart", async () => {
		const base = `http://127.0.0.1:${port}`;
		proc = start();
		await ready(base);
		const ready1 = await (await fetch(`${base}/health/ready`)).json();
		expect(ready1).toEqual({ status: "ready" });

		// The embedded default (and only it) runs on the development secret.
		const shopper = new Client(base, await signToken(loadConfig({}).jwt, "embedded-shopper", ["supply:read", "supply:write"]));
		const created = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1.25" });
		expect(created.status, `${JSON.stringify(created.body)}\n${lastLog().slice(-2000)}`).toBe(201);

		// A crash: the app dies, its PostgreSQL is orphaned and still holds the data folder.
		proc.kill("SIGKILL");
		await exited(proc);
		const orphan = postmasterPid();
		expect(orphan && alive(orphan)).toBe(true);

		proc = start();
		await ready(base);
		const again = await shopper.get(`/api/v1/supplies/${created.body.id}`);
		expect(again.status).toBe(200);
		expect(again.body.amount).toBe("1.25");

		// A clean stop takes the embedded PostgreSQL down with it.
		const pid = postmasterPid()!;
		proc.kill("SIGTERM");
		await exited(proc);
		await expect.poll(() => alive(pid), { timeout: 10_000 }).toBe(false);
	});
});
