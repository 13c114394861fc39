// `npm run cluster` driven from a test, as a user drives it: its own state folder and ports, the databases of its
// regions for the checkers, tokens signed with its secret.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";
import { PG_ADMIN_URL } from "./env";
import { Client } from "./http";
import { readAtOnce } from "./regions";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "..", "..");
const SCOPES = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];

export interface ClusterRegion {
	name: string;
	apiUrl: string;
	database: string;
}

export interface LocalCluster {
	dir: string;
	/** CLUSTER_NAME: its Moleculer namespace, the prefix of its databases and of its Kafka topics. */
	name: string;
	regions: ClusterRegion[];
	pools: pg.Pool[];
	cmd(...args: string[]): Promise<{ stdout: string; stderr: string }>;
	/** What `cluster kill REGION` does, at once (a crash at an exact step cannot wait for a command to start). */
	killNow(region: ClusterRegion): void;
	/** SIGKILLs one node of the cluster at once (`cluster kill-node` without the command's start-up). */
	killNodeNow(nodeName: string): void;
	as(region: ClusterRegion, user: string): Promise<Client>;
	/** Waits until every region's rows are equal; returns them (supplies, orders, claims). */
	converged(timeoutMs?: number): Promise<any[][]>;
	down(): Promise<void>;
}

export async function clusterUp(o: { regions: number; nodes: number; env?: Record<string, string>; up?: string[]; logLevel?: string }): Promise<LocalCluster> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-cluster-"));
	// Below the kernel's ephemeral range (32768-60999 here): ten processes' outgoing connections take ports there,
	// and one once took a region's API port before it listened (EADDRINUSE in CI). Away from the ports fetch
	// refuses (6000, 6665-6669, 10080, ...), and random, so that clusters of different runs rarely meet.
	const portBase = 20_000 + Math.floor(Math.random() * 40) * 200;
	const env = {
		...process.env,
		CLUSTER_DIR: dir,
		CLUSTER_NAME: `c${Math.random().toString(36).slice(2, 10)}`,
		CLUSTER_PORT_BASE: String(portBase),
		CLUSTER_LOG_LEVEL: o.logLevel ?? "warn",
		CLUSTER_PG_URL: PG_ADMIN_URL,
		...(o.env ? { CLUSTER_NODE_ENV: JSON.stringify(o.env) } : {}),
	};
	const cmd = (...args: string[]) => run(process.execPath, ["--import", "tsx", "scripts/cluster.ts", ...args], { cwd: ROOT, env, timeout: 240_000 });
	await cmd("up", "--regions", String(o.regions), "--nodes", String(o.nodes), ...(o.up ?? []));
	// The cluster's state as the command last wrote it (pids change as nodes restart).
	const readState = () => JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8"));
	const state = readState();
	const jwt = loadConfig({ JWT_SECRET: state.secrets.jwt, NODE_ENV: "test" }).jwt;
	const pools = (state.regions as ClusterRegion[]).map(r => {
		const u = new URL(PG_ADMIN_URL);
		u.pathname = `/${r.database}`;
		const p = new pg.Pool({ connectionString: u.toString(), max: 2 });
		p.on("error", () => undefined);
		return p;
	});
	const snapshot = (p: pg.Pool) =>
		readAtOnce(p, [
			`SELECT id, amount::text, reserved::text, spent::text, status, version FROM supplies ORDER BY id`,
			`SELECT id, status, claim_id, version FROM orders ORDER BY id`,
			`SELECT id, status, version FROM claims ORDER BY id`,
		]).then(rows => JSON.stringify(rows));
	return {
		dir,
		name: env.CLUSTER_NAME,
		regions: state.regions,
		pools,
		cmd,
		killNow(region) {
			const r = readState().regions.find((x: ClusterRegion) => x.name === region.name);
			for (const pid of [...r.nodes.map((n: { pid: number }) => n.pid), r.natsPid, r.redisPid].filter(Boolean))
				try {
					process.kill(pid, "SIGKILL");
				} catch {
					// already gone
				}
		},
		killNodeNow(nodeName) {
			const n = readState().regions.flatMap((r: { nodes: { name: string; pid: number }[] }) => r.nodes).find((x: { name: string }) => x.name === nodeName);
			if (!n) throw new Error(`no node ${nodeName} in the cluster`);
			process.kill(n.pid, "SIGKILL");
		},
		as: async (r, user) => new Client(r.apiUrl.replace("/api/v1", ""), await signToken(jwt, user, SCOPES)),
		async converged(timeoutMs = 30_000) {
			const until = Date.now() + timeoutMs;
			for (;;) {
				const snaps = await Promise.all(pools.map(snapshot));
				if (snaps.every(s => s === snaps[0])) return JSON.parse(snaps[0]);
				if (Date.now() > until) throw new Error("the regions did not converge");
				await new Promise(r => setTimeout(r, 100));
			}
		},
		async down() {
			await Promise.all(pools.map(p => p.end()));
			await cmd("down").catch(err => console.error(`cluster down: ${err.message}`));
			fs.rmSync(dir, { recursive: true, force: true });
		},
	};
}
