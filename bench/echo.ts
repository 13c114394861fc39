// What a Moleculer call costs by itself, with no database and none of the project's middlewares: a closed loop
// of `concurrency` outstanding calls to an action that returns its params, in one process (the embedded
// default: no transporter) or to a node in another process over NATS. `npx tsx bench/echo.ts` runs both.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { ServiceBroker, type ServiceSchema } from "moleculer";

export interface EchoOptions {
	natsUrl?: string;
	seconds: number;
	concurrency: number;
}
export interface EchoResult {
	transport: string;
	calls: number;
	perSecond: number;
	p50Ms: number;
	p99Ms: number;
}

export const echoService: ServiceSchema = {
	name: "echo",
	actions: { echo: (ctx: { params: unknown }) => ctx.params },
};

/**
 * The project's serializer and heartbeats (moleculer.config.ts), nothing else: no logger, cacher, metrics,
 * tracing, validator, or middlewares (not even Moleculer's internal ones), so what is measured is the call.
 */
export function bareBroker(o: { nodeID: string; namespace: string; natsUrl?: string; ownSignals?: boolean }): ServiceBroker {
	return new ServiceBroker({
		nodeID: o.nodeID,
		namespace: o.namespace,
		// The shape natsTransporter() builds, minus credentials and TLS.
		transporter: o.natsUrl ? { type: "NATS", options: { url: o.natsUrl } } : null,
		serializer: "JSON",
		heartbeatInterval: 2,
		heartbeatTimeout: 6,
		logger: false,
		cacher: null,
		metrics: false,
		tracing: false,
		validator: false,
		internalMiddlewares: false,
		middlewares: [],
		// An importer (npm run bench) keeps its own signal handling; only the child process wants Moleculer's.
		skipProcessEventRegistration: !o.ownSignals,
	});
}

function spawnEchoNode(natsUrl: string, namespace: string): ChildProcess {
	return spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "echo-node.ts")], {
		cwd: path.resolve(__dirname, ".."),
		env: { ...process.env, NATS_URL: natsUrl, NAMESPACE: namespace },
		stdio: ["pipe", "inherit", "inherit"],
	});
}

async function stopChild(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	const exited = new Promise<void>(resolve => child.once("exit", () => resolve()));
	child.kill("SIGTERM");
	const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
	await exited;
	clearTimeout(timer);
}

/** Nearest-rank percentile of an ascending array. */
const percentile = (sorted: Float64Array, q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;

/** In process, millions of calls a second: a typed array keeps 8 bytes a sample (and sorts numerically). */
class Samples {
	private buf = new Float64Array(1 << 16);
	length = 0;
	push(v: number): void {
		if (this.length === this.buf.length) {
			const grown = new Float64Array(this.buf.length * 2);
			grown.set(this.buf);
			this.buf = grown;
		}
		this.buf[this.length++] = v;
	}
	sorted(): Float64Array {
		return this.buf.subarray(0, this.length).sort();
	}
}

export async function runEcho(o: EchoOptions): Promise<EchoResult> {
	const namespace = `echo${randomBytes(4).toString("hex")}`;
	const caller = bareBroker({ nodeID: `caller-${process.pid}`, namespace, natsUrl: o.natsUrl });
	let child: ChildProcess | undefined;
	try {
		if (o.natsUrl) {
			const node = spawnEchoNode(o.natsUrl, namespace);
			child = node;
			const died = new Promise<never>((_, reject) =>
				node.once("exit", (code, signal) => reject(new Error(`echo node exited (${signal ?? code}) before the bench ended`))),
			);
			died.catch(() => undefined); // observed below via race; unobserved after a clean stop
			await caller.start();
			await Promise.race([caller.waitForServices("echo", 30_000), died]);
		} else {
			caller.createService(echoService);
			await caller.start();
			await caller.waitForServices("echo", 10_000);
		}
		// About the size of one claim command.
		const params = { op: "claim", orderId: randomUUID(), supplyId: randomUUID(), userId: "shopper-1", key: "bench-1" };
		const latencies = new Samples();
		const started = performance.now();
		const until = started + o.seconds * 1000;
		await Promise.all(
			Array.from({ length: o.concurrency }, async () => {
				while (performance.now() < until) {
					const t0 = performance.now();
					await caller.call("echo.echo", params);
					latencies.push(performance.now() - t0);
				}
			}),
		);
		const elapsed = (performance.now() - started) / 1000;
		const sorted = latencies.sorted();
		return {
			transport: o.natsUrl ? "nats" : "in-process",
			calls: sorted.length,
			perSecond: Math.round(sorted.length / elapsed),
			p50Ms: percentile(sorted, 0.5),
			p99Ms: percentile(sorted, 0.99),
		};
	} finally {
		await caller.stop();
		if (child) await stopChild(child);
	}
}

if (require.main === module) {
	const natsUrl = process.env.BENCH_NATS_URL ?? process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
	(async () => {
		for (const url of [undefined, natsUrl]) {
			const r = await runEcho({ natsUrl: url, seconds: 5, concurrency: 64 });
			console.log(
				`echo ${r.transport.padEnd(10)} concurrency 64: ${r.calls} calls, ${r.perSecond} calls/s, p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms`,
			);
		}
	})().catch(err => {
		console.error(err);
		process.exit(1);
	});
}
