// The gateway under requests a careful attacker sends: the idempotency key from the header alone on
// every spelling of the route, no query parameter over a body field, bodies that do not decompress,
// text PostgreSQL cannot store, requests Node's parser refuses, OPTIONS, conditional requests and
// prototype keys. Every answer is the documented JSON error, never a 500 and never silence.
import type { AddressInfo } from "node:net";
import { gzipSync, deflateSync } from "node:zlib";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item, tokenFor } from "../helpers/http";
import { rawRequest } from "../helpers/raw-http";
import { checkInvariants } from "../../src/checker/invariants";

let region: Region & { db: TestDatabase };
let shopper: Client, buyer: Client;
let token: string;

beforeAll(async () => {
	region = await startTestRegion({ redisUrl: REDIS_URL, nodes: [["api", "supply", "order", "claiming"]], env: { RATE_LIMIT: "100000", HOST: "127.0.0.1" } });
	shopper = await Client.as(region.apiUrl, "gw-shopper");
	buyer = await Client.as(region.apiUrl, "gw-buyer");
	token = await tokenFor("gw-shopper");
});

afterAll(async () => {
	await region?.stop();
});

const expectError = (r: { status: number; body: any }, status: number, code?: string) => {
	expect(r.status, JSON.stringify(r.body)).toBe(status);
	expect(typeof r.body?.error?.message, JSON.stringify(r.body)).toBe("string");
	expect(typeof r.body.error.requestId).toBe("string");
	if (code) expect(r.body.error.code).toBe(code);
};

async function supplyAndOrder() {
	const s = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "5" });
	expect(s.status, JSON.stringify(s.body)).toBe(201);
	const o = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] });
	expect(o.status, JSON.stringify(o.body)).toBe(201);
	return { supplyId: s.body.id as string, orderId: o.body.id as string };
}

/** A request with full control of headers and body (fetch adds and refuses some). */
async function send(method: string, path: string, headers: Record<string, string>, body?: string | Buffer) {
	const res = await request(region.apiUrl + path, { method: method as any, headers, body });
	const text = await res.body.text();
	let parsed: any = text;
	try {
		parsed = text ? JSON.parse(text) : undefined;
	} catch {
		/* keep text */
	}
	return { status: res.statusCode, headers: res.headers, body: parsed, text };
}

describe("the idempotency key comes from the header alone", () => {
	it("POST /claims/ (trailing slash) uses the header, not a body idempotencyKey: a retry replays", async () => {
		const { supplyId, orderId } = await supplyAndOrder();
		const first = await shopper.post("/api/v1/claims/", { orderId, supplyId, idempotencyKey: "body-key-1" }, { "idempotency-key": "hdr-key-1" });
		expect(first.status, JSON.stringify(first.body)).toBe(201);
		const retry = await shopper.post("/api/v1/claims", { orderId, supplyId }, { "idempotency-key": "hdr-key-1" });
		expect(retry.status, JSON.stringify(retry.body)).toBe(201);
		expect(retry.headers.get("idempotent-replayed")).toBe("true");
		expect(retry.body.id).toBe(first.body.id);
	});

	it("POST /claims/ without the header is refused, whatever the body says", async () => {
		const { supplyId, orderId } = await supplyAndOrder();
		expectError(await shopper.post("/api/v1/claims/", { orderId, supplyId, idempotencyKey: "body-only" }), 400, "IDEMPOTENCY_KEY_REQUIRED");
		expect((await buyer.get(`/api/v1/orders/${orderId}`)).body.status).toBe("open");
	});

	it("a query string on a write is refused: it cannot replace the key or a body field", async () => {
		const { supplyId, orderId } = await supplyAndOrder();
		expectError(
			await shopper.post("/api/v1/claims?idempotencyKey=query-key", { orderId, supplyId }, { "idempotency-key": "hdr-key-2" }),
			400,
			"QUERY_NOT_ALLOWED",
		);
		expectError(await shopper.post("/api/v1/claims?x=1", { orderId, supplyId }, { "idempotency-key": "hdr-key-3" }), 400, "QUERY_NOT_ALLOWED");
		expectError(await shopper.post("/api/v1/supplies?amount=999", { asset: "ETH", amount: "1" }), 400, "QUERY_NOT_ALLOWED");
		expectError(await shopper.request("PATCH", `/api/v1/supplies/${supplyId}?amount=999`, { amount: "6" }), 400, "QUERY_NOT_ALLOWED");
		expect((await shopper.get(`/api/v1/supplies/${supplyId}`)).body.amount).toBe("5");
		expect((await buyer.get(`/api/v1/orders/${orderId}`)).body.status).toBe("open");
		// Reads keep their query parameters.
		expect((await shopper.get("/api/v1/supplies?pageSize=1")).status).toBe(200);
	});

	it("/api/v1//claims is not a claims route", async () => {
		const { supplyId, orderId } = await supplyAndOrder();
		expectError(await shopper.post("/api/v1//claims", { orderId, supplyId, idempotencyKey: "k" }), 404);
		expect((await buyer.get(`/api/v1/orders/${orderId}`)).body.status).toBe("open");
	});
});

