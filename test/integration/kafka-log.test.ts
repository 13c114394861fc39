// The Kafka event log against librdkafka's mock cluster (or the real Kafka that KAFKA_BROKERS names):
// the contract every adapter keeps, then what only Kafka has: the launcher's process, fixed ports,
// committed offsets across consumers, a lost broker.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { topicFor, type Delivery, type ReplEvent } from "../../src/replication/event-log";
import { KafkaEventLog, type KafkaEventLogOptions } from "../../src/replication/kafka-log";
import { buildKafkaMock, kafkaForTests, startKafkaMock, type TestKafka } from "../../src/replication/kafka-mock";
import { CONTRACT_REGIONS, eventLogContract, replEvent } from "../helpers/event-log-contract";
import { freePort } from "../helpers/ports";

const ROOT = path.resolve(__dirname, "..", "..");
const [A] = CONTRACT_REGIONS;

let kafka: TestKafka;
beforeAll(async () => {
	kafka = await kafkaForTests();
});
afterAll(() => kafka?.stop());

/** A log on fresh topics (nothing can be deleted from the mock): `${prefix}.events.${region}`. */
async function freshLog(o: { partitions?: number; brokers?: string[] } & Partial<KafkaEventLogOptions> = {}) {
	const prefix = `t${randomUUID().slice(0, 8)}`;
	await kafka.createTopics(CONTRACT_REGIONS.map(r => ({ name: topicFor(prefix, r), partitions: o.partitions ?? 3 })));
	// A real Kafka refuses sessions under its group.min.session.timeout.ms (6 s by default).
	return new KafkaEventLog({ brokers: kafka.brokers, prefix, sessionTimeout: kafka.mock ? 3_000 : 6_000, ...o });
}

const gone = (pid: number) => {
	try {
		process.kill(pid, 0);
		return false;
	} catch {
		return true;
	}
};

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000) {
	for (const end = Date.now() + ms; Date.now() < end; await new Promise(r => setTimeout(r, 50))) if (await check()) return;
	throw new Error(`timed out waiting for ${what}`);
}

eventLogContract("kafka", async () => ({ log: await freshLog(), cleanup: async () => {} }));

