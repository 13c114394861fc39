// `npm run bench:lag`: replication lag between regions (brief §7: p99 ≤ 250 ms on one machine). Writes (supply and
// order creations through each region's API) leave at a fixed rate spread over three regions, and every event's
// lag is taken where it is applied: from its commit in its region to the commit of its apply in another. Runs:
//   cluster   the README's local cluster: each region its own processes, NATS, Redis and database, joined by the
//             Kafka test broker (or KAFKA_BROKERS). The figure the target is judged on. Lags are read from each
//             node's `wallet_replication_lag` histogram (buckets: 5 ... 250 ... 10000 ms), before and after the load.
//   memory    the three regions in this process over the in-memory event log: the reference (the relay's poll and
//             the apply, no Kafka), exact lags.
//   kafka     the three regions in this process over the Kafka test broker, exact lags (one process: its event loop
//             carries every gateway, service and applier, so this is the heaviest load for one core).
// Each run writes for --warmup W seconds first (default 30, not measured: consumers joined, pools warm, and V8 done
// optimizing: during the first ~30 s of load the nodes spent about a fifth of their CPU in TurboFan, measured with perf).
// Bounded in time: --seconds S (default 15) at --rate R writes/s (default 1000; several, comma-separated, run one after
// the other, each on fresh regions); --runs cluster,memory (default); --partitions P of the cluster's topics (default 1).
import { randomUUID } from "node:crypto";
import { Pool } from "undici";
import { M } from "../src/lib/metrics";
import { topicFor } from "../src/replication/event-log";
import { kafkaForTests } from "../src/replication/kafka-mock";
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../config";
import { signToken } from "../src/lib/jwt";
import { tokenFor } from "../test/helpers/http";
import { clusterUp } from "../test/helpers/local-cluster";
import { REGION_NAMES, startTestRegions, type TestRegions } from "../test/helpers/regions";
import { percentile } from "./load";
import { cpuSampler, pidsNamed, withDescendants } from "./proc";

/**
 * The cluster's nodes as the bench runs them (LAG_ENV='{"K":"V"}' adds or overrides). The region link's fetch waits
 * 100 ms, as the cluster's does on a real Kafka (scripts/cluster.ts), not the 5 ms it takes on the test broker: that
 * broker answers an empty fetch only after the whole wait, so at 5 ms an idle link polls it ~200 times a second in
 * every node, about a tenth of this machine (docs/multi-region.md, "Replication lag"), while this bench forwards no
 * call over the link. A real Kafka answers a fetch as soon as a message arrives, whatever the wait.
 */
const CLUSTER_ENV: Record<string, string> = {
	RATE_LIMIT: "10000000",
	METRICS_ENABLED: "true",
	LINK_MAX_WAIT_MS: "100",
	...(process.env.LAG_ENV ? (JSON.parse(process.env.LAG_ENV) as Record<string, string>) : {}),
};

const arg = (name: string, def: number) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? Number(process.argv[i + 1]) : def;
};
/** A comma-separated option, e.g. `--runs cluster,memory`. */
const listArg = (name: string, def: string) => {
	const i = process.argv.indexOf(`--${name}`);
	return (i > 0 ? process.argv[i + 1] : def).split(",");
};
const SECONDS = arg("seconds", 15);
/** One run of each kind per rate: `--rate 500,1000`. */
const RATES = listArg("rate", "1000").map(Number);
if (!RATES.every(r => r > 0)) throw new Error("--rate takes writes per second, or several separated by commas");
const WARMUP_SECONDS = arg("warmup", 30);
const REGIONS = REGION_NAMES;
const RUNS = listArg("runs", "cluster,memory");
/**
 * Partitions of each region's event topic in the cluster and kafka runs. A partition is what a region's appliers
 * share, and these runs apply on one node a region: more partitions only cut each relay round's events into more
 * batches, each its own record batch in the broker, fetch in kafkajs and delivery in the apply (about 380 µs of
 * PostgreSQL each). `--partitions 4` is the cluster's default, for comparison (docs/multi-region.md, "Replication lag").
 */
const PARTITIONS = arg("partitions", 1);

interface Run {
	mode: string;
	rate: number;
	sent: number;
	achieved: number;
	writeP50: number;
	writeP99: number;
	ok: number;
	errors: number;
	events: number;
	p50: number;
	p95: number;
	p99: number;
	max: number;
	convergeMs: number;
	/** The machine's CPU busy during the measured load (every process: nodes, servers, the load generator). */
	cpuBusy: number;
}

