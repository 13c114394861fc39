// A fuzz run of the REST API: generated requests (malformed JSON, wrong types, huge and negative numbers,
// long strings, NUL and lone surrogates, wrong methods, odd headers, bad encodings, every route, and
// malformed requests written straight to a socket) against a running region. It counts the statuses
// and fails on any answer >= 500, any request left unanswered, any crash, and any invariant the checker
// finds broken afterwards.
//
//   npm run fuzz                                   # 10,000 requests on a region started here
//   npm run fuzz -- --count 50000 --seed 7
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
import { loadConfig } from "../config";
import { ROUTES } from "../src/routes";
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

const ALL_SCOPES = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];
const ASSETS = ["ETH", "USDC", "BTC"];

// ---------------------------------------------------------------------------------------------
// Values an attacker tries in any field.

const nasty = fc.oneof(
	fc.constantFrom(
		"",
		" ",
		"\u0000",
		"a\u0000b",
		"\ud800",
		"x\udfffy",
		"\ud83d\ude00",
		"\u202e",
		"null",
		"undefined",
		"NaN",
		"-0",
		"1e309",
		"-1",
		"0",
		"0.0000000000000000001",
		"99999999999999999999.999999999999999999",
		"999999999999999999999",
		"1,5",
		" 1 ",
		"0x10",
		"Infinity",
		"__proto__",
		"constructor",
		"' OR 1=1 --",
		"%00",
		"../../etc/passwd",
		"${jndi:ldap://x}",
		"<script>",
	),
	fc.string({ unit: "binary", maxLength: 40 }),
	fc.string({ unit: "grapheme", maxLength: 40 }),
	fc.string({ minLength: 300, maxLength: 5000 }),
);

const anyJson: fc.Arbitrary<unknown> = fc.oneof(
	nasty,
	fc.integer(),
	fc.double(),
	fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1e308, -1e308, 2 ** 64, -1, 0, 0.5),
	fc.boolean(),
	fc.constant(null),
	fc.array(fc.integer(), { maxLength: 5 }),
	fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 4 }),
);

/** A field's value: usually plausible, sometimes anything. */
const field = (good: fc.Arbitrary<unknown>) => fc.oneof({ weight: 3, arbitrary: good }, { weight: 2, arbitrary: anyJson });

const amountArb = fc.oneof(
	fc.constantFrom("1", "0.5", "10", "0.000001", "100000"),
	fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String),
	fc.tuple(fc.nat(1000), fc.nat(10 ** 9)).map(([a, b]) => `${a}.${b}`),
);
const itemArb = fc.record({
	sku: field(fc.string({ minLength: 1, maxLength: 70 })),
	name: field(fc.string({ minLength: 1, maxLength: 210 })),
	unitPrice: field(amountArb),
	quantity: field(fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer(), fc.constant(1_000_001))),
});

type IdKind = "supply" | "order" | "claim" | "garbage";
/** A reference to an id, resolved when sent (the pools grow as the run creates things). */
const idRef = fc.record({
	kind: fc.constantFrom<IdKind>("supply", "order", "claim", "supply", "order", "garbage"),
	pick: fc.nat(),
	garbage: fc.oneof(fc.uuid({ version: 4 }), fc.constantFrom("not-a-uuid", "%2e%2e", "00000000-0000-0000-0000-000000000000", "x".repeat(300)), fc.string({ minLength: 1, maxLength: 20 })),
});

// ---------------------------------------------------------------------------------------------
// An HTTP request: a route (or none), a method (usually the route's), query, headers and body.