describe("the Kafka mock launcher", () => {
	it("starts, creates topics on request, and leaves no process behind once stopped", async () => {
		const mock = await startKafkaMock({ brokers: 2, topics: [{ name: "launcher.a", partitions: 2 }] });
		expect(mock.bootstrap).toHaveLength(2);
		await mock.createTopic("launcher.b", 3);
		await expect(mock.createTopic("launcher.b", 3)).rejects.toThrow(/already exists/);
		await expect(mock.createTopic("launcher.c", 0)).rejects.toThrow(/at least 1 partition/);
		await mock.stop();
		expect(gone(mock.pid)).toBe(true);
		await expect(mock.createTopic("launcher.d", 1)).rejects.toThrow(/exited/);
	});

	it("exits cleanly when its stdin closes, and on SIGTERM", async () => {
		const bin = await buildKafkaMock();
		for (const end of ["stdin", "SIGTERM"] as const) {
			const proc = spawn(bin, [], { stdio: ["pipe", "pipe", "inherit"] });
			const code = new Promise(resolve => proc.once("exit", (c, s) => resolve(c ?? s)));
			// Right after BOOTSTRAP=, when it is about to read stdin: where a signal was once lost.
			await new Promise(resolve => proc.stdout.once("data", resolve));
			if (end === "stdin") proc.stdin.end();
			else proc.kill("SIGTERM");
			const timeout = new Promise(resolve => setTimeout(() => resolve("still running"), 5_000).unref());
			expect(await Promise.race([code, timeout]), end).toBe(0);
			proc.kill("SIGKILL");
		}
	});

	it("dies with the process that started it, even a SIGKILLed one", async () => {
		const script = `require(${JSON.stringify(path.join(ROOT, "src/replication/kafka-mock.ts"))}).startKafkaMock().then(m => console.log("PID=" + m.pid))`;
		const runner = spawn(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
		const pid = await new Promise<number>((resolve, reject) => {
			let out = "";
			runner.stdout.on("data", (d: Buffer) => {
				out += d.toString();
				const m = /PID=(\d+)/.exec(out);
				if (m) resolve(Number(m[1]));
			});
			runner.once("exit", code => reject(new Error(`the runner exited (${code}) before starting the mock: ${out}`)));
		});
		expect(gone(pid)).toBe(false);
		runner.kill("SIGKILL");
		await waitFor(`the mock ${pid} to exit`, () => gone(pid), 5_000);
	});

	it("listens on a fixed port (the next ones for more brokers), and refuses a taken one", async () => {
		const port = await freePort();
		const mock = await startKafkaMock({ port, brokers: 2 });
		try {
			expect(mock.bootstrap).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${port + 1}`]);
			await expect(startKafkaMock({ port: port + 1 })).rejects.toThrow(`port ${port + 1} is in use`);
		} finally {
			await mock.stop();
		}
	});
});

// Independent (fresh topics and groups each): run side by side, since each waits out the mock's group joins.
describe.concurrent("KafkaEventLog", () => {
	it("re-delivers a rejected batch before anything after it in its partition, whatever the handler threw", async () => {
		const log = await freshLog({ partitions: 1 });
		try {
			const key = randomUUID();
			const ev = (version: number) => replEvent(A, { aggregateId: key, version });
			await log.publish(A, [ev(1), ev(2), ev(3)]);
			const seen: number[][] = [];
			const errors: string[] = [];
			let fails = 0;
			let done!: () => void;
			const finished = new Promise<void>(resolve => (done = resolve));
			const sub = await log.subscribe({
				group: `g-${randomUUID()}`,
				sources: [A],
				handler: async d => {
					seen.push(d.events.map(e => e.version));
					if (fails === 0) {
						fails++;
						// Published while the batch fails: it must not overtake the failed events.
						await log.publish(A, [ev(4), ev(5)]);
						// kafkajs stops a consumer for good on a TypeError unless the adapter wraps it.
						throw new TypeError("not a function");
					}
					if (fails === 1) {
						fails++;
						throw new Error("apply failed");
					}
					if (d.events.some(e => e.version === 5)) done();
				},
				onError: (err, d) => errors.push(`${err.message}: ${d.events.map(e => e.version)}`),
			});
			await finished;
			await sub.stop();
			expect(errors[0]).toBe("not a function: 1,2,3");
			// The re-fetch starts at the failed batch again (it may bring 4 and 5 along).
			expect(errors[1]).toMatch(/^apply failed: 1,2,3/);
			expect(seen[1].slice(0, 3)).toEqual([1, 2, 3]);
			// Once it succeeds, each delivery starts where the last one ended.
			expect(seen.slice(2).flat()).toEqual([1, 2, 3, 4, 5]);
		} finally {
			await log.close();
		}
	});

	it("stops a partition at a record that is not an event, reports it, and keeps it (nothing after it is applied)", async () => {
		const log = await freshLog({ partitions: 1 });
		const prefix = (log as unknown as { o: { prefix: string } }).o.prefix;
		const producer = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).producer();
		await producer.connect();
		try {
			const after = replEvent(A);
			await log.publish(A, [replEvent(A)]);
			await producer.send({ topic: topicFor(prefix, A), messages: [{ key: "x", value: "{not json" }] });
			await log.publish(A, [after]);
			const got: string[] = [];
			const errors: string[] = [];
			const sub = await log.subscribe({
				group: `g-${randomUUID()}`,
				sources: [A],
				handler: async d => void got.push(...d.events.map(e => e.eventId)),
				// An observer that throws changes nothing (kafkajs would stop the consumer for good on a TypeError).
				onError: err => {
					errors.push(err.message);
					throw new TypeError("observer failed");
				},
			});
			await waitFor("the unreadable record reported twice", () => errors.length >= 2, 15_000);
			await sub.stop();
			expect(errors[0]).toMatch(/is not JSON$/);
			expect(got).toHaveLength(1);
			expect(got).not.toContain(after.eventId);
		} finally {
			await producer.disconnect();
			await log.close();
		}
	});

	it("a consumer stopped mid-way hands over to the next at the committed offset: no loss, re-delivery only of the unacknowledged batch", async () => {
		const log = await freshLog({ partitions: 2 });
		try {
			const group = `g-${randomUUID()}`;
			const ids = (d: Delivery[]) => d.flatMap(x => x.events.map(e => e.eventId));
			const first = Array.from({ length: 10 }, () => replEvent(A));
			const second = Array.from({ length: 10 }, () => replEvent(A));
			await log.publish(A, first);

			// The first consumer acknowledges `first`, then fails on everything else (a crash mid-apply).
			const acked: Delivery[] = [];
			const failed: Delivery[] = [];
			const firstIds = new Set(first.map(e => e.eventId));
			const s1 = await log.subscribe({
				group,
				sources: [A],
				handler: async d => {
					if (d.events.every(e => firstIds.has(e.eventId))) acked.push(d);
					else throw new Error("crashed mid-apply");
				},
				onError: (_err, d) => failed.push(d),
			});
			await waitFor("the first batch to be acknowledged", () => ids(acked).length === first.length);
			await log.publish(A, second);
			await waitFor("a failed delivery", () => failed.length > 0);
			await s1.stop();
			await waitFor("the commit of the first batch", async () => (await log.backlog(group, A)) === second.length);

			const got: Delivery[] = [];
			const s2 = await log.subscribe({ group, sources: [A], handler: async d => void got.push(d) });
			await waitFor("the second consumer to catch up", () => ids(got).length >= second.length);
			await s2.stop();
			expect(ids(got).sort()).toEqual(second.map(e => e.eventId).sort());
			expect(await log.backlog(group, A)).toBe(0);
		} finally {
			await log.close();
		}
	});

	// Mock only: it restarts the broker.
	it.skipIf(!!process.env.KAFKA_BROKERS)("publish rejects with a clear error while the broker is gone, and works once one is back on its port", async () => {
		const port = await freePort();
		const prefix = `t${randomUUID().slice(0, 8)}`;
		const topics = CONTRACT_REGIONS.map(r => ({ name: topicFor(prefix, r), partitions: 2 }));
		let mock = await startKafkaMock({ port, topics });
		const log = new KafkaEventLog({ brokers: mock.bootstrap, prefix, retries: 2, connectionTimeout: 1_000 });
		try {
			await log.publish(A, [replEvent(A)]);
			await mock.stop();
			const started = Date.now();
			await expect(log.publish(A, [replEvent(A)])).rejects.toThrow(
				new RegExp(`^kafka: publishing 1 event\\(s\\) to ${prefix}.events.${A} failed: .*ECONNREFUSED`),
			);
			expect(Date.now() - started).toBeLessThan(10_000);

			// A new broker keeps nothing of the old one: the topics are created again.
			mock = await startKafkaMock({ port, topics });
			const events: ReplEvent[] = [replEvent(A), replEvent(A)];
			await log.publish(A, events);
			expect(await log.backlog(`g-${randomUUID()}`, A)).toBe(2);
		} finally {
			await log.close();
			await mock.stop();
		}
	});

	it("close is idempotent and refuses work afterwards; an empty publish resolves at once", async () => {
		const log = await freshLog();
		await log.publish(A, []);
		await log.publish(A, [replEvent(A)]);
		await Promise.all([log.close(), log.close()]);
		await log.close();
		await expect(log.publish(A, [replEvent(A)])).rejects.toThrow(/closed/);
	});
});