/** /proc/stat's cpu line: busy and total jiffies. */
function cpuTimes(): { busy: number; total: number } {
	const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
	const idle = f[3] + (f[4] ?? 0);
	const total = f.reduce((a, b) => a + b, 0);
	return { busy: total - idle, total };
}
const busySince = (t: { busy: number; total: number }) => {
	const n = cpuTimes();
	return (n.busy - t.busy) / Math.max(1, n.total - t.total);
};

async function run(mode: "kafka" | "memory", rate: number): Promise<Run> {
	const prefix = `lag${randomUUID().slice(0, 6)}`;
	const kafka = mode === "kafka" ? await kafkaForTests(REGIONS.map(r => ({ name: topicFor(prefix, r), partitions: PARTITIONS }))) : undefined;
	const lags: number[] = [];
	let rs: TestRegions | undefined;
	try {
		rs = await startTestRegions({
			count: REGIONS.length,
			env: {
				REPLICATION: mode,
				LINK: "memory",
				KAFKA_BROKERS: kafka?.brokers.join(",") ?? "",
				KAFKA_TOPIC_PREFIX: prefix,
				KAFKA_SESSION_TIMEOUT_MS: kafka?.mock ? "3000" : "10000",
				// The test broker answers an empty fetch only after the whole wait (kafka-mock.md).
				KAFKA_MAX_WAIT_MS: kafka?.mock ? "10" : "100",
				RATE_LIMIT: "10000000",
				METRICS_ENABLED: "true",
			},
		});
		// Every lag as it is observed, exactly (the metric's histogram has buckets only).
		for (const { broker } of rs.regions) {
			const observe = broker.metrics.observe.bind(broker.metrics);
			broker.metrics.observe = ((name: string, value: number, labels?: Record<string, unknown>) => {
				if (name === M.REPL_LAG) lags.push(value);
				return observe(name, value, labels);
			}) as typeof broker.metrics.observe;
		}
		// Warm-up, not measured: every region's consumers joined (the test broker's first join takes seconds),
		// connections and code warm; until its events are applied everywhere.
		const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => tokenFor(`lag-user-${i}`)));
		const warm = await writeLoad(rs.regions.map(r => r.apiUrl), tokens, rate, WARMUP_SECONDS);
		for (const until = Date.now() + 60_000; lags.length < warm.ok * (REGIONS.length - 1) && Date.now() < until; ) await new Promise(r => setTimeout(r, 100));
		lags.length = 0;
		const cpu0 = cpuTimes();
		const load = await writeLoad(rs.regions.map(r => r.apiUrl), tokens, rate);
		const cpuBusy = busySince(cpu0);
		// Converged: every region has applied all the others' events.
		const until = Date.now() + 60_000;
		const expected = load.ok * (REGIONS.length - 1);
		while (lags.length < expected && Date.now() < until) await new Promise(r => setTimeout(r, 50));
		const convergeMs = Date.now() - load.endedAt;
		const sorted = [...lags].sort((a, b) => a - b);
		return {
			mode: `${mode} (one process)`,
			rate,
			...load,
			events: lags.length,
			p50: percentile(sorted, 50),
			p95: percentile(sorted, 95),
			p99: percentile(sorted, 99),
			max: sorted[sorted.length - 1] ?? 0,
			convergeMs,
			cpuBusy,
		};
	} finally {
		await rs?.stop();
		await kafka?.stop();
	}
}

/**
 * SECONDS of creations due at `rate` a second, spread over the regions' APIs (each URL ends in /api/v1). Open loop: a write
 * leaves when it is due whatever the answers before it (up to 32 in flight per region, then it queues in the
 * client), and its latency counts from when it was due, so a region that cannot keep up shows as write latency and
 * as an achieved rate below `rate` rather than as a lower rate than asked.
 */