interface Spec {
	/** Built to succeed (real ids, good values): reaches the claim path and the database. */
	valid: boolean;
	route: string; // "METHOD /path" of ROUTES, or a made-up path
	method: string;
	ids: { kind: IdKind; pick: number; garbage: string }[];
	query: Record<string, unknown>;
	body: { kind: "json"; value: unknown } | { kind: "text"; value: string } | { kind: "none" };
	auth: "user" | "admin" | "none" | "garbage" | "expired" | "basic" | "wrong-secret";
	user: number;
	encoding: "identity" | "gzip" | "deflate" | "bad-gzip" | "bad-deflate" | "empty-gzip" | "br" | "compress";
	contentType: string | null;
	idempotencyKey: string | null;
	extraHeaders: [string, string][];
}

const routeNames = Object.keys(ROUTES);
const bodyFor: Record<string, fc.Arbitrary<unknown>> = {
	"POST /supplies": fc.record({ asset: field(fc.constantFrom(...ASSETS)), amount: field(amountArb) }, { requiredKeys: [] }),
	"PATCH /supplies/:id": fc.record({ amount: field(amountArb) }, { requiredKeys: [] }),
	"POST /orders": fc.record(
		{
			asset: field(fc.constantFrom(...ASSETS)),
			items: field(fc.array(itemArb, { minLength: 0, maxLength: 4 })),
			expiresInSec: field(fc.integer({ min: 1, max: 10 ** 7 })),
		},
		{ requiredKeys: ["asset", "items"] },
	),
	"POST /claims": fc.record(
		{ orderId: idRef, supplyId: idRef, idempotencyKey: fc.string(), claimerId: fc.string() },
		{ requiredKeys: ["orderId", "supplyId"] },
	),
};

const malformedJson = fc.oneof(
	fc.constantFrom("{", "}", "[", '{"a":', '{"asset":"ETH",}', "{'a':1}", "nul", "tru", '"\\u12"', '"\\x41"', "1e99999", "{}{}", "\u0000", '{"a":1}garbage'),
	fc.nat(60_000).map(n => "[".repeat(n % 20_000) + "]".repeat(n % 20_000)),
	fc.constant(JSON.stringify({ asset: "ETH", amount: "1", pad: "x".repeat(70_000) })), // over the 64 kb limit
	fc.constantFrom('{"__proto__": {"asset": "ETH", "amount": "1"}}', '{"constructor": {"prototype": {"x": 1}}}', '{"asset":"ETH","amount":"1","__proto__":{"isAdmin":true}}'),
	fc.string({ unit: "binary", maxLength: 200 }),
);

const queryArb = fc.dictionary(
	fc.constantFrom("page", "pageSize", "status", "asset", "idempotencyKey", "amount", "id", "__proto__[x]", "page[]", "cursor", "x"),
	fc.oneof(
		fc.constantFrom("1", "01", "0", "-1", "1000000", "1000001", "1e6", "1.5", "abc", "", "open", "active", "ETH", "%00", "%ud800", "%FF", "a&b=c"),
		fc.integer().map(String),
	),
	{ maxKeys: 3 },
);

