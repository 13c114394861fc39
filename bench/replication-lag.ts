// `npm run bench:lag`: replication lag between regions (brief §7: p99 ≤ 250 ms on one machine). Three regions,
// each a broker with its own PostgreSQL database, joined by the Kafka test broker (or KAFKA_BROKERS); writes
// (supply and order creations through each region's API) leave at a fixed rate spread over the regions, and
// every event's lag is taken where it is applied: from its commit in its region to the commit of its apply in
// another. The same run over the in-memory event log is the reference (the relay's poll and the apply,
// without Kafka). Bounded in time: --seconds S (default 15) at --rate R writes/s (default 1000).
import { randomUUID } from "node:crypto";
import { Pool } from "undici";
import { M } from "../src/lib/metrics";
import { topicFor } from "../src/replication/event-log";
import { kafkaForTests } from "../src/replication/kafka-mock";
import { tokenFor } from "../test/helpers/http";
import { REGION_NAMES, startTestRegions, type TestRegions } from "../test/helpers/regions";
import { percentile } from "./load";

const arg = (name: string, def: number) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg("seconds", 15);
const RATE = arg("rate", 1000);
const REGIONS = REGION_NAMES;

interface Run {
	mode: string;
	sent: number;
	ok: number;
	errors: number;
	events: number;
	p50: number;
	p95: number;
	p99: number;
	max: number;
	convergeMs: number;
}

async function run(mode: "kafka" | "memory"): Promise<Run> {
	const prefix = `lag${randomUUID().slice(0, 6)}`;
	const kafka = mode === "kafka" ? await kafkaForTests(REGIONS.map(r => ({ name: topicFor(prefix, r), partitions: 4 }))) : undefined;
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
				// The default poll, as deployed (the test regions' own default is shorter).
				RELAY_POLL_MS: "20",
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
		const urls = rs.regions.map(r => r.apiUrl);
		const pools = urls.map(u => new Pool(u, { connections: 32, pipelining: 1 }));
		const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => tokenFor(`lag-user-${i}`)));
		// Warm-up: every region's consumers joined (the test broker's first join takes seconds).
		await new Promise(r => setTimeout(r, mode === "kafka" ? 5000 : 500));
		lags.length = 0;

		let sent = 0, ok = 0, errors = 0;
		const started = Date.now();
		const inFlight = new Set<Promise<void>>();
		for (let i = 0; Date.now() - started < SECONDS * 1000; i++) {
			const due = started + (i * 1000) / RATE;
			const wait = due - Date.now();
			if (wait > 0) await new Promise(r => setTimeout(r, wait));
			const region = i % REGIONS.length;
			const body = i % 4 === 0 ? { path: "/api/v1/supplies", body: { asset: "ETH", amount: "1" } } : { path: "/api/v1/orders", body: { asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: "0.01", quantity: 1 }] } };
			sent++;
			const p = pools[region]
				.request({
					method: "POST",
					path: body.path,
					headers: { "content-type": "application/json", authorization: `Bearer ${tokens[i % tokens.length]}` },
					body: JSON.stringify(body.body),
					headersTimeout: 10_000,
					bodyTimeout: 10_000,
				})
				.then(async r => {
					await r.body.text();
					if (r.statusCode === 201) ok++;
					else errors++;
				})
				.catch(() => void errors++)
				.finally(() => inFlight.delete(p));
			inFlight.add(p);
		}
		await Promise.all(inFlight);
		// Converged: every region has applied all the others' events.
		const until = Date.now() + 60_000;
		const expected = ok * (REGIONS.length - 1);
		while (lags.length < expected && Date.now() < until) await new Promise(r => setTimeout(r, 50));
		const convergeMs = Date.now() - started - SECONDS * 1000;
		await Promise.all(pools.map(p => p.close()));
		const sorted = [...lags].sort((a, b) => a - b);
		return {
			mode,
			sent,
			ok,
			errors,
			events: lags.length,
			p50: percentile(sorted, 50),
			p95: percentile(sorted, 95),
			p99: percentile(sorted, 99),
			max: sorted[sorted.length - 1] ?? 0,
			convergeMs,
		};
	} finally {
		await rs?.stop();
		await kafka?.stop();
	}
}

async function main() {
	console.log(`replication lag: 3 regions, ${RATE} writes/s for ${SECONDS} s, spread over the regions`);
	const rows = [await run("memory"), await run("kafka")];
	console.log("\n| event log | writes sent | 201 | errors | events applied | lag p50 | p95 | p99 | max | converged after the load |");
	console.log("|---|---|---|---|---|---|---|---|---|---|");
	for (const r of rows)
		console.log(`| ${r.mode} | ${r.sent} | ${r.ok} | ${r.errors} | ${r.events} | ${r.p50.toFixed(0)} ms | ${r.p95.toFixed(0)} ms | ${r.p99.toFixed(0)} ms | ${r.max.toFixed(0)} ms | ${r.convergeMs} ms |`);
	const [mem, kaf] = rows;
	console.log(`\nKafka p99 ÷ in-memory p99: ${(kaf.p99 / Math.max(1, mem.p99)).toFixed(2)}×; target p99 ≤ 250 ms: ${kaf.p99 <= 250 ? "met" : "not met"}`);
	process.exit(0);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
