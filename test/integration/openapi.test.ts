// The OpenAPI document served at /api/openapi.json against the real gateway on one node (real
// PostgreSQL and Redis): it names exactly the routes of src/routes.ts with their actions and scopes,
// and every response of a real flow (successes and errors) has a documented status, a body that
// validates against its schema, the headers declared for it, and no header that is not declared.
// The document's lint (Spectral) runs before the tests: npm run lint:openapi.
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { request as httpRequest } from "node:http";
import { gzipSync } from "node:zlib";
import { Errors } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorBody } from "../../src/lib/http-errors";
import { openApiDocument } from "../../src/openapi";
import { ROUTES } from "../../src/routes";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { SERVICES, startTestRegion, type Region } from "../helpers/cluster";
import { Client, item, tokenFor, type Reply } from "../helpers/http";

const PREFIX = "/api/v1";
const METHODS = ["get", "post", "put", "patch", "delete"] as const;
const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const COMMON_HEADERS = ["X-Request-ID", "X-Region", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"];
// Headers of HTTP itself, which no API document declares.
const TRANSPORT_HEADERS = new Set(["content-type", "content-length", "date", "connection", "keep-alive", "transfer-encoding"]);

type Ref = { $ref: string };
interface Header {
	description: string;
	required?: boolean;
	schema: { type: string };
}
interface Response {
	description: string;
	headers?: Record<string, Header | Ref>;
	content?: Record<string, { schema: object }>;
}
interface Operation {
	operationId: string;
	tags: string[];
	summary: string;
	description: string;
	security?: Record<string, string[]>[];
	"x-required-scopes": string[];
	requestBody?: { required: boolean; content: Record<string, { schema: object }> };
	responses: Record<string, Response | Ref>;
}
interface Document {
	openapi: string;
	servers: { url: string; variables?: Record<string, { default: string }> }[];
	tags: { name: string }[];
	components: { schemas: Record<string, object>; securitySchemes: Record<string, { type: string; scheme?: string }> };
	paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
}

let db: TestDatabase;
let region: Region & { db: TestDatabase };
let doc: Document;
let ajv: Ajv;
let shopper: Client, buyer: Client, other: Client, reader: Client, anon: Client;

/** "/api/v1/supplies/{id}/pause" -> /^\/api\/v1\/supplies\/[^/]+\/pause$/ */
const templateRegex = (template: string) =>
	new RegExp(`^${template.split(/\{[^}]+\}/).map(s => s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")).join("[^/]+")}$`);

/** Every (METHOD path) the document names, e.g. "POST /api/v1/supplies/{id}/pause". */
const documentedOperations = (d: Document) =>
	Object.entries(d.paths).flatMap(([path, item]) =>
		METHODS.filter(m => item[m] !== undefined).map(m => `${m.toUpperCase()} ${path}`),
	);

/** Follows a local "#/components/..." reference (responses, headers); schemas stay references for ajv. */
function deref<T>(x: T | Ref): T {
	if (!x || typeof x !== "object" || !("$ref" in x)) return x as T;
	const target = x.$ref
		.replace(/^#\//, "")
		.split("/")
		.reduce<any>((node, key) => node?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
	if (target === undefined) expect.fail(`${x.$ref} points to nothing`);
	return deref(target as T | Ref);
}

// "#/components/schemas/X" in an inline schema must point into the registered document.
const rebase = (schema: unknown): unknown =>
	Array.isArray(schema)
		? schema.map(rebase)
		: schema && typeof schema === "object"
			? Object.fromEntries(
					Object.entries(schema).map(([k, v]) => [k, k === "$ref" && typeof v === "string" && v.startsWith("#/") ? `openapi${v}` : rebase(v)]),
				)
			: schema;

const validators = new Map<string, ValidateFunction>();
function validatorFor(key: string, schema: object) {
	let v = validators.get(key);
	if (!v) {
		v = ajv.compile(rebase(schema) as object);
		validators.set(key, v);
	}
	return v;
}

const problems = (v: ValidateFunction) =>
	(v.errors ?? []).map(e => `  ${e.instancePath || "(root)"} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`).join("\n");

/** A header's text as the JSON value its schema describes ("42" is the integer 42). */
const headerValue = (text: string, schema: { type: string }) =>
	schema.type === "integer" && /^-?\d+$/.test(text) ? Number(text) : text;

/** The documented operation for a real request (a literal path wins over a template). */
function operationFor(method: string, concretePath: string) {
	const path = concretePath.split("?")[0];
	const m = method.toLowerCase() as (typeof METHODS)[number];
	const matches = Object.entries(doc.paths).filter(([template, item]) => item[m] && templateRegex(template).test(path));
	matches.sort(([a], [b]) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
	if (matches.length === 0) expect.fail(`${method} ${path}: no documented operation matches`);
	const [template, pathItem] = matches[0];
	return { template, operation: pathItem[m]! };
}

/** (method, status, template) seen in real replies, to check the document against afterwards. */
const observed = new Set<string>();

/**
 * Finds the documented operation for a real request and checks that the reply's status is documented
 * for it, that the body validates against the schema documented for that status, that every required
 * header is there and every header there is declared, and that header values match their schemas.
 */
function expectDocumented(method: string, concretePath: string, reply: Reply) {
	const { template, operation } = operationFor(method, concretePath);
	const where = `${method} ${template} (${method} ${concretePath})`;
	observed.add(`${method.toUpperCase()} ${template} ${reply.status}`);

	const documented = operation.responses[String(reply.status)];
	if (!documented)
		expect.fail(
			`${where}: status ${reply.status} is not documented (documented: ${Object.keys(operation.responses).join(", ")}); body: ${JSON.stringify(reply.body)}`,
		);
	const response = deref(documented);
	const schema = response.content?.["application/json"]?.schema;
	if (!schema) expect.fail(`${where}: response ${reply.status} documents no application/json schema`);
	expect(reply.headers.get("content-type"), where).toMatch(/^application\/json/);
	const validate = validatorFor(`${method} ${template} ${reply.status}`, schema);
	if (!validate(reply.body))
		expect.fail(`${where}: the ${reply.status} body does not match its documented schema:\n${problems(validate)}\nbody: ${JSON.stringify(reply.body)}`);

	const declared = Object.fromEntries(Object.entries(response.headers ?? {}).map(([name, h]) => [name.toLowerCase(), { name, ...deref(h) }]));
	for (const { name, required, schema: headerSchema } of Object.values(declared)) {
		const text = reply.headers.get(name);
		if (text === null) {
			if (required) expect.fail(`${where}: the ${reply.status} answer lacks its required header ${name}`);
			continue;
		}
		const check = validatorFor(`header ${name}`, headerSchema);
		if (!check(headerValue(text, headerSchema)))
			expect.fail(`${where}: header ${name}: ${JSON.stringify(text)} does not match its schema:\n${problems(check)}`);
	}
	const undeclared = [...reply.headers.keys()].filter(h => !TRANSPORT_HEADERS.has(h) && !declared[h]);
	expect(undeclared, `${where}: headers sent but not declared for ${reply.status}`).toEqual([]);
}

/** Calls the API and checks the reply against the document; `status` is what the flow expects. */
async function call(client: Client, method: string, path: string, status: number, body?: unknown, headers?: Record<string, string>) {
	const reply = await client.request(method, PREFIX + path, body === undefined && method !== "GET" ? {} : body, headers);
	expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(status);
	expectDocumented(method, PREFIX + path, reply);
	return reply;
}

/** Node's fetch refuses a GET with a body; a client may send one all the same. */
function sendRaw(base: string, method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<Reply> {
	const started = performance.now();
	return new Promise((resolve, reject) => {
		const req = httpRequest(base + path, { method, headers: { ...headers, "content-length": String(body.length) } }, res => {
			const chunks: Buffer[] = [];
			res.on("data", (c: Buffer) => chunks.push(c));
			res.on("end", () => {
				const text = Buffer.concat(chunks).toString();
				const replyHeaders = new Headers();
				for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) replyHeaders.set(k, Array.isArray(v) ? v.join(", ") : v);
				let parsed: unknown = text;
				try {
					parsed = text ? JSON.parse(text) : undefined;
				} catch {
					/* not JSON: keep the text */
				}
				resolve({ status: res.statusCode ?? 0, body: parsed, headers: replyHeaders, ms: performance.now() - started });
			});
		});
		req.on("error", reject);
		req.end(body);
	});
}

/** `call` for a raw request as shopper: any method, any body, any headers. */
async function callRaw(method: string, path: string, status: number, headers: Record<string, string>, body: Buffer) {
	const token = await tokenFor("oa-shopper");
	const reply = await sendRaw(region.apiUrl, method, PREFIX + path, { authorization: `Bearer ${token}`, ...headers }, body);
	expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(status);
	expectDocumented(method, PREFIX + path, reply);
	return reply;
}

/** Each route's action as the service declares it: "supply.create" -> its schema's `permission`. */
function actionPermission(action: string): string | undefined {
	const [service, name] = action.split(".");
	const schema = SERVICES[service as keyof typeof SERVICES] as { actions?: Record<string, { permission?: string }> };
	expect(schema?.actions?.[name], `${action} is not an action of services/${service}.service.ts`).toBeDefined();
	return schema.actions![name].permission;
}

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nodes: [["api", "supply", "order", "claiming"]],
		env: { RATE_LIMIT: "10000" },
	});
	db = region.db;
	shopper = await Client.as(region.apiUrl, "oa-shopper");
	buyer = await Client.as(region.apiUrl, "oa-buyer");
	other = await Client.as(region.apiUrl, "oa-other");
	reader = await Client.as(region.apiUrl, "oa-reader", ["supply:read", "order:read", "claim:read"]);
	anon = new Client(region.apiUrl);
});