const specArb: fc.Arbitrary<Spec> = fc
	.record({
		route: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...routeNames) }, { weight: 1, arbitrary: fc.constantFrom("GET /nothing", "POST /supplies/:id/explode", "GET /", "DELETE /orders/:id") },
			// The gateway's own routes, outside /api/v1.
			{ weight: 1, arbitrary: fc.constantFrom("GET /health/live", "GET /health/ready", "GET /api/openapi.json") }),
		wrongMethod: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE") }),
		ids: fc.array(idRef, { minLength: 2, maxLength: 2 }),
		query: fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: queryArb }),
		bodyChoice: fc.constantFrom("route", "route", "route", "any", "malformed", "none", "text"),
		anyBody: anyJson,
		malformed: malformedJson,
		auth: fc.constantFrom<Spec["auth"]>("user", "user", "user", "user", "admin", "none", "garbage", "expired", "basic", "wrong-secret"),
		user: fc.nat(2),
		encoding: fc.constantFrom<Spec["encoding"]>("identity", "identity", "identity", "identity", "identity", "gzip", "deflate", "bad-gzip", "bad-deflate", "empty-gzip", "br", "compress"),
		contentType: fc.constantFrom<string | null>(
			"application/json",
			"application/json",
			"application/json",
			"application/json; charset=utf-8",
			"application/json; charset=utf-16",
			"application/json; charset=latin1",
			"application/json; charset=nope",
			"text/plain",
			"application/x-www-form-urlencoded",
			"multipart/form-data; boundary=x",
			null,
		),
		idempotencyKey: fc.oneof(
			{ weight: 4, arbitrary: fc.uuid().map(u => `fz-${u}`) },
			{ weight: 1, arbitrary: fc.constantFrom<string | null>(null, "", "x".repeat(200), "key with spaces", "ключ", "fz-fixed-key") },
		),
		extraHeaders: fc.array(
			fc.oneof(
				fc.constantFrom<[string, string]>(
					["if-none-match", "*"],
					["if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT"],
					["x-request-id", "dup-request-id"],
					["x-request-id", "x".repeat(500)],
					["x-correlation-id", "corr-1"],
					["accept", "text/html"],
					["accept-encoding", "gzip, br"],
					["origin", "https://evil.example"],
					["access-control-request-method", "DELETE"],
					["x-forwarded-for", "1.2.3.4"],
					["content-language", "xx"],
					["transfer-encoding", "chunked"],
					["range", "bytes=0-1"],
				),
				fc.tuple(fc.stringMatching(/^x-[a-z]{1,10}$/), fc.stringMatching(/^[\x20-\x7e]{0,40}$/)),
			),
			{ maxLength: 3 },
		),
	})
	.chain(r => {
		const base = r.route.split(" ")[0];
		const body = bodyFor[r.route];
		return (body ?? fc.constant({})).map(routeBody => ({
			valid: false,
			route: r.route,
			method: r.wrongMethod ?? base,
			ids: r.ids,
			query: r.query,
			body:
				r.bodyChoice === "route"
					? { kind: "json" as const, value: routeBody }
					: r.bodyChoice === "any"
						? { kind: "json" as const, value: r.anyBody }
						: r.bodyChoice === "malformed"
							? { kind: "text" as const, value: r.malformed }
							: r.bodyChoice === "text"
								? { kind: "text" as const, value: typeof r.anyBody === "string" ? r.anyBody : String(JSON.stringify(r.anyBody)) }
								: { kind: "none" as const },
			auth: r.auth,
			user: r.user,
			encoding: r.encoding,
			contentType: r.contentType,
			idempotencyKey: r.idempotencyKey,
			extraHeaders: r.extraHeaders,
		}));
	});

const goodAmount = fc.tuple(fc.integer({ min: 1, max: 500 }), fc.nat(999_999)).map(([a, b]) => `${a}.${b}`);
const goodItem = fc.record({
	sku: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
	name: fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }).filter(n => n.trim().length > 0),
	unitPrice: fc.constantFrom("0.5", "1", "2.25", "0.000001"),
	quantity: fc.integer({ min: 1, max: 3 }),
});
const goodBody: Record<string, fc.Arbitrary<unknown>> = {
	"POST /supplies": fc.record({ asset: fc.constantFrom(...ASSETS), amount: goodAmount }),
	"PATCH /supplies/:id": fc.record({ amount: goodAmount }),
	"POST /orders": fc.record({ asset: fc.constantFrom(...ASSETS), items: fc.array(goodItem, { minLength: 1, maxLength: 3 }) }),
};
const realId = fc.record({ kind: fc.constantFrom<IdKind>("supply", "order", "claim"), pick: fc.nat(), garbage: fc.constant("x") });

