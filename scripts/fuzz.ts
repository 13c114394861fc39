// A fuzz run of the REST API: generated requests (malformed JSON, wrong types, huge and negative numbers,
// long strings, NUL and lone surrogates, wrong methods, odd headers, bad encodings, every route, and
// malformed requests written straight to a socket) against a running region. It counts the statuses
// and fails on any answer >= 500, any request left unanswered, any crash, and any invariant the checker
// finds broken afterwards.
//
//   npm run fuzz                                   # 10,000 requests on a region started here
//   npm run fuzz -- --count 50000 --seed 7
//   npm run fuzz -- --cluster                      # api, supply+order and two claiming nodes over NATS
//   npm run fuzz -- --url http://host:3000 --database-url postgres://...   # a running region
//
// The region must have its rate limit raised (RATE_LIMIT, RATE_LIMIT_IP), else most answers are 429.
import net from "node:net";
import { gzipSync, deflateSync } from "node:zlib";
import fc from "fast-check";
import pg from "pg";
import { Pool } from "undici";
import { checkInvariants, type CheckReport } from "../src/checker/invariants";
import { signToken } from "../src/lib/jwt";
import { loadConfig, type Config } from "../config";
import { ALL_SCOPES, anySpecArb, ASSETS, rawArb, type IdKind, type RawSpec, type Spec } from "./fuzz-requests";
import { startTestRegion } from "../test/helpers/cluster";
import { REDIS_URL } from "../test/helpers/env";

export interface FuzzOptions {
	baseUrl: string;
	count: number;
	seed: number;
	concurrency?: number;
	/** The share of requests written raw to a socket (malformed HTTP). */
	rawShare?: number;
	log?: (line: string) => void;
	/** How the target verifies tokens (its JWT_SECRET, audience, issuer); defaults to this process's configuration. */
	jwt?: Config["jwt"];
}

export interface Failure {
	request: string;
	status?: number;
	error?: string;
	body?: string;
}

export interface FuzzReport {
	requests: number;
	raw: number;
	statuses: Record<string, number>;
	/** Answers >= 500. */
	serverErrors: Failure[];
	/** Requests that got no answer (reset, timeout) where one was due. */
	unanswered: Failure[];
	/** Error answers without the JSON error body (raw requests: Node's own bare answers). */
	bare: Failure[];
	/** Requests the HTTP client itself refused to send (not counted in `requests`). */
	clientRefused: number;
	ms: number;
}

function sendRaw(baseUrl: string, spec: RawSpec, ms: number): Promise<{ status: number; text: string }> {
	const u = new URL(baseUrl);
	return new Promise(resolve => {
		const chunks: Buffer[] = [];
		let done = false;
		const finish = () => {
			if (done) return;
			done = true;
			clearTimeout(timer);
			socket.destroy();
			// The final answer's status: an interim 100 Continue comes first.
			const text = Buffer.concat(chunks).toString("latin1").replace(/^HTTP\/1\.1 100 [^\r\n]*\r\n\r\n/, "");
			const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
			resolve({ status: m ? Number(m[1]) : 0, text });
		};
		// Half-closed after the request: a server that waits for more (HTTP/0.9, a short body) sees the end.
		const socket = net.connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: true }, () => socket.end(spec.data));
		socket.on("data", d => {
			chunks.push(d);
			// One answer is enough: a keep-alive connection would otherwise wait for the timer.
			const text = Buffer.concat(chunks).toString("latin1").replace(/^HTTP\/1\.1 100 [^\r\n]*\r\n\r\n/, "");
			const end = text.indexOf("\r\n\r\n");
			if (end < 0) return;
			const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
			if ((len && text.length >= end + 4 + Number(len[1])) || /\r\n0\r\n\r\n$/.test(text)) finish();
		});
		socket.on("close", finish);
		socket.on("error", finish);
		const timer = setTimeout(finish, ms);
	});
}

// ---------------------------------------------------------------------------------------------

interface Known {
	id: string;
	owner: number;
	asset: string;
}
interface Pools {
	supply: Known[];
	order: Known[];
	claim: Known[];
}

function resolveId(ref: { kind: IdKind; pick: number; garbage: string }, pools: Pools): string {
	const pool = ref.kind === "garbage" ? [] : pools[ref.kind];
	return pool.length > 0 ? pool[ref.pick % pool.length].id : ref.garbage;
}

