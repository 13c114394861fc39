// What scripts/fuzz.ts sends: fast-check arbitraries for HTTP requests to every route (about a third
// built to succeed, with real ids; the rest with wrong types, malformed JSON, odd values, methods,
// headers and encodings) and for malformed requests written raw to a socket.
import fc from "fast-check";
import { ROUTES } from "../src/routes";

export const ALL_SCOPES = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];
export const ASSETS = ["ETH", "USDC", "BTC"];

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

export type IdKind = "supply" | "order" | "claim" | "garbage";
/** A reference to an id, resolved when sent (the pools grow as the run creates things). */
const idRef = fc.record({
	kind: fc.constantFrom<IdKind>("supply", "order", "claim", "supply", "order", "garbage"),
	pick: fc.nat(),
	garbage: fc.oneof(fc.uuid({ version: 4 }), fc.constantFrom("not-a-uuid", "%2e%2e", "00000000-0000-0000-0000-000000000000", "x".repeat(300)), fc.string({ minLength: 1, maxLength: 20 })),
});

// ---------------------------------------------------------------------------------------------
// An HTTP request: a route (or none), a method (usually the route's), query, headers and body.

export interface Spec {
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

export const anySpecArb = fc.oneof({ weight: 3, arbitrary: validSpecArb }, { weight: 7, arbitrary: specArb });

// ---------------------------------------------------------------------------------------------
// Raw requests: what no HTTP client sends.

export interface RawSpec {
	name: string;
	data: Buffer;
	/** False when the request is incomplete on purpose: the server may wait for the rest. */
	answerDue: boolean;
}

const CRLF = "\r\n";
const headLines = (lines: string[]) => lines.join(CRLF) + CRLF + CRLF;

export const rawArb: fc.Arbitrary<RawSpec> = fc.oneof(
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