async function writeLoad(urls: string[], tokens: string[], rate: number, seconds = SECONDS) {
	const pools = urls.map(u => new Pool(new URL(u).origin, { connections: 32, pipelining: 1 }));
	// The cluster's URLs name the API's path; the in-process regions' are the origin only.
	const path0 = new URL(urls[0]).pathname.replace(/\/$/, "");
	const base = path0.endsWith("/api/v1") ? path0 : `${path0}/api/v1`;
	let sent = 0, ok = 0, errors = 0;
	const latencies: number[] = [];
	// What every write needs, built once: the load generator shares the machine it measures.
	const bodies = [
		{ path: base + "/supplies", body: JSON.stringify({ asset: "ETH", amount: "1" }) },
		{ path: base + "/orders", body: JSON.stringify({ asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: "0.01", quantity: 1 }] }) },
	];
	const headers = tokens.map(t => ({ "content-type": "application/json", authorization: `Bearer ${t}` }));
	const inFlight = new Set<Promise<void>>();
	const send = (i: number, due: number) => {
		const region = i % urls.length;
		const b = bodies[i % 4 === 0 ? 0 : 1];
		sent++;
		const p = pools[region]
			.request({ method: "POST", path: b.path, headers: headers[i % headers.length], body: b.body, headersTimeout: 10_000, bodyTimeout: 10_000 })
			.then(async r => {
				await r.body.text();
				latencies.push(Date.now() - due);
				if (r.statusCode === 201) ok++;
				else errors++;
			})
			.catch(() => void errors++)
			.finally(() => inFlight.delete(p));
		inFlight.add(p);
	};
	// Every TICK_MS, the writes due by then leave (one timer a write cost the generator a wake-up each).
	const TICK_MS = 4;
	const total = Math.round(rate * seconds);
	const started = Date.now();
	for (let i = 0; i < total; ) {
		const now = Date.now();
		for (let due = started + (i * 1000) / rate; i < total && due <= now; due = started + (++i * 1000) / rate) send(i, due);
		if (i < total) await new Promise(r => setTimeout(r, TICK_MS));
	}
	await Promise.all(inFlight);
	const endedAt = Date.now();
	await Promise.all(pools.map(p => p.close()));
	latencies.sort((a, b) => a - b);
	return {
		sent,
		ok,
		errors,
		endedAt,
		/** 201s a second, from the first write due to the last answer. */
		achieved: ok / ((endedAt - started) / 1000),
		writeP50: percentile(latencies, 50),
		writeP99: percentile(latencies, 99),
	};
}

/** `wallet_replication_lag` of every node: cumulative counts per bucket bound (ms), summed over sources and nodes. */
async function lagBuckets(metricsPorts: number[]): Promise<Map<number, number>> {
	const out = new Map<number, number>();
	for (const port of metricsPorts) {
		const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) }).then(r => r.text());
		for (const m of text.matchAll(/^wallet_replication_lag_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+(?:\.\d+)?)/gm)) {
			const le = m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]);
			out.set(le, (out.get(le) ?? 0) + Number(m[2]));
		}
	}
	return out;
}

/** The q-quantile from cumulative bucket counts, interpolated inside its bucket (as Prometheus' histogram_quantile). */
function bucketQuantile(buckets: [number, number][], q: number): number {
	const total = buckets[buckets.length - 1][1];
	const rank = q * total;
	let lower = 0, below = 0;
	for (const [le, count] of buckets) {
		if (count >= rank) {
			if (!Number.isFinite(le)) return lower;
			return lower + ((le - lower) * (rank - below)) / Math.max(1, count - below);
		}
		lower = le;
		below = count;
	}
	return lower;
}

