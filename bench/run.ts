// npm run bench: brief §7's speed figures, each beside references measured in the same run.
//
//   npm run bench                                # embedded default and the README's cluster, 10 s a phase
//   npm run bench -- --targets cluster --duration 15 --concurrency 16,64,256 --rate 1500
//   npm run bench -- --compare bench/results/old.json
//   npm run bench -- --env CLAIM_BATCH_WINDOW_MS=2 --env CLAIM_BATCH_MAX=128   # node settings to try
//   npm run bench -- --smoke                     # seconds, not minutes: proves it runs (CI), figures meaningless
//
// For each target it starts the nodes, seeds shoppers, supplies and orders through the API, then measures:
// claims closed loop at several concurrencies and open loop at a fixed rate (half the best closed-loop rate
// unless --rate), a cached GET /orders/:id, /health/live, pgbench running the project's claim (one call)
// and the old ten-round-trip transaction at 1 and 16 clients, a bare Moleculer echo over the same
// transport, CPU per claim by process and memory before and after. Then the invariant and history
// checkers read the database: every 201 must be a real, committed claim with its outbox events.
// It prints a table and writes JSON (bench/results/last.json, or --out).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { Pool } from "undici";
import { History } from "../src/checker/history";
import { checkHistory } from "../src/checker/history-check";
import { checkInvariants } from "../src/checker/invariants";
import { signToken } from "../src/lib/jwt";
import { runEcho } from "./echo";
import { closedLoop, errorSamples, hammer, openLoop, type ClaimWork, type LatencyStats, type Shopper, type ThroughputStats } from "./load";
import { runPgbench } from "./pgbench";
import { cpuSampler, rssMiB } from "./proc";
import { startCluster, startEmbedded, type Target } from "./targets";

const { values: args } = parseArgs({
	options: {
		targets: { type: "string", default: "embedded,cluster" },
		duration: { type: "string", default: "10" },
		concurrency: { type: "string", default: "1,16,64,256" },
		rate: { type: "string" },
		shoppers: { type: "string", default: "64" },
		"pgbench-seconds": { type: "string", default: "5" },
		out: { type: "string" },
		compare: { type: "string" },
		smoke: { type: "boolean", default: false },
		/** KEY=VALUE for every node (e.g. CLAIM_BATCH_WINDOW_MS=2), repeatable. */
		env: { type: "string", multiple: true, default: [] },
	},
});
const SMOKE = args.smoke;
const DURATION = SMOKE ? 1.5 : Number(args.duration);
const CONCURRENCY = (SMOKE ? "1,16" : args.concurrency).split(",").map(Number);
const PGBENCH_SECONDS = SMOKE ? 1 : Number(args["pgbench-seconds"]);
const SHOPPERS = SMOKE ? 8 : Number(args.shoppers);
const SCOPES = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];

interface TargetResult {
	target: string;
	nodes: string[];
	closed: (LatencyStats & { concurrency: number })[];
	best: { concurrency: number; perSecond: number };
	open: LatencyStats & { rate: number };
	cpuPerClaimMs: Record<string, number>;
	cachedGet: ThroughputStats;
	healthLive: ThroughputStats;
	/** `/health/ready`: an action through the whole gateway (moleculer-web, the broker's middlewares), answer cached. */
	healthReady?: ThroughputStats;
	pgbench: Record<string, number | string>;
	echo: { perSecond: number; p50Ms: number; p99Ms: number; transport: string };
	rssMiB: Record<string, { before: number; after: number }>;
	seeded: { supplies: number; orders: number; ordersPerSecond: number };
	checker: { invariantViolations: number; historyViolations: number; summary: string };
}

type Json = Record<string, unknown>;

async function call(pool: Pool, method: "GET" | "POST", p: string, token: string, body?: unknown): Promise<{ status: number; body: Json }> {
	const r = await pool.request({
		method,
		path: p,
		headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
		headersTimeout: 30_000,
	});
	return { status: r.statusCode, body: (await r.body.json().catch(() => ({}))) as Json };
}

/** Runs `fn` over 0..n-1 with `concurrency` at a time. */
async function parallel(n: number, concurrency: number, fn: (i: number) => Promise<void>) {
	let next = 0;
	await Promise.all(Array.from({ length: Math.min(n, concurrency) }, async () => {
		while (next < n) await fn(next++);
	}));
}