const validSpecArb: fc.Arbitrary<Spec> = fc
	.record({
		route: fc.constantFrom(...routeNames, "POST /claims", "POST /claims", "POST /claims", "POST /orders/:id/complete", "POST /claims/:id/release"),
		ids: fc.array(realId, { minLength: 2, maxLength: 2 }),
		user: fc.nat(2),
		admin: fc.boolean(),
		gzip: fc.nat(9),
		key: fc.oneof({ weight: 5, arbitrary: fc.uuid().map(u => `fz-${u}`) }, { weight: 1, arbitrary: fc.nat(20).map(n => `fz-replay-${n}`) }),
		query: fc.oneof(fc.constant({}), fc.record({ page: fc.integer({ min: 1, max: 3 }), pageSize: fc.integer({ min: 1, max: 200 }) })),
	})
	.chain(r =>
		(goodBody[r.route] ?? fc.constant({})).map(b => {
			// A list route keeps the query; a write takes no query.
			const isRead = r.route.startsWith("GET ");
			return {
				valid: true,
				route: r.route,
				method: r.route.split(" ")[0],
				ids: r.ids.map(id => (r.route.startsWith("GET /claims/") || r.route.includes("/release") ? { ...id, kind: "claim" as IdKind } : r.route.includes("/orders/") ? { ...id, kind: "order" as IdKind } : r.route.includes("/supplies/") ? { ...id, kind: "supply" as IdKind } : id)),
				query: isRead ? r.query : {},
				body: isRead ? ({ kind: "none" } as const) : ({ kind: "json", value: b } as const),
				auth: r.admin && r.route.includes("/release") ? "admin" : "user",
				user: r.user,
				encoding: r.gzip === 0 ? "gzip" : "identity",
				contentType: "application/json",
				idempotencyKey: r.key,
				extraHeaders: [],
			} satisfies Spec;
		}),
	);

const anySpecArb = fc.oneof({ weight: 3, arbitrary: validSpecArb }, { weight: 7, arbitrary: specArb });

// ---------------------------------------------------------------------------------------------
// Raw requests: what no HTTP client sends.

interface RawSpec {
	name: string;
	data: Buffer;
	/** False when the request is incomplete on purpose: the server may wait for the rest. */
	answerDue: boolean;
}

const CRLF = "\r\n";
const headLines = (lines: string[]) => lines.join(CRLF) + CRLF + CRLF;

