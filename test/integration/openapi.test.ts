// The OpenAPI document served at /api/openapi.json against the real gateway on one node (real
// PostgreSQL and Redis): it names exactly the routes of src/routes.ts, and every response of a real
// flow (successes and errors) has a documented status and a body that validates against its schema.
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/openapi";
import { ROUTES } from "../../src/routes";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { startTestRegion, type Region } from "../helpers/cluster";
import { Client, item, type Reply } from "../helpers/http";

const PREFIX = "/api/v1";
const METHODS = ["get", "post", "put", "patch", "delete"] as const;
const UNKNOWN = "00000000-0000-4000-8000-000000000000";

interface Operation {
	security?: Record<string, string[]>[];
	"x-scope"?: string;
	responses: Record<string, { description: string; content?: Record<string, { schema: object }> }>;
}
interface Document {
	openapi: string;
	servers: { url: string }[];
	components: { schemas: Record<string, object> };
	paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
}

let db: TestDatabase;
let region: Region & { db: TestDatabase };
let doc: Document;
let ajv: Ajv;
let shopper: Client, buyer: Client, other: Client, reader: Client, anon: Client;

/** "/supplies/{id}/pause" -> /^\/supplies\/[^/]+\/pause$/ */
const templateRegex = (template: string) =>
	new RegExp(`^${template.split(/\{[^}]+\}/).map(s => s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")).join("[^/]+")}$`);

/** Every (METHOD path) the document names, e.g. "POST /supplies/{id}/pause". */
const documentedOperations = (d: Document) =>
	Object.entries(d.paths).flatMap(([path, item]) =>
		METHODS.filter(m => item[m] !== undefined).map(m => `${m.toUpperCase()} ${path}`),
	);

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

/** (method, status, template) seen in real replies, to check the document against afterwards. */
const observed = new Set<string>();

/**
 * Finds the documented operation for a real request, checks that the reply's status is documented
 * for it and that the body validates against the schema documented for that status.
 */
