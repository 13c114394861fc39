// A Kafka-protocol broker for tests and the local cluster: librdkafka's mock cluster run by
// scripts/kafka-mock/mock.c, compiled here on first use (no real Kafka and no Docker on these machines;
// see /work/shared/kafka-mock.md). Data lives in its memory only. KAFKA_BROKERS=host:port,... makes
// kafkaForTests use a real Kafka instead.
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Kafka, logLevel } from "kafkajs";
import "./kafkajs-idle-fix";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "..", "..");
const SOURCE = path.join(ROOT, "scripts", "kafka-mock", "mock.c");
const BINARY = path.join(ROOT, ".cache", "kafka-mock", "mock");
const APT_HINT = "apt-get install librdkafka-dev gcc libc6-dev pkg-config";

export interface TopicSpec {
	name: string;
	partitions: number;
}

export interface KafkaMockOptions {
	/** Broker count (default 1). */
	brokers?: number;
	/** A fixed port for the first broker (the others take the next ones); default: ports the OS picks. */
	port?: number;
	topics?: TopicSpec[];
}

export interface KafkaMock {
	bootstrap: string[];
	pid: number;
	/** The mock serves no CreateTopics: topics are created through the launcher. */
	createTopic(name: string, partitions: number): Promise<void>;
	/** Every broker drops its connections and refuses new ones (a restart, as clients see it; the data stays). */
	down(): Promise<void>;
	/** The brokers accept connections again. */
	up(): Promise<void>;
	/** Closes its stdin and waits for the exit; SIGKILL if it takes over 2 s. Idempotent. */
	stop(): Promise<void>;
}

let building: Promise<string> | undefined;

/** The launcher's path, compiled when missing or older than mock.c (once per process). */
export function buildKafkaMock(): Promise<string> {
	building ??= build().catch(err => {
		building = undefined;
		throw err;
	});
	return building;
}

async function build(): Promise<string> {
	const mtime = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? -1;
	if (mtime(BINARY) >= mtime(SOURCE)) return BINARY;
	let flags: string[];
	try {
		const { stdout } = await run("pkg-config", ["--cflags", "--libs", "rdkafka"]);
		flags = stdout.trim().split(/\s+/).filter(Boolean);
	} catch (err) {
		throw new Error(`librdkafka not found by pkg-config (needs: ${APT_HINT})`, { cause: err });
	}
	fs.mkdirSync(path.dirname(BINARY), { recursive: true });
	// Parallel test workers may build at once: each writes its own file, the rename is atomic.
	const tmp = `${BINARY}.${process.pid}.tmp`;
	try {
		await run("gcc", ["-O2", "-Wall", "-o", tmp, SOURCE, ...flags, "-ldl"]);
	} catch (err) {
		fs.rmSync(tmp, { force: true });
		const e = err as { code?: unknown; stderr?: string };
		const why = e.code === "ENOENT" ? "gcc not found" : `gcc failed:\n${e.stderr ?? String(err)}`;
		throw new Error(`cannot build the Kafka mock: ${why} (needs: ${APT_HINT})`, { cause: err });
	}
	fs.renameSync(tmp, BINARY);
	return BINARY;
}

export async function startKafkaMock(o: KafkaMockOptions = {}): Promise<KafkaMock> {
	const bin = await buildKafkaMock();
	const args = ["--brokers", String(o.brokers ?? 1)];
	if (o.port) args.push("--port", String(o.port));
	for (const t of o.topics ?? []) args.push("--topic", `${t.name}:${t.partitions}`);
	// Its stdin is our pipe: when this process dies, the mock reads EOF and exits.
	const proc = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
	let stderr = "";
	proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
	proc.stdin.on("error", () => {}); // EPIPE after it exited: reported by the exit instead
	const exited = new Promise<void>(resolve => proc.once("close", () => resolve()));
	const gone = () => proc.exitCode !== null || proc.signalCode !== null;

	// The first line is BOOTSTRAP=..., each later one answers the oldest command.
	const waiting: Array<(line: string | undefined) => void> = [];
	const nextLine = () => new Promise<string | undefined>(resolve => waiting.push(resolve));
	const endAll = () => {
		for (const w of waiting.splice(0)) w(undefined);
	};
	createInterface({ input: proc.stdout }).on("line", line => waiting.shift()?.(line)).on("close", endAll);
	proc.once("error", err => {
		stderr += String(err);
		endAll();
	});

	const firstLine = await nextLine();
	if (!firstLine?.startsWith("BOOTSTRAP=")) {
		if (!gone()) proc.kill("SIGKILL");
		// Its stderr says why: wait for all of it.
		await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 2_000).unref())]);
		throw new Error(`the Kafka mock did not start (${args.join(" ")}): ${stderr.trim() || firstLine}`);
	}

	const ask = (command: string) => {
		if (gone() || !proc.stdin.writable) return Promise.resolve(undefined);
		const answer = nextLine();
		proc.stdin.write(`${command}\n`);
		return answer;
	};

	let stopping: Promise<void> | undefined;
	return {
		bootstrap: firstLine.slice("BOOTSTRAP=".length).split(","),
		pid: proc.pid!,
		async createTopic(name, partitions) {
			if (!/^[\w.-]+$/.test(name) || !Number.isInteger(partitions)) throw new Error(`bad topic ${name}:${partitions}`);
			const answer = await ask(`create ${name} ${partitions}`);
			if (answer !== "ok") throw new Error(`create topic ${name}: ${answer?.replace(/^error /, "") ?? `the mock has exited ${stderr}`.trim()}`);
		},
		async down() {
			const answer = await ask("down");
			if (answer !== "ok") throw new Error(`brokers down: ${answer ?? "the mock has exited"}`);
		},
		async up() {
			const answer = await ask("up");
			if (answer !== "ok") throw new Error(`brokers up: ${answer ?? "the mock has exited"}`);
		},
		stop() {
			stopping ??= (async () => {
				proc.stdin.end();
				const timer = setTimeout(() => proc.kill("SIGKILL"), 2_000);
				await exited;
				clearTimeout(timer);
			})();
			return stopping;
		},
	};
}

export interface TestKafka {
	brokers: string[];
	/** The mock when there is one (undefined against a real Kafka). */
	mock?: KafkaMock;
	createTopics(topics: TopicSpec[]): Promise<void>;
	/** Stops the mock; leaves a real Kafka (and its topics) alone. */
	stop(): Promise<void>;
}

/** The mock, or the real Kafka that KAFKA_BROKERS names, with `topics` created on either. */
export async function kafkaForTests(topics: TopicSpec[] = []): Promise<TestKafka> {
	const real = process.env.KAFKA_BROKERS?.split(",").map(s => s.trim()).filter(Boolean);
	if (!real?.length) {
		const mock = await startKafkaMock({ topics });
		return {
			brokers: mock.bootstrap,
			mock,
			createTopics: async ts => {
				for (const t of ts) await mock.createTopic(t.name, t.partitions);
			},
			stop: () => mock.stop(),
		};
	}
	const createTopics = async (ts: TopicSpec[]) => {
		if (!ts.length) return;
		const kafka = new Kafka({ brokers: real, clientId: "kafka-for-tests", logLevel: logLevel.NOTHING, connectionTimeout: 3_000, requestTimeout: 10_000 });
		const admin = kafka.admin();
		await admin.connect();
		try {
			await admin.createTopics({ waitForLeaders: true, timeout: 10_000, topics: ts.map(t => ({ topic: t.name, numPartitions: t.partitions })) });
		} finally {
			await admin.disconnect();
		}
	};
	await createTopics(topics);
	return { brokers: real, createTopics, stop: async () => {} };
}