describe("bodies", () => {
	const auth = () => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });

	it("a gzip or deflate body that is invalid or empty is a 400 JSON error on every route", async () => {
		for (const [method, path] of [
			["GET", "/health/live"],
			["POST", "/health/live"],
			["GET", "/health/ready"],
			["POST", "/api/v1/supplies"],
			["POST", "/api/v1/claims"],
			["GET", "/api/v1/supplies"],
		])
			for (const [encoding, body] of [
				["gzip", "not gzip at all"],
				["gzip", ""],
				["deflate", "garbage"],
				["deflate", ""],
				["gzip", gzipSync(Buffer.from('{"asset":"ETH"')).subarray(0, 12)],
			] as const) {
				// On the socket, so the empty body is sent as such (Content-Length: 0).
				const bytes = Buffer.from(body);
				const head = [`${method} ${path} HTTP/1.1`, "Host: x", `Authorization: Bearer ${token}`, "Content-Type: application/json"];
				head.push(`Content-Encoding: ${encoding}`, "Idempotency-Key: gz", `Content-Length: ${bytes.length}`, "Connection: close");
				const r = await rawRequest(region.apiUrl, Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`), bytes]));
				expectError(r, 400, "INVALID_BODY");
				expect(r.headers["content-type"]).toMatch(/^application\/json/);
			}
	});

	it("a valid gzip or deflate body is read", async () => {
		const gz = await send("POST", "/api/v1/supplies", { ...auth(), "content-encoding": "gzip" }, gzipSync('{"asset":"ETH","amount":"1.5"}'));
		expect(gz.status, gz.text).toBe(201);
		const df = await send("POST", "/api/v1/supplies", { ...auth(), "content-encoding": "deflate" }, deflateSync('{"asset":"ETH","amount":"2"}'));
		expect(df.status, df.text).toBe(201);
	});

	it("an encoding it cannot read is a 415", async () => {
		expectError(await send("POST", "/api/v1/supplies", { ...auth(), "content-encoding": "compress" }, "xx"), 415, "UNSUPPORTED_MEDIA_TYPE");
	});

	it("NUL or a lone surrogate in an order item's sku or name is a 422, and nothing is stored", async () => {
		for (const field of ["sku", "name"])
			for (const bad of ["a\\u0000b", "\\ud800", "x\\udfffy", "\\u0000"]) {
				const it = { sku: "s", name: "n", unitPrice: "1", quantity: 1, [field]: "PLACEHOLDER" };
				const body = JSON.stringify({ asset: "ETH", items: [it] }).replace("PLACEHOLDER", bad);
				const r = await send("POST", "/api/v1/orders", auth(), body);
				expectError(r, 422, "VALIDATION_ERROR");
				expect(r.body.error.details.fields[0].field).toBe(`items[0].${field}`);
			}
		// A valid pair (an emoji) is text.
		const ok = await send("POST", "/api/v1/orders", auth(), JSON.stringify({ asset: "ETH", items: [{ sku: "😀", name: "ok 😀", unitPrice: "1", quantity: 1 }] }));
		expect(ok.status, ok.text).toBe(201);
		expect(ok.body.items[0].sku).toBe("😀");
	});

	it("a __proto__ key does not supply parameters", async () => {
		const r = await send("POST", "/api/v1/supplies", auth(), '{"__proto__": {"asset": "ETH", "amount": "1"}}');
		expectError(r, 400, "INVALID_BODY");
		const nested = await send("POST", "/api/v1/orders", auth(), '{"asset":"ETH","items":[{"sku":"a","name":"b","unitPrice":"1","quantity":1,"__proto__":{"x":1}}]}');
		expectError(nested, 400, "INVALID_BODY");
	});
});

describe("HTTP edges", () => {
	it("OPTIONS on a GET route does not run the action: 204 with Allow", async () => {
		const r = await send("OPTIONS", "/api/v1/supplies", { authorization: `Bearer ${token}` });
		expect(r.status).toBe(204);
		expect(r.text).toBe("");
		expect(r.headers.allow).toBe("GET, POST, OPTIONS");
		expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
		const one = await send("OPTIONS", "/api/v1/orders/00000000-0000-4000-8000-000000000000/", {});
		expect(one.status).toBe(204);
		expect(one.headers.allow).toBe("GET, OPTIONS");
		expectError(await send("OPTIONS", "/api/v1/nowhere", {}), 404);
	});

	it("If-None-Match: * gets the full answer, not a 304 (no ETag is issued)", async () => {
		const r = await send("GET", "/api/v1/supplies", { authorization: `Bearer ${token}`, "if-none-match": "*" });
		expect(r.status).toBe(200);
		expect(Array.isArray(r.body.rows)).toBe(true);
		const live = await send("GET", "/health/live", { "if-none-match": "*" });
		expect(live.status).toBe(200);
	});

	it("X-RateLimit headers on 400, 401, 404 and 415 answers too", async () => {
		const answers = [
			await send("POST", "/api/v1/supplies", { authorization: `Bearer ${token}`, "content-type": "application/json" }, "{bad"),
			await send("GET", "/api/v1/supplies", {}),
			await send("GET", "/api/v1/nothing-here", {}),
			await send("POST", "/api/v1/supplies", { authorization: `Bearer ${token}`, "content-type": "application/json", "content-encoding": "compress" }, "x"),
		];
		expect(answers.map(a => a.status)).toEqual([400, 401, 404, 415]);
		for (const a of answers) {
			expect(a.headers["x-ratelimit-limit"], String(a.status)).toMatch(/^\d+$/);
			expect(a.headers["x-ratelimit-remaining"], String(a.status)).toMatch(/^\d+$/);
			expect(a.headers["x-ratelimit-reset"], String(a.status)).toMatch(/^\d+$/);
		}
	});

	it("X-RateLimit headers on a 500", async () => {
		const supply = region.brokers[0].getLocalService("supply") as any;
		const pool = supply.pool;
		supply.pool = { query: async () => Promise.reject(new TypeError("a bug")) };
		try {
			const r = await send("GET", "/api/v1/supplies", { authorization: `Bearer ${await tokenFor("gw-500")}` });
			expectError(r, 500, "INTERNAL_ERROR");
			expect(r.headers["x-ratelimit-limit"]).toMatch(/^\d+$/);
		} finally {
			supply.pool = pool;
		}
	});

	it("listens on the configured HOST", () => {
		const api = region.brokers[0].getLocalService("api") as any;
		expect((api.server.address() as AddressInfo).address).toBe("127.0.0.1");
	});
});

describe("requests Node's HTTP parser refuses get the JSON error body", () => {
	const head = (lines: string[]) => `${lines.join("\r\n")}\r\n\r\n`;
	const cases: [string, string, number, string][] = [
		["a header name with a space", head(["GET /health/live HTTP/1.1", "Host: x", "Bad Name: 1"]), 400, "BAD_REQUEST"],
		["NUL in a header value", head(["GET /health/live HTTP/1.1", "Host: x", "X-A: a\u0000b"]), 400, "BAD_REQUEST"],
		["a bare CR in a header value", head(["GET /health/live HTTP/1.1", "Host: x", "X-A: a\rb"]), 400, "BAD_REQUEST"],
		[
			"conflicting Content-Length and Transfer-Encoding",
			head(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: 3", "Transfer-Encoding: chunked"]) + "0\r\n\r\n",
			400,
			"BAD_REQUEST",
		],
		["two different Content-Lengths", head(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Content-Length: 3", "Content-Length: 4"]) + "abcd", 400, "BAD_REQUEST"],
		["a head over the limit", head(["GET /health/live HTTP/1.1", "Host: x", `X-Big: ${"a".repeat(20_000)}`]), 431, "HEADERS_TOO_LARGE"],
		["an unknown method", head(["FOO /health/live HTTP/1.1", "Host: x"]), 400, "BAD_REQUEST"],
		["a malformed request line", head(["GET /health/live HTTP/9.9 extra", "Host: x"]), 400, "BAD_REQUEST"],
		["CONNECT", head(["CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"]), 405, "METHOD_NOT_ALLOWED"],
		["HTTP/1.1 without Host", head(["GET /api/v1/supplies HTTP/1.1", "Connection: close"]), 400, "BAD_REQUEST"],
		["an Expect other than 100-continue", head(["POST /api/v1/supplies HTTP/1.1", "Host: x", "Expect: 200-ok", "Content-Length: 2"]) + "{}", 417, "EXPECTATION_FAILED"],
	];
	for (const [name, data, status, code] of cases)
		it(name, async () => {
			const r = await rawRequest(region.apiUrl, data);
			expect(r.status, r.text.slice(0, 200)).toBe(status);
			expect(r.headers["content-type"]).toMatch(/^application\/json/);
			expect(r.body?.error?.code, r.text.slice(0, 300)).toBe(code);
			expect(typeof r.body.error.requestId).toBe("string");
		});
});

describe("afterwards", () => {
	it("the database is consistent", async () => {
		const report = await checkInvariants(region.db.pool);
		expect(report.violations).toEqual([]);
	});
});