async function seedOrders(pool: Pool, buyers: string[], n: number, into: string[]): Promise<number> {
	const started = performance.now();
	await parallel(n, 64, async i => {
		const r = await call(pool, "POST", "/api/v1/orders", buyers[i % buyers.length], {
			asset: "ETH",
			items: [{ sku: "bench", name: "Bench item", unitPrice: "0.001", quantity: 1 }],
			expiresInSec: 3600,
		});
		if (r.status !== 201) throw new Error(`seeding an order: ${r.status} ${JSON.stringify(r.body)}`);
		into.push(String(r.body.id));
	});
	return Math.round(n / ((performance.now() - started) / 1000));
}

async function seed(t: Target, pool: Pool) {
	const shoppers: Shopper[] = [];
	await parallel(SHOPPERS, 16, async i => {
		const userId = `bench-shopper-${i}`;
		const token = await signToken(t.jwt, userId, SCOPES, "2h");
		const r = await call(pool, "POST", "/api/v1/supplies", token, { asset: "ETH", amount: "1000000" });
		if (r.status !== 201) throw new Error(`seeding a supply: ${r.status} ${JSON.stringify(r.body)}`);
		shoppers.push({ userId, token, supplyId: String(r.body.id) });
	});
	const buyers = await Promise.all(Array.from({ length: 16 }, (_, i) => signToken(t.jwt, `bench-buyer-${i}`, SCOPES, "2h")));
	return { shoppers, buyers };
}

/** Until every service of the target answers: readiness says only that the gateway's own services are up. */
async function warmUp(w: ClaimWork, buyers: string[], pool: Pool) {
	const until = Date.now() + 60_000;
	for (;;) {
		const orders: string[] = [];
		await seedOrders(pool, buyers, 1, orders);
		const s = await closedLoop({ ...w, orders }, 1, 5);
		if (s.ok === 1) return;
		if (Date.now() > until) throw new Error(`claims do not succeed: ${JSON.stringify(s.statuses)}`);
		await new Promise(r => setTimeout(r, 500));
	}
}

