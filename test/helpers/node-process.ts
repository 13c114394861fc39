// A node in a process of its own, started the way production starts one (moleculer-runner with
// moleculer.config.ts), so a test can SIGKILL it: a crash the in-process brokers cannot fake, since
// stopping an in-process broker is always graceful.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { TEST_INTERNAL_SECRET, TEST_JWT_SECRET } from "./env";
import { seesService } from "./nodes";
import { killProcess } from "./process";

const ROOT = path.resolve(__dirname, "..", "..");

export interface NodeProcessOptions {
	nodeID: string;
	namespace: string;
	/** Service names: each runs from services/<name>.service.ts. */
	services: string[];
	natsUrl: string;
	databaseUrl: string;
	redisUrl?: string;
	env?: Record<string, string>;
}

export class NodeProcess {
	private proc?: ChildProcess;
	/** Its stdout and stderr, for diagnostics when a test fails. */
	output = "";

	constructor(readonly o: NodeProcessOptions) {}

	get nodeID() {
		return this.o.nodeID;
	}

	get alive() {
		return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
	}

	get pid() {
		return this.proc?.pid;
	}

	/** Spawns the node and resolves once every observer sees every one of its services on it. */
	async start(observers: ServiceBroker | ServiceBroker[], timeoutMs = 30_000): Promise<void> {
		const watching = Array.isArray(observers) ? observers : [observers];
		const o = this.o;
		const args = [
			"--import",
			"tsx",
			"node_modules/moleculer/bin/moleculer-runner.js",
			"--config",
			"moleculer.config.ts",
			...o.services.map(s => `services/${s}.service.ts`),
		];
		// A clean environment: only what the node needs, so nothing of the test runner's leaks into its config.
		const env: Record<string, string> = {
			PATH: process.env.PATH ?? "/usr/bin:/bin",
			HOME: process.env.HOME ?? "/tmp",
			NODE_ENV: "test",
			LOG_FORMAT: "json",
			LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
			NAMESPACE: o.namespace,
			NODE_ID: o.nodeID,
			NATS_URL: o.natsUrl,
			DATABASE_URL: o.databaseUrl,
			PORT: "0",
			METRICS_PORT: "0",
			JWT_SECRET: TEST_JWT_SECRET,
			INTERNAL_SECRET: TEST_INTERNAL_SECRET,
			...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}),
			...o.env,
		};
		const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
		this.proc = proc;
		const reap = () => proc.kill("SIGKILL");
		process.once("exit", reap);
		proc.once("exit", () => process.removeListener("exit", reap));
		const keep = (d: Buffer) => {
			this.output = (this.output + d.toString()).slice(-20_000);
		};
		proc.stdout!.on("data", keep);
		proc.stderr!.on("data", keep);

		const started = Date.now();
		while (!watching.every(b => o.services.every(s => seesService(b, s, o.nodeID)))) {
			if (!this.alive) throw new Error(`node ${o.nodeID} exited early (${proc.exitCode ?? proc.signalCode}):\n${this.output}`);
			if (Date.now() - started > timeoutMs) {
				await this.kill();
				throw new Error(`node ${o.nodeID} was not seen within ${timeoutMs} ms:\n${this.output}`);
			}
			await new Promise(r => setTimeout(r, 100));
		}
	}

	/** SIGKILL: no graceful stop, no DISCONNECT packet; peers find out from missing heartbeats. */
	kill(): Promise<void> {
		return killProcess(this.proc);
	}
}
