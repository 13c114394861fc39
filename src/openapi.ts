// The OpenAPI 3 document of /api/v1, served at /api/openapi.json. test/integration/openapi.test.ts
// checks that it names exactly the gateway's routes and that real responses match its schemas.
import type { Config } from "../config";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const decimal = { type: "string", pattern: "^\\d{1,20}(\\.\\d{1,18})?$", example: "2.5" };
const dateTime = { type: "string", format: "date-time" };
const uuidParam = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } };
const pageParams = [
	{ name: "page", in: "query", schema: { type: "integer", minimum: 1, default: 1 } },
	{ name: "pageSize", in: "query", schema: { type: "integer", minimum: 1, default: 20 }, description: "Capped at 100" },
];
const enumQuery = (name: string, values: string[]) => ({ name, in: "query", schema: { type: "string", enum: values } });

const errorResponses = (...statuses: number[]) =>
	Object.fromEntries(
		statuses.map(s => [String(s), { description: ERROR_TEXT[s], content: json(ref("Error")) }]),
	);
const ERROR_TEXT: Record<number, string> = {
	400: "Malformed request (bad JSON, missing Idempotency-Key)",
	401: "Missing, expired or invalid token",
	403: "The token lacks the scope, or the user may not do this",
	404: "Not found (or not visible to this user)",
	409: "Not allowed in the entity's current state; details hold the current state",
	422: "Validation failed (fields, decimals, unknown asset)",
	429: "Rate limited (Retry-After and X-RateLimit-* headers)",
	503: "A dependency is unavailable or the request timed out (outcome unknown)",
};
const common = [401, 403, 429, 503];

function op(summary: string, scope: string | null, ok: [number, object], errors: number[], extra: object = {}) {
	return {
		summary,
		...(scope ? { security: [{ bearer: [scope] }], "x-scope": scope } : { security: [{ bearer: [] }] }),
		...extra,
		responses: {
			[String(ok[0])]: { description: "OK", content: json(ok[1]) },
			...errorResponses(...common, ...errors),
		},
	};
}
const body = (schema: object) => ({ requestBody: { required: true, content: json(schema) } });
const listOf = (name: string) => ({
	type: "object",
	required: ["rows", "total", "page", "pageSize", "totalPages"],
	properties: {
		rows: { type: "array", items: ref(name) },
		total: { type: "integer" },
		page: { type: "integer" },
		pageSize: { type: "integer", maximum: 100 },
		totalPages: { type: "integer" },
	},
});