/** A claim that can win: an order of another user and a supply of the caller's in the same asset. */
function winnableClaim(pick: number, user: number, pools: Pools): { orderId: string; supplyId: string } | undefined {
	const orders = pools.order.filter(o => o.owner !== user);
	if (orders.length === 0) return undefined;
	const order = orders[pick % orders.length];
	const supplies = pools.supply.filter(x => x.owner === user && x.asset === order.asset);
	if (supplies.length === 0) return undefined;
	return { orderId: order.id, supplyId: supplies[pick % supplies.length].id };
}

/** Ids in a body (claims' orderId and supplyId) are references until sent. */
function resolveBody(value: unknown, pools: Pools): unknown {
	if (value && typeof value === "object" && !Array.isArray(value)) {
		const v = value as Record<string, any>;
		if ("kind" in v && "pick" in v && "garbage" in v) return resolveId(v as any, pools);
		return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveBody(x, pools)]));
	}
	return value;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
	const log = o.log ?? (() => undefined);
	const jwt = o.jwt ?? loadConfig().jwt;
	const tokens = await Promise.all([0, 1, 2].map(i => signToken(jwt, `fuzz-user-${i}`, ALL_SCOPES, "1h")));
	const admin = await signToken(jwt, "fuzz-admin", ["admin", ...ALL_SCOPES], "1h");
	const expired = await signToken(jwt, "fuzz-user-0", ALL_SCOPES, -60);
	const wrongSecret = await signToken({ ...jwt, secret: "another-secret-of-at-least-32-characters!!" }, "fuzz-user-0", ["admin"], "1h");

	const http = new Pool(o.baseUrl, { connections: o.concurrency ?? 16, headersTimeout: 20_000, bodyTimeout: 20_000 });
	const pools: Pools = { supply: [], order: [], claim: [] };

	// Seed: supplies and orders of every user in several assets, so generated claims can win.
	for (let u = 0; u < 3; u++)
		for (const asset of ASSETS) {
			const s = await http.request({ path: "/api/v1/supplies", method: "POST", headers: { authorization: `Bearer ${tokens[u]}`, "content-type": "application/json" }, body: JSON.stringify({ asset, amount: "1000" }) });
			const sb: any = await s.body.json();
			if (s.statusCode !== 201) throw new Error(`seeding a supply: ${s.statusCode} ${JSON.stringify(sb)}`);
			pools.supply.push({ id: sb.id, owner: u, asset });
			for (let k = 0; k < 3; k++) {
				const r = await http.request({ path: "/api/v1/orders", method: "POST", headers: { authorization: `Bearer ${tokens[(u + 1) % 3]}`, "content-type": "application/json" }, body: JSON.stringify({ asset, items: [{ sku: `seed-${k}`, name: "Seed", unitPrice: "1.5", quantity: 2 }] }) });
				const rb: any = await r.body.json();
				if (r.statusCode !== 201) throw new Error(`seeding an order: ${r.statusCode} ${JSON.stringify(rb)}`);
				pools.order.push({ id: rb.id, owner: (u + 1) % 3, asset });
			}
		}

	const rawShare = o.rawShare ?? 0.1;
	const rawCount = Math.round(o.count * rawShare);
	// Some generated requests are refused by the HTTP client before sending: a few more are generated,
	// and the run stops once `count` have been sent.
	const specs = fc.sample(anySpecArb, { numRuns: Math.ceil((o.count - rawCount) * 1.1), seed: o.seed });
	const raws = fc.sample(rawArb, { numRuns: rawCount, seed: o.seed + 1 });

	const report: FuzzReport = { requests: 0, raw: 0, statuses: {}, serverErrors: [], unanswered: [], bare: [], clientRefused: 0, ms: 0 };
	const count = (status: number | string) => (report.statuses[String(status)] = (report.statuses[String(status)] ?? 0) + 1);
	const started = performance.now();

	async function one(spec: Spec) {
		const routePath = spec.route.split(" ")[1];
		let path = /^\/(health|api)\//.test(routePath) ? routePath : `/api/v1${routePath}`;
		let i = 0;
		path = path.replace(/:id/g, () => encodeURIComponent(resolveId(spec.ids[i++ % spec.ids.length], pools)));
		const qs = new URLSearchParams(Object.entries(spec.query).map(([k, v]) => [k, String(v)] as [string, string])).toString();
		if (qs) path += `?${qs}`;
		const headers: Record<string, string> = {};
		const token = tokens[spec.user];
		if (spec.auth === "user") headers.authorization = `Bearer ${token}`;
		else if (spec.auth === "admin") headers.authorization = `Bearer ${admin}`;
		else if (spec.auth === "garbage") headers.authorization = "Bearer not.a.token";
		else if (spec.auth === "expired") headers.authorization = `Bearer ${expired}`;
		else if (spec.auth === "wrong-secret") headers.authorization = `Bearer ${wrongSecret}`;
		else if (spec.auth === "basic") headers.authorization = "Basic dXNlcjpwYXNz";
		if (spec.idempotencyKey !== null) headers["idempotency-key"] = spec.idempotencyKey;
		for (const [k, v] of spec.extraHeaders) if (k !== "transfer-encoding") headers[k] = v;

		let body: Buffer | undefined;
		let value = spec.body.kind === "json" ? resolveBody(spec.body.value, pools) : undefined;
		if (spec.valid && spec.route === "POST /claims") value = winnableClaim(spec.ids[0].pick, spec.user, pools) ?? value;
		if (spec.body.kind === "json") body = Buffer.from(JSON.stringify(value) ?? "null");
		else if (spec.body.kind === "text") body = Buffer.from(spec.body.value);
		if (body !== undefined && spec.contentType) headers["content-type"] = spec.contentType;
		if (body !== undefined && spec.encoding !== "identity") {
			if (spec.encoding === "gzip") body = gzipSync(body);
			else if (spec.encoding === "deflate") body = deflateSync(body);
			else if (spec.encoding === "bad-gzip") body = body.subarray(0, 10);
			else if (spec.encoding === "empty-gzip") body = Buffer.alloc(0);
			headers["content-encoding"] = spec.encoding.replace(/^(bad|empty)-/, "");
		}
		// GET and HEAD carry a body only sometimes (undici refuses some combinations).
		if ((spec.method === "GET" || spec.method === "HEAD") && spec.body.kind !== "none" && spec.user !== 0) body = undefined;
		const label = `${spec.method} ${path} auth=${spec.auth} enc=${spec.encoding} ct=${spec.contentType} body=${body ? body.toString("latin1").slice(0, 120) : "-"}`;
		let res;
		try {
			res = await http.request({ path, method: spec.method as any, headers, body });
		} catch (err: any) {
			if (err?.code === "UND_ERR_INVALID_ARG" || err?.code === "UND_ERR_NOT_SUPPORTED" || err instanceof TypeError) {
				report.clientRefused++;
				return;
			}
			report.requests++;
			count("no answer");
			report.unanswered.push({ request: label, error: `${err?.code ?? ""} ${err?.message}` });
			return;
		}
		report.requests++;
		const text = await res.body.text();
		count(res.statusCode);
		if (res.statusCode >= 500) report.serverErrors.push({ request: label, status: res.statusCode, body: text.slice(0, 300) });
		if (res.statusCode === 201 && (spec.auth === "user" || spec.auth === "admin")) {
			try {
				const b = JSON.parse(text);
				const known = { id: b.id, owner: spec.user, asset: b.asset };
				if (spec.route === "POST /claims") pools.claim.push(known);
				else if (spec.route === "POST /orders") pools.order.push(known);
				else if (spec.route === "POST /supplies") pools.supply.push(known);
			} catch {
				/* a 201 without JSON would show in the checker's counts */
			}
		}
	}

	async function oneRaw(spec: RawSpec) {
		report.raw++;
		report.requests++;
		const r = await sendRaw(o.baseUrl, spec, spec.answerDue ? 5000 : 300);
		if (r.status === 0) {
			count(spec.answerDue ? "no answer" : "closed");
			if (spec.answerDue)
				report.unanswered.push({ request: `raw: ${spec.name} ${JSON.stringify(spec.data.toString("latin1").slice(0, 80))}`, error: r.text.slice(0, 100) || "closed without an answer" });
			return;
		}
		count(r.status);
		if (r.status >= 500) report.serverErrors.push({ request: `raw: ${spec.name}`, status: r.status, body: r.text.slice(0, 300) });
		if (r.status >= 400 && !/\r\n\r\n(?:[0-9a-f]+\r\n)?\{"error":\{"code":"[A-Z_]+"/i.test(r.text))
			report.bare.push({ request: `raw: ${spec.name}`, status: r.status, body: r.text.slice(0, 200) });
	}

	// Interleave the raw requests with the others; a fixed number in flight.
	const jobs: (() => Promise<void>)[] = specs.map(s => () => one(s));
	raws.forEach((r, i) => jobs.splice(Math.floor(((i + 1) * (o.count - rawCount)) / (raws.length + 1)) + i, 0, () => oneRaw(r)));
	let next = 0;
	let finished = 0;
	const progressEvery = Math.max(1000, Math.floor(o.count / 10));
	await Promise.all(
		Array.from({ length: o.concurrency ?? 16 }, async () => {
			while (next < jobs.length && next - report.clientRefused < o.count) {
				const job = jobs[next++];
				await job();
				if (++finished % progressEvery === 0) log(`  ${finished} answered`);
			}
		}),
	);
	report.ms = Math.round(performance.now() - started);
	await http.close();
	return report;
}

const ROUTE_WORDS = new Set(["api", "v1", "supplies", "orders", "claims", "pause", "resume", "close", "cancel", "complete", "release", "regions", "health", "live", "ready", "openapi.json"]);

export function printReport(report: FuzzReport, checker?: CheckReport) {
	const statuses = Object.entries(report.statuses).sort(([a], [b]) => a.localeCompare(b));
	console.log(`fuzz: ${report.requests} requests (${report.raw} raw) in ${(report.ms / 1000).toFixed(1)} s; ${report.clientRefused} refused by the client before sending`);
	console.log(`statuses: ${statuses.map(([s, n]) => `${s}: ${n}`).join(", ")}`);
	console.log(`answers >= 500: ${report.serverErrors.length}; unanswered: ${report.unanswered.length}; error answers without the JSON body: ${report.bare.length}`);
	// Answers >= 500 grouped by route (ids elided), status and authentication: one line per cause.
	const groups = new Map<string, number>();
	for (const f of report.serverErrors) {
		const [method, url, auth] = f.request.split(" ");
		const route = url.split("?")[0].split("/").map(seg => (seg === "" || ROUTE_WORDS.has(seg) ? seg : ":id")).join("/");
		const key = `${f.status} ${method} ${route} ${auth.startsWith("auth=") ? auth : ""}`;
		groups.set(key, (groups.get(key) ?? 0) + 1);
	}
	for (const [key, n] of groups) console.log(`  ${n} × ${key}`);
	for (const f of [...report.serverErrors.slice(0, 10), ...report.unanswered.slice(0, 10), ...report.bare.slice(0, 10)]) console.log(`  ${f.status ?? f.error} ${f.request} ${f.body ?? ""}`);
	if (checker) console.log(`checker: ${checker.violations.length} violations; counts ${JSON.stringify(checker.counts)}`);
}

function arg(name: string): string | undefined {
	const i = process.argv.indexOf(`--${name}`);
	return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main() {
	const count = Number(arg("count") ?? 10_000);
	const seed = Number(arg("seed") ?? Date.now() % 1_000_000);
	let crashes = 0;
	process.on("uncaughtException", err => {
		crashes++;
		console.error("uncaught exception:", err);
	});
	process.on("unhandledRejection", err => {
		crashes++;
		console.error("unhandled rejection:", err);
	});
	let baseUrl: string | undefined = arg("url");
	const databaseUrl = arg("database-url");
	let stop: () => Promise<void> = async () => {};
	let dbPool: pg.Pool | undefined;
	let jwt: Config["jwt"] | undefined;
	if (!baseUrl) {
		// A region of one node on a database of its own, as the tests start one.
		const region = await startTestRegion({
			redisUrl: REDIS_URL,
			// --cluster: the README's split over NATS (errors then cross the transporter).
			nodes: process.argv.includes("--cluster") ? [["api"], ["supply", "order"], ["claiming"], ["claiming"]] : [["api", "supply", "order", "claiming"]],
			env: { RATE_LIMIT: "100000000", RATE_LIMIT_IP: "100000000", LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
		});
		baseUrl = region.apiUrl;
		dbPool = region.db.pool;
		jwt = region.cfg.jwt;
		stop = () => region.stop();
	} else if (databaseUrl) dbPool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
	const url = baseUrl;
	console.log(`fuzzing ${url} with ${count} requests, seed ${seed}`);
	let failed = false;
	try {
		const report = await runFuzz({ baseUrl: url, count, seed, jwt, log: l => console.log(l) });
		const live = await fetch(`${url}/health/live`).then(r => r.status, () => 0);
		if (live !== 200) crashes++;
		const checker = dbPool ? await checkInvariants(dbPool) : undefined;
		printReport(report, checker);
		console.log(`crashes: ${crashes}${dbPool ? "" : " (no --database-url: invariant checker skipped)"}`);
		failed = report.serverErrors.length > 0 || report.unanswered.length > 0 || report.bare.length > 0 || crashes > 0 || (checker?.violations.length ?? 0) > 0;
		if (checker?.violations.length) console.log(JSON.stringify(checker.violations.slice(0, 10), null, 1));
	} finally {
		if (arg("url") && dbPool) await dbPool.end();
		await stop();
	}
	console.log(failed ? "FAILED" : "OK");
	process.exit(failed ? 1 : 0);
}

if (process.argv[1]?.endsWith("fuzz.ts")) void main();