async function runCluster(rate: number): Promise<Run & { within250: number }> {
	const cl = await clusterUp({ regions: 3, nodes: 1, env: CLUSTER_ENV, up: ["--partitions", String(PARTITIONS)] });
	try {
		const state = JSON.parse(fs.readFileSync(path.join(cl.dir, "state.json"), "utf8"));
		const jwt = loadConfig({ JWT_SECRET: state.secrets.jwt, NODE_ENV: "test" }).jwt;
		const ports: number[] = state.regions.flatMap((r: { nodes: { metricsPort: number }[] }) => r.nodes.map(n => n.metricsPort));
		const scopes = ["supply:read", "supply:write", "order:read", "order:write"];
		const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => signToken(jwt, `lag-user-${i}`, scopes)));
		const count = (b: Map<number, number>) => b.get(Number.POSITIVE_INFINITY) ?? 0;
		// Warm-up, not measured: every region's consumers joined (a group's first join takes seconds on the test
		// broker), connections and code warm; until its events are applied everywhere.
		const warm = await writeLoad(cl.regions.map(r => r.apiUrl), tokens, rate, WARMUP_SECONDS);
		for (const until = Date.now() + 60_000; count(await lagBuckets(ports)) < warm.ok * (REGIONS.length - 1) && Date.now() < until; )
			await new Promise(r => setTimeout(r, 200));
		const before = await lagBuckets(ports);
		// Where the machine's CPU went during the load, by process group.
		type Region = { name: string; nodes: { pid: number }[]; natsPid?: number; redisPid?: number };
		const regions: Region[] = state.regions;
		const sampler = cpuSampler({
			...Object.fromEntries(regions.map(r => [`${r.name} nodes`, () => r.nodes.map(n => n.pid)])),
			"nats-server (all regions)": () => regions.map(r => r.natsPid ?? 0).filter(Boolean),
			"redis-server": () => pidsNamed("redis-server"),
			"postgres": () => pidsNamed("postgres"),
			// The broker is a child of the process that holds it (scripts/cluster.ts kafka-holder).
			"kafka test broker": () => (state.kafka?.holderPid ? withDescendants(state.kafka.holderPid) : []),
		});
		const mark = sampler.mark();
		const t0 = Date.now();
		const cpu0 = cpuTimes();
		const load = await writeLoad(cl.regions.map(r => r.apiUrl), tokens, rate);
		const cpuBusy = busySince(cpu0);
		const split = sampler.since(mark);
		const wallS = (load.endedAt - t0) / 1000;
		console.log(`\nCPU during the load at ${rate} writes/s (${wallS.toFixed(1)} s), cores busy by process group:`);
		for (const [k, ms] of Object.entries(split).sort((a, b) => b[1] - a[1])) console.log(`  ${k}: ${(ms / 1000 / wallS).toFixed(2)} cores, ${((ms * 1000) / Math.max(1, load.ok)).toFixed(0)} µs a write`);
		const expected = load.ok * (REGIONS.length - 1);
		let after = await lagBuckets(ports);
		for (const until = Date.now() + 60_000; count(after) - count(before) < expected && Date.now() < until; ) {
			await new Promise(r => setTimeout(r, 200));
			after = await lagBuckets(ports);
		}
		const convergeMs = Date.now() - load.endedAt;
		const buckets = [...after.keys()].sort((a, b) => a - b).map(le => [le, (after.get(le) ?? 0) - (before.get(le) ?? 0)] as [number, number]);
		const events = buckets[buckets.length - 1][1];
		const at = (le: number) => buckets.find(([b]) => b === le)?.[1] ?? 0;
		return {
			mode: "cluster (processes, Kafka test broker)",
			rate,
			...load,
			events,
			p50: bucketQuantile(buckets, 0.5),
			p95: bucketQuantile(buckets, 0.95),
			p99: bucketQuantile(buckets, 0.99),
			max: buckets.find(([, c]) => c === events)?.[0] ?? Number.POSITIVE_INFINITY,
			convergeMs,
			cpuBusy,
			within250: events ? at(250) / events : 0,
		};
	} finally {
		await cl.down();
	}
}

async function main() {
	console.log(`replication lag: 3 regions, ${RATES.join(", ")} writes/s for ${SECONDS} s, spread over the regions`);
	if (RUNS.includes("cluster")) console.log(`cluster: one node a region, ${PARTITIONS} partition(s) a region's topic; nodes' settings: ${JSON.stringify(CLUSTER_ENV)}`);
	const rows: (Run & { within250?: number })[] = [];
	for (const rate of RATES) for (const r of RUNS) rows.push(r === "cluster" ? await runCluster(rate) : await run(r as "memory" | "kafka", rate));
	console.log("\n| run | writes/s asked | writes sent | 201 | errors | writes/s achieved | write p50 / p99 | events applied | lag p50 | p95 | p99 | max | within 250 ms | converged after the load | machine CPU busy |");
	console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
	for (const r of rows) {
		const max = r.within250 === undefined ? `${r.max.toFixed(0)} ms` : `≤ ${r.max} ms (bucket)`;
		const within = r.within250 === undefined ? "—" : `${(r.within250 * 100).toFixed(2)} %`;
		console.log(`| ${r.mode} | ${r.rate} | ${r.sent} | ${r.ok} | ${r.errors} | ${r.achieved.toFixed(0)} | ${r.writeP50.toFixed(0)} / ${r.writeP99.toFixed(0)} ms | ${r.events} | ${r.p50.toFixed(0)} ms | ${r.p95.toFixed(0)} ms | ${r.p99.toFixed(0)} ms | ${max} | ${within} | ${r.convergeMs} ms | ${(r.cpuBusy * 100).toFixed(0)} % |`);
	}
	console.log("");
	for (const cluster of rows.filter(r => r.within250 !== undefined)) {
		const memory = rows.find(r => r.mode.startsWith("memory") && r.rate === cluster.rate);
		if (memory) console.log(`cluster p99 ÷ in-process memory p99 at ${cluster.rate} writes/s: ${(cluster.p99 / Math.max(1, memory.p99)).toFixed(2)}×`);
		// The target is a lag at the rate asked: a cluster that took the writes more slowly than asked has not met it.
		const kept = cluster.achieved >= 0.95 * cluster.rate;
		console.log(
			`target p99 ≤ 250 ms at ${cluster.rate} writes/s (cluster): ${cluster.within250! >= 0.99 && kept ? "met" : "not met"} (${(cluster.within250! * 100).toFixed(2)} % of events within 250 ms; ${cluster.achieved.toFixed(0)} writes/s achieved${kept ? "" : ", below the rate asked"})`,
		);
	}
	process.exit(0);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
