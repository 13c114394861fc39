// A private nats-server for tests that kill it (the machine's shared NATS is never touched), on a
// port of its own; restartable on the same port so clients reconnect to "the same" server.
import { spawn, type ChildProcess } from "node:child_process";
import { killProcess } from "./process";

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? "/usr/sbin/nats-server";

export class NatsServer {
	private proc?: ChildProcess;
	private log = "";
	/** `args`: more nats-server flags, e.g. `["--user", "u", "--pass", "p"]` for a server that needs credentials. */
	constructor(
		readonly port: number,
		private readonly args: string[] = [],
	) {}

	get url() {
		return `nats://127.0.0.1:${this.port}`;
	}

	get running() {
		return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
	}

	async start(): Promise<void> {
		const proc = spawn(NATS_SERVER_BIN, ["-a", "127.0.0.1", "-p", String(this.port), ...this.args], {
			stdio: ["ignore", "pipe", "pipe"],
		});
		this.proc = proc;
		// Whoever outlives the test run, the server does not.
		const reap = () => proc.kill("SIGKILL");
		process.once("exit", reap);
		proc.once("exit", () => process.removeListener("exit", reap));
		await new Promise<void>((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`nats-server did not start on ${this.port}:\n${this.log}`)), 10_000);
			const onData = (d: Buffer) => {
				this.log += d.toString();
				if (this.log.includes("Server is ready")) {
					clearTimeout(timer);
					resolve();
				}
			};
			proc.stdout!.on("data", onData);
			proc.stderr!.on("data", onData);
			proc.once("error", err => {
				clearTimeout(timer);
				reject(err);
			});
			proc.once("exit", code => {
				clearTimeout(timer);
				reject(new Error(`nats-server exited with ${code}:\n${this.log}`));
			});
		});
	}

	/** SIGKILL: what a crash or a lost NATS host looks like to its clients. */
	kill(): Promise<void> {
		return killProcess(this.proc);
	}
}