export function openApiDocument(cfg: Config) {
	const assets = Object.keys(cfg.assets);
	return {
		openapi: "3.0.3",
		info: {
			title: "Wallet backend API",
			version: "1.0.0",
			description:
				"Supplies, orders and claims. Amounts are exact decimal strings. Every response carries X-Request-ID and X-Region.",
		},
		servers: [{ url: "/api/v1" }],
		components: {
			securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
			schemas: {
				Error: {
					type: "object",
					required: ["error"],
					properties: {
						error: {
							type: "object",
							required: ["code", "message", "requestId"],
							properties: {
								code: { type: "string", example: "ORDER_NOT_OPEN" },
								message: { type: "string" },
								details: { type: "object" },
								requestId: { type: "string" },
							},
						},
					},
				},
				Supply: {
					type: "object",
					required: ["id", "userId", "asset", "amount", "reserved", "spent", "available", "status", "homeRegion", "version", "createdAt", "updatedAt"],
					properties: {
						id: { type: "string", format: "uuid" },
						userId: { type: "string" },
						asset: { type: "string", enum: assets },
						amount: decimal,
						reserved: decimal,
						spent: decimal,
						available: decimal,
						status: { type: "string", enum: ["active", "paused", "closed"] },
						homeRegion: { type: "string" },
						version: { type: "integer" },
						createdAt: dateTime,
						updatedAt: dateTime,
					},
				},
				OrderItem: {
					type: "object",
					required: ["sku", "name", "unitPrice", "quantity"],
					properties: {
						sku: { type: "string", minLength: 1, maxLength: 64 },
						name: { type: "string", minLength: 1, maxLength: 200 },
						unitPrice: decimal,
						quantity: { type: "integer", minimum: 1, maximum: 1000000 },
					},
				},
				Order: {
					type: "object",
					required: ["id", "asset", "items", "amount", "status", "claimId", "homeRegion", "version", "expiresAt", "createdAt", "updatedAt"],
					properties: {
						id: { type: "string", format: "uuid" },
						userId: { type: "string", description: "Present only for the buyer (and admins)" },
						asset: { type: "string", enum: assets },
						items: { type: "array", items: ref("OrderItem") },
						amount: decimal,
						status: { type: "string", enum: ["open", "claimed", "completed", "cancelled", "expired"] },
						claimId: { type: "string", format: "uuid", nullable: true },
						homeRegion: { type: "string" },
						version: { type: "integer" },
						expiresAt: dateTime,
						createdAt: dateTime,
						updatedAt: dateTime,
					},
				},
				Claim: {
					type: "object",
					required: ["id", "orderId", "claimerId", "supplyId", "amount", "status", "idempotencyKey", "region", "epoch", "expiresAt", "createdAt", "settledAt", "releasedAt"],
					properties: {
						id: { type: "string", format: "uuid" },
						orderId: { type: "string", format: "uuid" },
						claimerId: { type: "string" },
						supplyId: { type: "string", format: "uuid" },
						amount: decimal,
						status: { type: "string", enum: ["active", "settled", "released"] },
						idempotencyKey: { type: "string" },
						region: { type: "string" },
						epoch: { type: "integer" },
						expiresAt: dateTime,
						createdAt: dateTime,
						settledAt: { ...dateTime, nullable: true },
						releasedAt: { ...dateTime, nullable: true },
					},
				},
				Regions: {
					type: "object",
					required: ["servedBy", "regions"],
					properties: {
						servedBy: { type: "string" },
						regions: {
							type: "array",
							items: {
								type: "object",
								required: ["name", "health", "epoch"],
								properties: {
									name: { type: "string" },
									health: { type: "string", enum: ["up", "down", "unknown"] },
									epoch: { type: "integer" },
									replicationLagMs: { type: "number", nullable: true },
									owner: { type: "string", nullable: true },
								},
							},
						},
					},
				},
			},
		},
		paths: {
			"/supplies": {
				post: op("Put funds up as supply", "supply:write", [201, ref("Supply")], [400, 422], body({
					type: "object",
					required: ["asset", "amount"],
					properties: { asset: { type: "string", enum: assets }, amount: decimal },
				})),
				get: op("List own supplies", "supply:read", [200, listOf("Supply")], [422], {
					parameters: [{ name: "asset", in: "query", schema: { type: "string" } }, enumQuery("status", ["active", "paused", "closed"]), ...pageParams],
				}),
			},
			"/supplies/{id}": {
				get: op("Get an own supply", "supply:read", [200, ref("Supply")], [404, 422], { parameters: [uuidParam] }),
				patch: op("Raise or lower the amount (not below reserved + spent)", "supply:write", [200, ref("Supply")], [400, 404, 409, 422], {
					parameters: [uuidParam],
					...body({ type: "object", required: ["amount"], properties: { amount: decimal } }),
				}),
			},
			...Object.fromEntries(
				(["pause", "resume", "close"] as const).map(cmd => [
					`/supplies/{id}/${cmd}`,
					{ post: op(`${cmd[0].toUpperCase()}${cmd.slice(1)} a supply`, "supply:write", [200, ref("Supply")], [404, 409, 422], { parameters: [uuidParam] }) },
				]),
			),
			"/orders": {
				post: op("Place an order; its amount is computed by the server", "order:write", [201, ref("Order")], [400, 422], body({
					type: "object",
					required: ["asset", "items"],
					properties: {
						asset: { type: "string", enum: assets },
						items: { type: "array", minItems: 1, maxItems: 100, items: ref("OrderItem") },
						expiresInSec: { type: "integer", minimum: 1, maximum: cfg.orderMaxTtlSec },
					},
				})),
				get: op("List visible orders (open ones, and own as buyer or claimer)", "order:read", [200, listOf("Order")], [422], {
					parameters: [
						{ name: "asset", in: "query", schema: { type: "string" } },
						enumQuery("status", ["open", "claimed", "completed", "cancelled", "expired"]),
						{ name: "mine", in: "query", schema: { type: "boolean" }, description: "Only orders where I am the buyer" },
						...pageParams,
					],
				}),
			},
			"/orders/{id}": {
				get: op("Get an order (open, or own as buyer or claimer)", "order:read", [200, ref("Order")], [404, 422], { parameters: [uuidParam] }),
			},
			"/orders/{id}/cancel": {
				post: op("Cancel an open order (buyer)", "order:write", [200, ref("Order")], [403, 404, 409, 422], { parameters: [uuidParam] }),
			},
			"/orders/{id}/complete": {
				post: op("Complete a claimed order; the reserved funds are spent (buyer)", "order:write", [200, ref("Order")], [403, 404, 409, 422], {
					parameters: [uuidParam],
				}),
			},
			"/claims": {
				post: op("Claim an open order with one of your supplies", "claim:write", [201, ref("Claim")], [400, 404, 409, 422], {
					parameters: [
						{
							name: "Idempotency-Key",
							in: "header",
							required: true,
							schema: { type: "string", minLength: 1, maxLength: 128 },
							description: "A retry with the same key returns the first claim (header Idempotent-Replayed: true)",
						},
					],
					...body({
						type: "object",
						required: ["orderId", "supplyId"],
						properties: { orderId: { type: "string", format: "uuid" }, supplyId: { type: "string", format: "uuid" } },
					}),
				}),
				get: op("List own claims", "claim:read", [200, listOf("Claim")], [422], {
					parameters: [enumQuery("status", ["active", "settled", "released"]), ...pageParams],
				}),
			},
			"/claims/{id}": {
				get: op("Get an own claim", "claim:read", [200, ref("Claim")], [404, 422], { parameters: [uuidParam] }),
			},
			"/claims/{id}/release": {
				post: op("Release an active claim (claimer); the order is open again", "claim:write", [200, ref("Claim")], [404, 409, 422], {
					parameters: [uuidParam],
				}),
			},
			"/regions": {
				get: op("Every region's health, ownership epoch and replication lag", null, [200, ref("Regions")], []),
			},
		},
	};
}