afterAll(async () => {
	await region?.stop();
});

describe("the OpenAPI document", () => {
	it("is served without a token at /api/openapi.json, with an absolute server and full paths", async () => {
		const r = await anon.get("/api/openapi.json");
		expect(r.status).toBe(200);
		expect(r.headers.get("content-type")).toMatch(/application\/json/);
		doc = r.body as Document;
		expect(doc.openapi).toBe("3.0.3");
		expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument(region.cfg))));
		// A validating proxy maps a request by server URL + path: the server must be absolute and the
		// paths whole, so that its defaults name a real gateway.
		const [server] = doc.servers;
		const url = server.url.replace(/\{(\w+)\}/g, (_, v: string) => server.variables?.[v]?.default ?? "");
		expect(new URL(url).origin).toBe(url);
		for (const path of Object.keys(doc.paths)) expect(path.startsWith(`${PREFIX}/`), path).toBe(true);

		ajv = new Ajv({ strict: false, allErrors: true });
		addFormats(ajv);
		ajv.addSchema({ $id: "openapi", components: doc.components });
		for (const name of Object.keys(doc.components.schemas))
			expect(() => ajv.getSchema(`openapi#/components/schemas/${name}`), name).not.toThrow();
	});

	it("names exactly the gateway's routes", () => {
		const routes = Object.keys(ROUTES).map(r => r.replace(" ", ` ${PREFIX}`).replace(/:([A-Za-z_]\w*)/g, "{$1}"));
		const documented = documentedOperations(doc);
		expect(new Set(documented).size).toBe(documented.length);
		expect(documented.filter(o => !routes.includes(o)), "documented but not routed").toEqual([]);
		expect(routes.filter(o => !documented.includes(o)), "routed but not documented").toEqual([]);
	});

	it("names each operation after its action, tags and describes it, and names the scope the action checks", () => {
		const tags = doc.tags.map(t => t.name);
		const ids = new Set<string>();
		expect(doc.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: "http", scheme: "bearer" }) });
		for (const [route, action] of Object.entries(ROUTES)) {
			const [method, path] = route.split(" ");
			const template = PREFIX + path.replace(/:([A-Za-z_]\w*)/g, "{$1}");
			const op = doc.paths[template][method.toLowerCase() as (typeof METHODS)[number]]!;
			expect(op.operationId, route).toBe(action.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()));
			ids.add(op.operationId);
			expect(op.tags.length, route).toBeGreaterThan(0);
			for (const tag of op.tags) expect(tags, route).toContain(tag);
			expect(op.summary.trim(), route).not.toBe("");
			expect(op.description.trim(), route).not.toBe("");
			// OpenAPI 3.0 allows scopes only on oauth2/openIdConnect schemes: the scope lives in an extension.
			expect(op.security, route).toEqual([{ bearerAuth: [] }]);
			const permission = actionPermission(action);
			expect(op["x-required-scopes"], route).toEqual(permission ? [permission] : []);
			if (permission) expect(op.description, route).toContain(`\`${permission}\``);
		}
		expect(ids.size).toBe(Object.keys(ROUTES).length);
	});

	it("documents the gateway's statuses and headers on every operation, and a JSON schema for every response", () => {
		for (const [path, pathItem] of Object.entries(doc.paths))
			for (const m of METHODS) {
				const op = pathItem[m];
				if (!op) continue;
				const name = `${m.toUpperCase()} ${path}`;
				const statuses = Object.keys(op.responses);
				// The gateway's own answers: malformed input, no token, limits, failures, dependencies away.
				expect(statuses, name).toEqual(expect.arrayContaining(["400", "401", "429", "500", "503"]));
				if (op["x-required-scopes"].length) expect(statuses, name).toContain("403");
				// A body is read on every route, so any operation may get a 415 for its encoding or charset;
				// every write takes a JSON body (an empty object where it has no fields).
				expect(statuses, name).toContain("415");
				if (m !== "get") expect(Object.keys(op.requestBody?.content ?? {}), name).toEqual(["application/json"]);
				for (const [status, documented] of Object.entries(op.responses)) {
					const res = deref(documented);
					const schema = res.content?.["application/json"]?.schema;
					expect(schema, `${name} ${status}`).toBeDefined();
					expect(() => validatorFor(`${m} ${path} ${status}`, schema!), `${name} ${status}`).not.toThrow();
					if (Number(status) >= 400)
						expect(schema, `${name} ${status}`).toEqual({
							$ref: status === "429" ? "#/components/schemas/TooManyRequestsError" : "#/components/schemas/Error",
						});
					const headers = Object.keys(res.headers ?? {});
					expect(headers, `${name} ${status}`).toEqual(expect.arrayContaining(COMMON_HEADERS));
					if (status === "201") expect(headers, `${name} ${status}`).toContain("Location");
					if (status === "429" || status === "503") expect(headers, `${name} ${status}`).toContain("Retry-After");
					for (const h of Object.values(res.headers ?? {})) expect(deref(h).schema, `${name} ${status}`).toBeDefined();
				}
			}
	});

	it("tells load shedding (QUEUE_FULL) from the rate limit (RATE_LIMITED) in its 429", () => {
		const op = doc.paths[`${PREFIX}/claims`].post!;
		const res = deref(op.responses["429"]);
		expect(res.description).toMatch(/QUEUE_FULL/);
		expect(res.description).toMatch(/RATE_LIMITED/);
		const validate = validatorFor("429 body", res.content!["application/json"].schema);
		// What the gateway answers when a bulkhead's queue is full (moleculer's own error).
		const shed = errorBody(new Errors.QueueIsFullError({ action: "claiming.claim", nodeID: "n1" }), "rid-1");
		expect(shed.status).toBe(429);
		expect(shed.body.error.code).toBe("QUEUE_FULL");
		expect(shed.headers["Retry-After"]).toMatch(/^[1-9]\d*$/);
		expect(validate(shed.body), problems(validate)).toBe(true);
		// The enum has teeth: a 429 with some other code is not what the document promises.
		expect(validate({ error: { ...shed.body.error, code: "SLOW_DOWN" } })).toBe(false);
	});
});

