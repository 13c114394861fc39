// A private redis-server for tests that kill it: the machine's shared Redis is never touched.
import { spawn, type ChildProcess } from "node:child_process";
import { killProcess } from "./process";

export { freePort } from "./ports";

export class RedisServer {
	private proc?: ChildProcess;
	constructor(readonly port: number) {}

	get url() {
		return `redis://127.0.0.1:${this.port}`;
	}

	async start(): Promise<void> {
		this.proc = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
			stdio: ["ignore", "pipe", "inherit"],
		});
		await new Promise<void>((resolve, reject) => {
			this.proc!.once("error", reject);
			this.proc!.stdout!.on("data", (d: Buffer) => {
				if (d.toString().includes("Ready to accept connections")) resolve();
			});
		});
	}

	/** SIGKILL: the outage a crash or a network cut looks like. */
	kill(): Promise<void> {
		return killProcess(this.proc);
	}
}