async function measure(t: Target): Promise<TargetResult> {
	const pool = new Pool(t.apiUrl, { connections: 512 });
	const rss = (): Record<string, number> => Object.fromEntries(t.nodes.map(n => [n.name, rssMiB(n.pid)]));
	const { shoppers, buyers } = await seed(t, pool);
	const history = new History();
	const orders: string[] = [];
	const work: ClaimWork = { pool, shoppers, orders, history, keyPrefix: `bench-${Date.now()}` };
	await warmUp(work, buyers, pool);
	const rssBefore = rss();
	const log = (s: string) => console.error(`[${t.name}] ${s}`);

	// Orders for the next phase: what the best rate so far would take, with room; seeding is not timed.
	let best = { concurrency: 0, perSecond: 0 };
	let seededOrders = 0;
	let seedRate = 0;
	const stock = async (seconds: number, rate: number) => {
		const want = Math.ceil(Math.max(rate, 300) * seconds * 1.2) - orders.length;
		if (want <= 0) return;
		seedRate = await seedOrders(pool, buyers, want, orders);
		seededOrders += want;
	};
	const cpu = cpuSampler(t.groups);
	const cpuTotals: Record<string, number> = {};
	let claimsForCpu = 0;
	const phase = async <S extends LatencyStats>(run: () => Promise<S>) => {
		const m = cpu.mark();
		const s = await run();
		for (const [k, v] of Object.entries(cpu.since(m))) cpuTotals[k] = (cpuTotals[k] ?? 0) + v;
		claimsForCpu += s.ok;
		return s;
	};

	const closed: TargetResult["closed"] = [];
	for (const c of CONCURRENCY) {
		// A phase that outruns its stock ends early and says so (*): seeding 100,000s of orders would take minutes.
		await stock(DURATION, Math.max(best.perSecond * 1.5, 1000));
		const s = await phase(() => closedLoop(work, c, DURATION));
		closed.push({ concurrency: c, ...s });
		if (s.perSecond > best.perSecond) best = { concurrency: c, perSecond: s.perSecond };
		log(`closed loop c=${c}: ${s.perSecond} claims/s, p50 ${s.p50} ms, p99 ${s.p99} ms, ${JSON.stringify(s.statuses)}${s.exhausted ? " (orders ran out)" : ""}`);
	}
	const rate = args.rate ? Number(args.rate) : Math.max(1, Math.round(best.perSecond / 2));
	await stock(DURATION, rate);
	const open = { rate, ...(await phase(() => openLoop(work, rate, DURATION))) };
	log(`open loop ${rate}/s: p50 ${open.p50} ms, p95 ${open.p95} ms, p99 ${open.p99} ms, ${JSON.stringify(open.statuses)}`);
	const cpuPerClaimMs = Object.fromEntries(Object.entries(cpuTotals).map(([k, v]) => [k, round2(v / Math.max(1, claimsForCpu))]));
	cpuPerClaimMs.total = round2(Object.values(cpuTotals).reduce((a, b) => a + b, 0) / Math.max(1, claimsForCpu));

	// A cached read: an open order (visible to every user with order:read), asked once to fill the cache.
	const readOrders: string[] = [];
	await seedOrders(pool, buyers, 1, readOrders);
	const reader = shoppers[0].token;
	await call(pool, "GET", `/api/v1/orders/${readOrders[0]}`, reader);
	const cachedGet = await hammer(`${t.apiUrl}/api/v1/orders/${readOrders[0]}`, { authorization: `Bearer ${reader}` }, 64, DURATION);
	log(`cached GET: ${cachedGet.perSecond} req/s`);
	const healthLive = await hammer(`${t.apiUrl}/health/live`, {}, 64, DURATION);
	log(`/health/live: ${healthLive.perSecond} req/s`);
	const healthReady = await hammer(`${t.apiUrl}/health/ready`, {}, 64, DURATION);
	log(`/health/ready: ${healthReady.perSecond} req/s`);
	const rssAfter = rss();
	await pool.close();

	const pgbench: TargetResult["pgbench"] = {};
	for (const script of ["one-call", "old"] as const)
		for (const clients of [1, 16]) {
			// Room for 4,000 TPS over the warm-up and the run, whatever the client count.
			const orders = Math.ceil(4000 * (PGBENCH_SECONDS + Math.min(PGBENCH_SECONDS, 5)));
			const r = await runPgbench({ adminUrl: t.adminUrl, clients, seconds: PGBENCH_SECONDS, script, orders });
			pgbench[`${script}@${clients}`] = "skipped" in r ? r.skipped : Math.round(r.tps);
		}
	log(`pgbench: ${JSON.stringify(pgbench)}`);
	const e = await runEcho({ natsUrl: t.natsUrl, seconds: Math.min(DURATION, 5), concurrency: 64 });
	const echo = { perSecond: Math.round(e.perSecond), p50Ms: round2(e.p50Ms), p99Ms: round2(e.p99Ms), transport: e.transport };

	const db = new pg.Pool({ connectionString: t.databaseUrl, max: 2 });
	// An idle connection the server ends must not end the run unannounced (one CI run did, with 57P01): a query that
	// loses its connection still fails the checkers, with its message.
	db.on("error", err => console.error(`[${t.name}] checkers' database connection: ${err.message}`));
	try {
		const inv = await checkInvariants([db]);
		const hist = await checkHistory([db], history);
		for (const v of [...inv.violations, ...hist.violations].slice(0, 10)) console.error(`[${t.name}] VIOLATION ${JSON.stringify(v)}`);
		return {
			target: t.name,
			nodes: t.nodes.map(n => n.name),
			closed,
			best,
			open,
			cpuPerClaimMs,
			cachedGet,
			healthLive,
			healthReady,
			pgbench,
			echo,
			rssMiB: Object.fromEntries(Object.keys(rssAfter).map(k => [k, { before: rssBefore[k], after: rssAfter[k] }])),
			seeded: { supplies: shoppers.length, orders: seededOrders, ordersPerSecond: seedRate },
			checker: { invariantViolations: inv.violations.length, historyViolations: hist.violations.length, summary: hist.summary },
		};
	} finally {
		await db.end();
	}
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The table's rows: a label and one cell per target. */
function rows(results: TargetResult[]): [string, string[]][] {
	const cell = (f: (r: TargetResult) => string) => results.map(f);
	const out: [string, string[]][] = [];
	for (const c of CONCURRENCY)
		out.push([
			`claims/s, closed loop, ${c} clients (p50 / p99 ms)`,
			cell(r => {
				const s = r.closed.find(x => x.concurrency === c);
				if (!s) return "—";
				return `${s.perSecond} (${s.p50} / ${s.p99})${s.exhausted ? " *" : ""}${nonCreated(s)}`;
			}),
		]);
	out.push(["claims/s, best", cell(r => `${r.best.perSecond} at ${r.best.concurrency} clients`)]);
	out.push(["open loop: rate, p50 / p95 / p99 ms", cell(r => `${r.open.rate}/s: ${r.open.p50} / ${r.open.p95} / ${r.open.p99}${nonCreated(r.open)}`)]);
	out.push(["best claims/s ÷ pgbench old transaction @16", cell(r => ratio(r.best.perSecond, r.pgbench["old@16"]))]);
	out.push(["cached GET /orders/:id, req/s (p99 ms)", cell(r => `${r.cachedGet.perSecond} (${r.cachedGet.p99})${r.cachedGet.non2xx ? ` ${r.cachedGet.non2xx} non-2xx` : ""}`)]);
	out.push(["/health/live, req/s (p99 ms)", cell(r => `${r.healthLive.perSecond} (${r.healthLive.p99})`)]);
	out.push(["/health/ready (an action through the gateway), req/s (p99 ms)", cell(r => (r.healthReady ? `${r.healthReady.perSecond} (${r.healthReady.p99})` : "—"))]);
	for (const k of ["one-call@1", "one-call@16", "old@1", "old@16"]) out.push([`pgbench ${k.replace("@", ", clients ")} (TPS)`, cell(r => String(r.pgbench[k]))]);
	out.push(["bare Moleculer echo, calls/s at 64 (p99 ms)", cell(r => `${r.echo.perSecond} (${r.echo.p99Ms}) ${r.echo.transport}`)]);
	out.push(["CPU per claim, ms (all processes)", cell(r => String(r.cpuPerClaimMs.total))]);
	const procs = [...new Set(results.flatMap(r => Object.keys(r.cpuPerClaimMs).filter(k => k !== "total")))];
	for (const p of procs) out.push([`  CPU per claim: ${p}`, cell(r => (p in r.cpuPerClaimMs ? String(r.cpuPerClaimMs[p]) : "—"))]);
	out.push([
		"RSS MiB before → after, per node",
		cell(r => Object.entries(r.rssMiB).map(([n, m]) => `${n} ${m.before}→${m.after}`).join("; ")),
	]);
	out.push(["checkers (invariant / history violations)", cell(r => `${r.checker.invariantViolations} / ${r.checker.historyViolations}`)]);
	return out;
}

function nonCreated(s: LatencyStats) {
	const other = Object.entries(s.statuses).filter(([k]) => k !== "201");
	return other.length ? `, ${other.map(([k, v]) => `${v}×${k}`).join(" ")}` : "";
}

function ratio(a: number, b: number | string | undefined) {
	return typeof b === "number" && b > 0 ? `${(a / b).toFixed(2)}×` : "—";
}

function table(results: TargetResult[], old?: TargetResult[]) {
	const head = ["figure", ...results.flatMap(r => (old?.some(o => o.target === r.target) ? [r.target, `${r.target} before`] : [r.target]))];
	const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
	const oldRows = old ? new Map(rows(results.map(r => old.find(o => o.target === r.target) ?? r))) : undefined;
	for (const [label, cells] of rows(results)) {
		const prior = oldRows?.get(label);
		const withOld = cells.flatMap((c, i) => (old?.some(o => o.target === results[i].target) ? [c, prior?.[i] ?? "—"] : [c]));
		lines.push(`| ${label} | ${withOld.join(" | ")} |`);
	}
	return lines.join("\n");
}

async function main() {
	const started = new Date();
	const results: TargetResult[] = [];
	for (const name of args.targets.split(",")) {
		console.error(`[${name}] starting`);
		const env = Object.fromEntries(args.env.map(kv => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
		const t = name === "embedded" ? await startEmbedded(env) : name === "cluster" ? await startCluster(env) : undefined;
		if (!t) throw new Error(`unknown target ${name} (embedded, cluster)`);
		try {
			results.push(await measure(t));
		} finally {
			await t.stop();
		}
	}
	const old = args.compare ? (JSON.parse(fs.readFileSync(args.compare, "utf8")).results as TargetResult[]) : undefined;
	console.log(`\nnpm run bench${SMOKE ? " --smoke" : ""}${args.env.map(e => ` --env ${e}`).join("")}: ${DURATION} s a phase, ${started.toISOString()}, ${os.cpus().length} cores`);
	console.log(table(results, old));
	console.log("* the seeded orders ran out before the phase ended");
	for (const r of results) console.log(`[${r.target}] ${r.checker.summary}`);
	for (const [status, body] of errorSamples) console.log(`a ${status} answer: ${body}`);
	const out = args.out ?? path.join(__dirname, "results", "last.json");
	fs.mkdirSync(path.dirname(out), { recursive: true });
	fs.writeFileSync(out, JSON.stringify({ started, duration: DURATION, smoke: SMOKE, env: args.env, results }, null, 2));
	console.log(`written: ${path.relative(process.cwd(), out)}`);
	if (results.some(r => r.checker.invariantViolations || r.checker.historyViolations)) {
		console.error("the checkers found violations: a benchmark of a broken claim path means nothing");
		process.exitCode = 1;
	}
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