function expectDocumented(method: string, concretePath: string, reply: Reply) {
	const path = concretePath.split("?")[0];
	expect(path.startsWith(PREFIX), `${path} is not under ${PREFIX}`).toBe(true);
	const rel = path.slice(PREFIX.length);
	const m = method.toLowerCase() as (typeof METHODS)[number];
	const matches = Object.entries(doc.paths).filter(([template, item]) => item[m] && templateRegex(template).test(rel));
	// A literal path wins over a template ("/claims" vs "/claims/{id}" never collide, but be exact anyway).
	matches.sort(([a], [b]) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
	if (matches.length === 0) expect.fail(`${method} ${rel}: no documented operation matches`);
	const [template, pathItem] = matches[0];
	const operation = pathItem[m]!;
	const where = `${method} ${template} (${method} ${concretePath})`;
	observed.add(`${method.toUpperCase()} ${template} ${reply.status}`);

	const response = operation.responses[String(reply.status)];
	if (!response)
		expect.fail(
			`${where}: status ${reply.status} is not documented (documented: ${Object.keys(operation.responses).join(", ")}); body: ${JSON.stringify(reply.body)}`,
		);
	const schema = response.content?.["application/json"]?.schema;
	if (!schema) expect.fail(`${where}: response ${reply.status} documents no application/json schema`);
	const validate = validatorFor(`${m} ${template} ${reply.status}`, schema);
	if (!validate(reply.body)) {
		const errors = (validate.errors ?? []).map(e => `  ${e.instancePath || "(root)"} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`);
		expect.fail(`${where}: the ${reply.status} body does not match its documented schema:\n${errors.join("\n")}\nbody: ${JSON.stringify(reply.body)}`);
	}
}

/** Calls the API and checks the reply against the document; `status` is what the flow expects. */
async function call(client: Client, method: string, path: string, status: number, body?: unknown, headers?: Record<string, string>) {
	const reply = await client.request(method, PREFIX + path, body === undefined && method !== "GET" ? {} : body, headers);
	expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).toBe(status);
	expectDocumented(method, PREFIX + path, reply);
	return reply;
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
	it("is served without a token at /api/openapi.json", async () => {
		const r = await anon.get("/api/openapi.json");
		expect(r.status).toBe(200);
		expect(r.headers.get("content-type")).toMatch(/application\/json/);
		doc = r.body as Document;
		expect(doc.openapi).toBe("3.0.3");
		expect(doc.servers[0].url).toBe(PREFIX);
		expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument(region.cfg))));

		ajv = new Ajv({ strict: false, allErrors: true });
		addFormats(ajv);
		ajv.addSchema({ $id: "openapi", components: doc.components });
		for (const name of Object.keys(doc.components.schemas))
			expect(() => ajv.getSchema(`openapi#/components/schemas/${name}`), name).not.toThrow();
	});

	it("names exactly the gateway's routes", () => {
		const routes = Object.keys(ROUTES).map(r => r.replace(/:([A-Za-z_]\w*)/g, "{$1}"));
		const documented = documentedOperations(doc);
		expect(new Set(documented).size).toBe(documented.length);
		expect(documented.filter(o => !routes.includes(o)), "documented but not routed").toEqual([]);
		expect(routes.filter(o => !documented.includes(o)), "routed but not documented").toEqual([]);
	});

	it("documents 401 and 403 for every scoped operation, and a JSON schema for every response", () => {
		for (const [path, pathItem] of Object.entries(doc.paths))
			for (const m of METHODS) {
				const op = pathItem[m];
				if (!op) continue;
				const name = `${m.toUpperCase()} ${path}`;
				const scope = op["x-scope"];
				if (scope) {
					expect(op.security, name).toEqual([{ bearer: [scope] }]);
					expect(Object.keys(op.responses), name).toEqual(expect.arrayContaining(["401", "403"]));
				}
				if (op.security?.length) expect(Object.keys(op.responses), name).toContain("401");
				for (const [status, res] of Object.entries(op.responses)) {
					const schema = res.content?.["application/json"]?.schema;
					expect(schema, `${name} ${status}`).toBeDefined();
					expect(() => validatorFor(`${m} ${path} ${status}`, schema!), `${name} ${status}`).not.toThrow();
					if (Number(status) >= 400) expect(schema, `${name} ${status}`).toEqual({ $ref: "#/components/schemas/Error" });
				}
			}
	});
});

describe("real replies match the document", () => {
	let supplyId: string;
	let supply2Id: string;

	it("supplies: create, get, list, pause, resume, patch", async () => {
		const s = await call(shopper, "POST", "/supplies", 201, { asset: "ETH", amount: "5" });
		supplyId = s.body.id;
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
		await call(buyer, "GET", `/orders/${o.body.id}`, 200);
		// an open order seen by somebody else: no userId
		expect((await call(other, "GET", `/orders/${o.body.id}`, 200)).body.userId).toBeUndefined();
		await call(buyer, "GET", "/orders", 200);
		await call(buyer, "GET", "/orders?mine=true&status=open&asset=ETH", 200);

		const key = { "idempotency-key": "oa-claim-1" };
		const c = await call(shopper, "POST", "/claims", 201, { orderId: o.body.id, supplyId }, key);
		const replay = await call(shopper, "POST", "/claims", 201, { orderId: o.body.id, supplyId }, key);
		expect(replay.headers.get("idempotent-replayed")).toBe("true");
		expect(replay.body.id).toBe(c.body.id);
		await call(shopper, "GET", `/claims/${c.body.id}`, 200);
		await call(shopper, "GET", "/claims", 200);
		await call(shopper, "GET", "/claims?status=active&page=1&pageSize=5", 200);
		// claimed: visible to buyer and claimer, the claimer without the buyer's id
		expect((await call(shopper, "GET", `/orders/${o.body.id}`, 200)).body.claimId).toBe(c.body.id);

		// 409 claiming a claimed order
		const conflict = await call(other, "POST", "/claims", 409, { orderId: o.body.id, supplyId: supply2Id }, { "idempotency-key": "oa-claim-2" });
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

	it("GET /regions", async () => {
		const r = await call(shopper, "GET", "/regions", 200);
		expect(r.body.servedBy).toBe(region.cfg.region);
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