const rawArb: fc.Arbitrary<RawSpec> = fc.oneof(
	fc.constantFrom<RawSpec>(
		...[
			["header name with a space", headLines(["GET /health/live HTTP/1.1", "Host: x", "Bad Name: 1"])],
			["NUL in a header", headLines(["GET /api/v1/supplies HTTP/1.1", "Host: x", "X-A: a\u0000b"])],
			["CR in a header", headLines(["GET /api/v1/supplies HTTP/1.1", "Host: x", "X-A: a\rb"])],
			["CL and TE", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: 4", "Transfer-Encoding: chunked"]) + "0\r\n\r\n"],
			["two CLs", headLines(["POST /api/v1/orders HTTP/1.1", "Host: x", "Content-Length: 2", "Content-Length: 3"]) + "{}x"],
			["bad chunk size", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Content-Type: application/json"]) + "zz\r\n{}\r\n0\r\n\r\n"],
			["huge head", headLines(["GET /health/live HTTP/1.1", "Host: x", `X-Big: ${"a".repeat(20_000)}`])],
			["many headers", headLines(["GET /health/live HTTP/1.1", "Host: x", ...Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`)])],
			["unknown method", headLines(["BREW /health/live HTTP/1.1", "Host: x"])],
			["CONNECT", headLines(["CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"])],
			["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
			["HTTP/0.9", "GET /health/live\r\n"],
			["HTTP/9.9", headLines(["GET /health/live HTTP/9.9", "Host: x"])],
			["absolute URI", headLines(["GET http://evil.example/health/live HTTP/1.1", "Host: x", "Connection: close"])],
			["no Host", headLines(["GET /api/v1/supplies HTTP/1.1", "Connection: close"])],
			["space in URL", headLines(["GET /api/v1/sup plies HTTP/1.1", "Host: x"])],
			["raw unicode in URL", headLines(["GET /api/v1/supplies/\u00ff\u0100 HTTP/1.1", "Host: x", "Connection: close"])],
			["obs-fold header", "GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n"],
			["LF only", "GET /health/live HTTP/1.1\nHost: x\nConnection: close\n\n"],
			["upgrade websocket", headLines(["GET /health/live HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade, close"])],
			["upgrade h2c", headLines(["GET /api/v1/supplies HTTP/1.1", "Host: x", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings, close", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"])],
			["expect 100", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Expect: 100-continue", "Content-Length: 2", "Content-Type: application/json", "Connection: close"]) + "{}"],
			["expect odd", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Expect: 200-ok", "Content-Length: 2", "Connection: close"]) + "{}"],
			["pipelined garbage", headLines(["GET /health/live HTTP/1.1", "Host: x"]) + "\u0001\u0002garbage\r\n\r\n"],
			["negative CL", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: -1"])],
			["huge CL", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: 99999999999999999999"])],
			["TE gzip", headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Transfer-Encoding: gzip, chunked"]) + "0\r\n\r\n"],
		].map(([name, data]) => ({ name, data: Buffer.from(data, "latin1"), answerDue: true })),
		{ name: "body shorter than Content-Length", data: Buffer.from(headLines(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: 50"]) + "{}"), answerDue: false },
		{ name: "head never finished", data: Buffer.from("GET /health/live HTTP/1.1\r\nHost: x\r\n"), answerDue: false },
	),
	fc.uint8Array({ minLength: 1, maxLength: 300 }).map(bytes => ({
		name: "random bytes",
		data: Buffer.concat([Buffer.from(bytes), Buffer.from("\r\n\r\n")]),
		// Empty lines before a request are skipped (RFC 9112 2.2): only CR and LF is no request at all.
		answerDue: bytes.some(b => b !== 10 && b !== 13),
	})),
	fc
		.tuple(fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/), fc.constantFrom("/health/live", "/api/v1/supplies", "/api/v1/claims", "*"))
		.map(([m, p]) => ({ name: "random method", data: Buffer.from(headLines([`${m} ${p} HTTP/1.1`, "Host: x", "Connection: close"])), answerDue: true })),
	fc
		.tuple(fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 30 }), fc.string({ unit: "binary-ascii", maxLength: 60 }))
		.map(([name, value]) => ({ name: "random header", data: Buffer.from(headLines(["GET /health/live HTTP/1.1", "Host: x", `${name}: ${value}`, "Connection: close"]), "latin1"), answerDue: true })),
);

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
	const jwt = loadConfig({ NODE_ENV: "test" }).jwt;
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

export function printReport(report: FuzzReport, checker?: CheckReport) {
	const statuses = Object.entries(report.statuses).sort(([a], [b]) => a.localeCompare(b));
	console.log(`fuzz: ${report.requests} requests (${report.raw} raw) in ${(report.ms / 1000).toFixed(1)} s; ${report.clientRefused} refused by the client before sending`);
	console.log(`statuses: ${statuses.map(([s, n]) => `${s}: ${n}`).join(", ")}`);
	console.log(`answers >= 500: ${report.serverErrors.length}; unanswered: ${report.unanswered.length}; error answers without the JSON body: ${report.bare.length}`);
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
	if (!baseUrl) {
		// A region of one node on a database of its own, as the tests start one.
		const region = await startTestRegion({
			redisUrl: REDIS_URL,
			nodes: [["api", "supply", "order", "claiming"]],
			env: { RATE_LIMIT: "100000000", RATE_LIMIT_IP: "100000000", LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
		});
		baseUrl = region.apiUrl;
		dbPool = region.db.pool;
		stop = () => region.stop();
	} else if (databaseUrl) dbPool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
	const url = baseUrl;
	console.log(`fuzzing ${url} with ${count} requests, seed ${seed}`);
	let failed = false;
	try {
		const report = await runFuzz({ baseUrl: url, count, seed, log: l => console.log(l) });
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
