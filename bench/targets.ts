// What a benchmark measures, started the way the README tells a user to start it: the embedded default
// (`npm start` with no configuration: one process, embedded PostgreSQL, memory cache) and the README's
// cluster split (api+supply+order, two claiming nodes) over the local NATS, Redis and PostgreSQL.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { loadConfig, type Config } from "../config";
import { createTestDatabase } from "../test/helpers/db";
import { freePort } from "../test/helpers/ports";
import { PG_ADMIN_URL, NATS_URL, REDIS_URL } from "../test/helpers/env";
import { pidsNamed } from "./proc";

const ROOT = path.resolve(__dirname, "..");

export interface Target {
	name: "embedded" | "cluster";
	apiUrl: string;
	/** The database the nodes write, for the checkers. */
	databaseUrl: string;
	/** An admin connection to the same PostgreSQL server, for pgbench's scratch database. */
	adminUrl: string;
	natsUrl?: string;
	jwt: Config["jwt"];
	nodes: { name: string; pid: number }[];
	/** Process groups whose CPU is counted per claim. */
	groups: Record<string, () => number[]>;
	stop(): Promise<void>;
}

interface Node {
	name: string;
	proc: ChildProcess;
	output: string;
}

// The same command as `npm start`, without npm's own processes in between (their CPU would blur the figures).
function startNode(name: string, env: Record<string, string>): Node {
	const args = ["--max-semi-space-size=64", "--import", "tsx", "node_modules/moleculer/bin/moleculer-runner.js", "--config", "moleculer.config.ts", "--mask", "**/*.service.ts", "services"];
	const base = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "warn", LOG_FORMAT: "json" };
	const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
	const node: Node = { name, proc, output: "" };
	// Every node's log in .bench/logs/, to read after a run that met errors.
	fs.mkdirSync(path.join(ROOT, ".bench", "logs"), { recursive: true });
	const file = fs.createWriteStream(path.join(ROOT, ".bench", "logs", `${name}.log`));
	const keep = (d: Buffer) => {
		node.output = (node.output + d.toString()).slice(-8000);
		file.write(d);
	};
	proc.once("exit", () => file.end());
	proc.stdout!.on("data", keep);
	proc.stderr!.on("data", keep);
	const reap = () => proc.kill("SIGKILL");
	process.once("exit", reap);
	proc.once("exit", () => process.removeListener("exit", reap));
	return node;
}

async function stopNode(n: Node) {
	if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
	const gone = new Promise(r => n.proc.once("exit", r));
	n.proc.kill("SIGTERM");
	const t = setTimeout(() => n.proc.kill("SIGKILL"), 15_000);
	await gone;
	clearTimeout(t);
}

async function waitReady(url: string, nodes: Node[], timeoutMs = 120_000) {
	const until = Date.now() + timeoutMs;
	for (;;) {
		const dead = nodes.find(n => n.proc.exitCode !== null);
		if (dead) throw new Error(`node ${dead.name} exited (${dead.proc.exitCode}):\n${dead.output}`);
		const ok = await fetch(`${url}/health/ready`).then(r => r.status === 200, () => false);
		if (ok) return;
		if (Date.now() > until) throw new Error(`${url} was not ready within ${timeoutMs} ms:\n${nodes.map(n => n.output).join("\n")}`);
		await new Promise(r => setTimeout(r, 250));
	}
}

const LIMITS = { RATE_LIMIT: "100000000", RATE_LIMIT_IP: "100000000" };

export async function startEmbedded(extraEnv: Record<string, string> = {}): Promise<Target> {
	// Inside the project: the embedded PostgreSQL runs as user postgres, which must reach its data folder.
	const dataDir = path.join(ROOT, ".bench", `data-${randomBytes(4).toString("hex")}`);
	fs.mkdirSync(dataDir, { recursive: true });
	const [port, pgPort, metrics] = await Promise.all([freePort(), freePort(), freePort()]);
	const env = { PORT: String(port), METRICS_PORT: String(metrics), DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), ...LIMITS, ...extraEnv };
	const node = startNode("all", env);
	const apiUrl = `http://127.0.0.1:${port}`;
	const adminUrl = `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`;
	try {
		await waitReady(apiUrl, [node]);
	} catch (err) {
		await stopNode(node);
		throw err;
	}
	return {
		name: "embedded",
		apiUrl,
		databaseUrl: adminUrl,
		adminUrl,
		jwt: loadConfig({}).jwt,
		nodes: [{ name: "all services", pid: node.proc.pid! }],
		groups: { "node (all services)": () => [node.proc.pid!], postgres: () => pidsNamed("postgres") },
		async stop() {
			await stopNode(node);
			fs.rmSync(dataDir, { recursive: true, force: true });
		},
	};
}

export async function startCluster(extraEnv: Record<string, string> = {}): Promise<Target> {
	const db = await createTestDatabase();
	const common: Record<string, string> = {
		NAMESPACE: `bench${randomBytes(3).toString("hex")}`,
		DATABASE_URL: db.url,
		REDIS_URL,
		NATS_URL,
		JWT_SECRET: randomBytes(32).toString("base64"),
		INTERNAL_SECRET: randomBytes(32).toString("base64"),
		...LIMITS,
		...extraEnv,
	};
	const [port, ...metrics] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
	const gateway = startNode("api+supply+order", {
		...common,
		NODE_ID: "bench-gw",
		PORT: String(port),
		METRICS_PORT: String(metrics[0]),
		SERVICES: "services/api.service.ts,services/supply.service.ts,services/order.service.ts",
	});
	const apiUrl = `http://127.0.0.1:${port}`;
	const nodes = [gateway];
	const stopAll = async () => {
		await Promise.all(nodes.map(stopNode));
		await db.drop();
	};
	try {
		// The first node applies the migrations; the claiming nodes start once it has.
		await waitReady(apiUrl, nodes);
		for (const i of [1, 2])
			nodes.push(
				startNode(`claiming-${i}`, { ...common, NODE_ID: `bench-claiming-${i}`, METRICS_PORT: String(metrics[i]), SERVICES: "services/claiming.service.ts" }),
			);
		await waitReady(apiUrl, nodes);
	} catch (err) {
		await stopAll();
		throw err;
	}
	const groups: Target["groups"] = {};
	for (const n of nodes) groups[`node ${n.name}`] = () => [n.proc.pid!];
	Object.assign(groups, { postgres: () => pidsNamed("postgres"), "nats-server": () => pidsNamed("nats-server"), "redis-server": () => pidsNamed("redis-server") });
	return {
		name: "cluster",
		apiUrl,
		databaseUrl: db.url,
		adminUrl: PG_ADMIN_URL,
		natsUrl: NATS_URL,
		jwt: loadConfig(common).jwt,
		nodes: nodes.map(n => ({ name: n.name, pid: n.proc.pid! })),
		groups,
		stop: stopAll,
	};
}