/** A 201's Location is the created entity's URL, which a documented GET answers. */
function expectLocation(reply: Reply, collection: string) {
	const location = reply.headers.get("location");
	expect(location).toBe(`${PREFIX}/${collection}/${reply.body.id}`);
	expect(operationFor("GET", location!).template).toBe(`${PREFIX}/${collection}/{id}`);
}

describe("real replies match the document", () => {
	let supplyId: string;
	let supply2Id: string;

	it("supplies: create, get, list, pause, resume, patch", async () => {
		const s = await call(shopper, "POST", "/supplies", 201, { asset: "ETH", amount: "5" });
		supplyId = s.body.id;
		expectLocation(s, "supplies");
		await call(shopper, "GET", `/supplies/${supplyId}`, 200);
		await call(shopper, "GET", "/supplies", 200);
		await call(shopper, "GET", "/supplies?asset=ETH&status=active&page=1&pageSize=2", 200);
		expect((await call(shopper, "POST", `/supplies/${supplyId}/pause`, 200)).body.status).toBe("paused");
		await call(shopper, "POST", `/supplies/${supplyId}/pause`, 409);
		expect((await call(shopper, "POST", `/supplies/${supplyId}/resume`, 200)).body.status).toBe("active");
		expect((await call(shopper, "PATCH", `/supplies/${supplyId}`, 200, { amount: "6.25" })).body.amount).toBe("6.25");
		supply2Id = (await call(other, "POST", "/supplies", 201, { asset: "ETH", amount: "3" })).body.id;
	});

	it("order, claim (with replay), get and list each, complete", async () => {
		const o = await call(buyer, "POST", "/orders", 201, { asset: "ETH", items: [item("0.1", 3), item("0.05", 1, "sku-2")] });
		expect(o.body.userId).toBe("oa-buyer");
		expectLocation(o, "orders");
		await call(buyer, "GET", `/orders/${o.body.id}`, 200);
		// an open order seen by somebody else: no userId
		expect((await call(other, "GET", `/orders/${o.body.id}`, 200)).body.userId).toBeUndefined();
		await call(buyer, "GET", "/orders", 200);
		await call(buyer, "GET", "/orders?mine=true&status=open&asset=ETH", 200);

		const key = { "idempotency-key": "oa-claim-1" };
		const c = await call(shopper, "POST", "/claims", 201, { orderId: o.body.id, supplyId }, key);
		const replay = await call(shopper, "POST", "/claims", 201, { orderId: o.body.id, supplyId }, key);
		expect(c.headers.get("idempotent-replayed")).toBeNull();
		expectLocation(c, "claims");
		expect(replay.headers.get("idempotent-replayed")).toBe("true");
		expect(replay.body.id).toBe(c.body.id);
		expectLocation(replay, "claims");
		await call(shopper, "GET", `/claims/${c.body.id}`, 200);
		await call(shopper, "GET", "/claims", 200);
		await call(shopper, "GET", "/claims?status=active&page=1&pageSize=5", 200);
		// claimed: visible to buyer and claimer, the claimer without the buyer's id
		expect((await call(shopper, "GET", `/orders/${o.body.id}`, 200)).body.claimId).toBe(c.body.id);

		// a claimed order: 404 to a stranger, 409 to its own claimer under another key
		const hidden = await call(other, "POST", "/claims", 404, { orderId: o.body.id, supplyId: supply2Id }, { "idempotency-key": "oa-claim-2" });
		expect(hidden.body.error.code).toBe("ORDER_NOT_FOUND");
		const conflict = await call(shopper, "POST", "/claims", 409, { orderId: o.body.id, supplyId }, { "idempotency-key": "oa-claim-3" });
		expect(conflict.body.error.code).toBe("ORDER_NOT_OPEN");
		// 409 cancelling a claimed order
		await call(buyer, "POST", `/orders/${o.body.id}/cancel`, 409);
		// 409 closing a supply with reservations, 409 lowering below what is committed
		await call(shopper, "POST", `/supplies/${supplyId}/close`, 409);
		await call(shopper, "PATCH", `/supplies/${supplyId}`, 409, { amount: "0.1" });

		const done = await call(buyer, "POST", `/orders/${o.body.id}/complete`, 200);
		expect(done.body.status).toBe("completed");
		await call(buyer, "POST", `/orders/${o.body.id}/complete`, 409);
		const settled = await call(shopper, "GET", `/claims/${c.body.id}`, 200);
		expect(settled.body.status).toBe("settled");
		expect(settled.body.settledAt).not.toBeNull();
		await call(buyer, "GET", "/orders?status=completed&mine=true", 200);
	});

	it("a second claim is released", async () => {
		const o = await call(buyer, "POST", "/orders", 201, { asset: "ETH", items: [item("0.4")] });
		const c = await call(shopper, "POST", "/claims", 201, { orderId: o.body.id, supplyId }, { "idempotency-key": "oa-release-1" });
		const r = await call(shopper, "POST", `/claims/${c.body.id}/release`, 200);
		expect(r.body.status).toBe("released");
		expect(r.body.releasedAt).not.toBeNull();
		await call(shopper, "POST", `/claims/${c.body.id}/release`, 409);
		expect((await call(buyer, "GET", `/orders/${o.body.id}`, 200)).body).toMatchObject({ status: "open", claimId: null });
		await call(shopper, "GET", "/claims?status=released", 200);
	});

	it("a third order is cancelled; a supply is closed", async () => {
		const o = await call(buyer, "POST", "/orders", 201, { asset: "ETH", items: [item("1")], expiresInSec: 600 });
		await call(other, "POST", `/orders/${o.body.id}/cancel`, 403);
		expect((await call(buyer, "POST", `/orders/${o.body.id}/cancel`, 200)).body.status).toBe("cancelled");
		await call(buyer, "POST", `/orders/${o.body.id}/cancel`, 409);
		await call(buyer, "POST", `/orders/${o.body.id}/complete`, 409);
		expect((await call(other, "POST", `/supplies/${supply2Id}/close`, 200)).body.status).toBe("closed");
		await call(other, "PATCH", `/supplies/${supply2Id}`, 409, { amount: "9" });
		await call(other, "GET", "/supplies?status=closed", 200);
	});

	it("GET /regions; X-Region and a client's X-Request-ID on the answer", async () => {
		const r = await call(shopper, "GET", "/regions", 200, undefined, { "x-request-id": "oa-rid-1" });
		expect(r.body.servedBy).toBe(region.cfg.region);
		expect(r.headers.get("x-region")).toBe(region.cfg.region);
		expect(r.headers.get("x-request-id")).toBe("oa-rid-1");
		const bad = await call(anon, "GET", "/regions", 401, undefined, { "x-request-id": "oa-rid-2" });
		expect(bad.headers.get("x-request-id")).toBe("oa-rid-2");
		expect(bad.body.error.requestId).toBe("oa-rid-2");
		await call(reader, "GET", "/regions", 200);
	});

	it("404 for unknown ids", async () => {
		await call(shopper, "GET", `/supplies/${UNKNOWN}`, 404);
		await call(shopper, "PATCH", `/supplies/${UNKNOWN}`, 404, { amount: "1" });
		await call(shopper, "POST", `/supplies/${UNKNOWN}/pause`, 404);
		await call(shopper, "POST", `/supplies/${UNKNOWN}/resume`, 404);
		await call(shopper, "POST", `/supplies/${UNKNOWN}/close`, 404);
		await call(shopper, "GET", `/orders/${UNKNOWN}`, 404);
		await call(buyer, "POST", `/orders/${UNKNOWN}/cancel`, 404);
		await call(buyer, "POST", `/orders/${UNKNOWN}/complete`, 404);
		await call(shopper, "GET", `/claims/${UNKNOWN}`, 404);
		await call(shopper, "POST", `/claims/${UNKNOWN}/release`, 404);
		await call(shopper, "POST", "/claims", 404, { orderId: UNKNOWN, supplyId }, { "idempotency-key": "oa-404" });
		// another user's supply is not found either
		await call(other, "GET", `/supplies/${supplyId}`, 404);
	});

	it("422 for bad amounts, fields and ids", async () => {
		const bad = await call(shopper, "POST", "/supplies", 422, { asset: "ETH", amount: 2.5 });
		expect(bad.body.error.code).toBe("VALIDATION_ERROR");
		await call(shopper, "POST", "/supplies", 422, { asset: "ETH", amount: "0" });
		await call(shopper, "POST", "/supplies", 422, { asset: "ETH", amount: "1.1234567890123456789" });
		await call(shopper, "POST", "/supplies", 422, { asset: "DOGE", amount: "1" });
		await call(shopper, "PATCH", `/supplies/${supplyId}`, 422, { amount: "-1" });
		await call(buyer, "POST", "/orders", 422, { asset: "ETH", items: [] });
		await call(buyer, "POST", "/orders", 422, { asset: "ETH", items: [item("1")], expiresInSec: 10 ** 9 });
		await call(shopper, "GET", "/supplies/not-a-uuid", 422);
		await call(shopper, "GET", "/supplies?status=weird", 422);
		await call(shopper, "GET", "/orders?page=0", 422);
		await call(shopper, "GET", "/orders/not-a-uuid", 422);
		await call(shopper, "GET", "/claims?status=weird", 422);
		await call(shopper, "POST", "/claims/not-a-uuid/release", 422);
		await call(shopper, "POST", "/supplies/not-a-uuid/pause", 422);
		await call(buyer, "POST", "/orders/not-a-uuid/cancel", 422);
	});

	it("401 without a token on every operation", async () => {
		for (const route of Object.keys(ROUTES)) {
			const [method, path] = route.split(" ");
			const concrete = path.replace(/:[A-Za-z_]\w*/g, UNKNOWN);
			// POST /claims checks its Idempotency-Key header before the token, so send one.
			const headers = route === "POST /claims" ? { "idempotency-key": "oa-401" } : undefined;
			const r = await call(anon, method, concrete, 401, method === "GET" ? undefined : {}, headers);
			expect(r.body.error.code).toBe("UNAUTHORIZED");
		}
		await call(anon, "GET", "/supplies", 401, undefined, { authorization: "Bearer not.a.jwt" });
	});

	it("403 for a missing scope or a forbidden action", async () => {
		const r = await call(reader, "POST", "/supplies", 403, { asset: "ETH", amount: "1" });
		expect(r.body.error.details).toEqual({ scope: "supply:write" });
		await call(reader, "PATCH", `/supplies/${supplyId}`, 403, { amount: "1" });
		await call(reader, "POST", "/orders", 403, { asset: "ETH", items: [item("1")] });
		await call(reader, "POST", "/claims", 403, { orderId: UNKNOWN, supplyId }, { "idempotency-key": "oa-403" });
		const noClaimRead = await Client.as(region.apiUrl, "oa-writer", ["supply:write"]);
		await call(noClaimRead, "GET", "/claims", 403);
		await call(noClaimRead, "GET", "/orders", 403);
		// claiming one's own order
		const o = await call(buyer, "POST", "/orders", 201, { asset: "ETH", items: [item("0.1")] });
		const own = await call(buyer, "POST", "/supplies", 201, { asset: "ETH", amount: "1" });
		await call(buyer, "POST", "/claims", 403, { orderId: o.body.id, supplyId: own.body.id }, { "idempotency-key": "oa-own" });
	});

	it("400 for a missing Idempotency-Key and malformed JSON", async () => {
		const o = await call(buyer, "POST", "/orders", 201, { asset: "ETH", items: [item("0.1")] });
		const r = await call(shopper, "POST", "/claims", 400, { orderId: o.body.id, supplyId });
		expect(r.body.error.code).toBe("IDEMPOTENCY_KEY_REQUIRED");
		await call(shopper, "POST", "/supplies", 400, "{not json");
		await call(buyer, "POST", "/orders", 400, "{not json");
		await call(shopper, "PATCH", `/supplies/${supplyId}`, 400, "{not json");
		await call(shopper, "POST", "/claims", 400, "{not json", { "idempotency-key": "oa-bad-json" });
	});

	it("429 RATE_LIMITED, with Retry-After and the X-RateLimit-* headers", async () => {
		// A region of its own with a limit of 2 a window, so the third request of one user is refused.
		const small = await startTestRegion({ redisUrl: REDIS_URL, nodes: [["api", "supply", "order", "claiming"]], env: { RATE_LIMIT: "2" } });
		try {
			const limited = await Client.as(small.apiUrl, "oa-limited");
			await call(limited, "GET", "/supplies", 200);
			const last = await call(limited, "GET", "/supplies", 200);
			expect(last.headers.get("x-ratelimit-remaining")).toBe("0");
			const r = await call(limited, "GET", "/supplies", 429);
			expect(r.body.error.code).toBe("RATE_LIMITED");
			expect(r.headers.get("x-ratelimit-limit")).toBe("2");
			expect(r.headers.get("x-ratelimit-remaining")).toBe("0");
			expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
			const claim = await call(limited, "POST", "/claims", 429, { orderId: UNKNOWN, supplyId: UNKNOWN }, { "idempotency-key": "oa-429" });
			expect(claim.body.error.code).toBe("RATE_LIMITED");
		} finally {
			await small.stop();
		}
	});

	it("400 for a malformed body on a GET: a body is parsed on every route", async () => {
		const json = { "content-type": "application/json" };
		expect((await callRaw("GET", "/supplies", 400, json, Buffer.from("{not json"))).body.error.code).toBe("INVALID_BODY");
		expect((await callRaw("GET", `/orders/${UNKNOWN}`, 400, json, Buffer.from("[1,"))).body.error.code).toBe("INVALID_BODY");
	});

	it("415 for a body in an encoding or charset the server does not read", async () => {
		const r = await callRaw("POST", "/supplies", 415, { "content-type": "application/json", "content-encoding": "x-bogus" }, Buffer.from("{}"));
		expect(r.body.error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
		await callRaw("GET", "/supplies", 415, { "content-type": "application/json; charset=latin9" }, Buffer.from("{}"));
	});
	it("400 for a gzip body that does not decompress", async () => {
		const gzip = { "content-type": "application/json", "content-encoding": "gzip" };
		expect((await callRaw("POST", "/supplies", 400, gzip, Buffer.from("not gzip"))).body.error.code).toBe("INVALID_BODY");
		await callRaw("POST", "/supplies", 201, gzip, gzipSync(JSON.stringify({ asset: "ETH", amount: "1" })));
	});

	it("every observed status is documented, and every operation was exercised", () => {
		const undocumented = [...observed].filter(o => {
			const [method, template, status] = o.split(" ");
			return !doc.paths[template]?.[method.toLowerCase() as (typeof METHODS)[number]]?.responses[status];
		});
		expect(undocumented).toEqual([]);
		const exercised = new Set([...observed].map(o => o.split(" ").slice(0, 2).join(" ")));
		expect(documentedOperations(doc).filter(o => !exercised.has(o))).toEqual([]);
		const successes = new Set([...observed].filter(o => /\s2\d\d$/.test(o)).map(o => o.split(" ").slice(0, 2).join(" ")));
		expect(documentedOperations(doc).filter(o => !successes.has(o)), "operations never seen succeed").toEqual([]);
	});
});
