// The OpenAPI 3.0 document of /api/v1, served at /api/openapi.json and linted by `npm run lint:openapi`
// (Spectral, .spectral.yaml). test/integration/openapi.test.ts checks that it names exactly the
// gateway's routes and that real responses (statuses, bodies and headers) match it.
import type { Config } from "../config";
import type { Scope } from "./domain/permissions";

const PREFIX = "/api/v1";

const schemaRef = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const headerRef = (name: string) => ({ $ref: `#/components/headers/${name}` });
const paramRef = (name: string) => ({ $ref: `#/components/parameters/${name}` });
const responseRef = (name: string) => ({ $ref: `#/components/responses/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const decimal = { type: "string", pattern: "^\\d{1,20}(\\.\\d{1,18})?$", example: "2.5" };
const dateTime = { type: "string", format: "date-time" };
const enumQuery = (name: string, description: string, values: string[]) => ({
	name,
	in: "query",
	description,
	schema: { type: "string", enum: values },
});

/** Every answer of an /api/v1 route carries these, errors included. */
const COMMON_HEADERS = ["X-Request-ID", "X-Region", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"];
const headers = (...extra: string[]) => Object.fromEntries([...COMMON_HEADERS, ...extra].map(h => [h, headerRef(h)]));

// Error answers that read the same on every operation; 400 is written per operation (its causes differ).
const ERROR_RESPONSES: Record<number, [name: string, description: string, schema?: string, extraHeaders?: string[]]> = {
	401: ["Unauthorized", "No Authorization header, or a token that is malformed, expired or not signed by a trusted key (code UNAUTHORIZED or INVALID_TOKEN)."],
	403: ["Forbidden", "The token lacks the operation's scope (code MISSING_SCOPE, details.scope names it), or this user may not do this to this entity."],
	404: ["NotFound", "Not found, or not visible to this user (code NOT_FOUND); the answer is the same in both cases, so it reveals nothing."],
	409: ["Conflict", "Not allowed in the entity's current state (e.g. ORDER_NOT_OPEN); details hold the current state."],
	415: [
		"UnsupportedMediaType",
		"A JSON body in a Content-Encoding (other than gzip, deflate and identity) or a charset (other than UTF-8/16/32) the server does not read (code UNSUPPORTED_MEDIA_TYPE). A body is read on every route, GETs included, so any operation may answer it.",
	],
	422: ["Unprocessable", "Validation failed: a field, a decimal amount, an unknown asset or a malformed id (code VALIDATION_ERROR or a more specific one); details.fields says which field failed and why."],
	429: [
		"TooManyRequests",
		"Too many requests; wait Retry-After seconds before retrying. Two causes, told apart by error.code: " +
			"RATE_LIMITED is this caller's rate limit (per user, or per client address without a token; X-RateLimit-* say when the window resets); " +
			"QUEUE_FULL is load shedding: the service's queue for this action is full, whoever the caller is, and a retry after a short pause is expected to succeed. " +
			"Neither did anything, so retrying is safe.",
		"TooManyRequestsError",
		["Retry-After"],
	],
	500: ["InternalError", "An unexpected error (code INTERNAL_ERROR); the body holds nothing internal. Report it with the requestId."],
	503: [
		"Unavailable",
		"A dependency is unavailable (code SERVICE_UNAVAILABLE), the request timed out (code TIMEOUT; the outcome of a write is then unknown: retry it, with the same Idempotency-Key for a claim), or a claim is written but not yet durable outside its region (code NOT_DURABLE, with CLAIM_DURABILITY=replicated: retry with the same Idempotency-Key). Retry after Retry-After seconds.",
		"Error",
		["Retry-After"],
	],
};

const errorResponse = (status: number) => responseRef(ERROR_RESPONSES[status][0]);

type Method = "get" | "post" | "patch";

interface Operation {
	/** The Moleculer action the route calls (src/routes.ts); the operationId is its camelCase form. */
	action: string;
	tag: string;
	summary: string;
	description: string;
	/** The scope the token must hold (or `admin`); null for operations any valid token may call. */
	scope: Scope | null;
	ok: [status: number, schema: object, extraHeaders?: string[]];
	/** Error statuses besides 400, 401, 403 (scoped), 415, 429, 500 and 503. */
	errors: number[];
	parameters?: object[];
	body?: object;
	/** Causes of 400 besides malformed bodies and encodings. */
	badRequest?: string;
}

function operation(method: Method, op: Operation) {
	const [status, schema, extraHeaders = []] = op.ok;
	const statuses = [401, ...(op.scope ? [403] : []), ...op.errors, 415, 429, 500, 503];
	const scopeText = op.scope
		? `Requires the \`${op.scope}\` scope (or \`admin\`): a token without it gets 403 MISSING_SCOPE.`
		: "Any valid token may call it.";
	// GETs read no body, but one that is sent is parsed all the same, and so can be malformed.
	const bodyText = `${method === "get" ? "a body (none is read) that" : "a body that"} is not valid JSON, is too large, has a __proto__ key, or is not valid data for its Content-Encoding (code INVALID_BODY)`;
	const queryText = method === "get" ? "" : " A query string on a write, which takes its parameters from the body only (code QUERY_NOT_ALLOWED).";
	return {
		operationId: op.action.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()),
		tags: [op.tag],
		summary: op.summary,
		description: `${op.description}\n\n${scopeText}`,
		security: [{ bearerAuth: [] }],
		"x-required-scopes": op.scope ? [op.scope] : [],
		parameters: [...(op.parameters ?? []), paramRef("RequestId")],
		...(op.body
			? { requestBody: { required: true, content: json(op.body) } }
			: method === "get"
				? {}
				: // Some clients always send a body with a POST: an empty JSON object is accepted (and ignored).
					{ requestBody: { required: false, description: "Nothing is read from the body: send none, or {}", content: json({ type: "object", maxProperties: 0 }) } }),
		responses: {
			[String(status)]: {
				description: status === 201 ? "Created; Location is its URL" : "OK",
				headers: headers(...(status === 201 ? ["Location"] : []), ...extraHeaders),
				content: json(schema),
			},
			"400": {
				description: `Malformed request: ${bodyText}.${queryText}${op.badRequest ? ` ${op.badRequest}` : ""}`,
				headers: headers(),
				content: json(schemaRef("Error")),
			},
			...Object.fromEntries(statuses.sort((a, b) => a - b).map(s => [String(s), errorResponse(s)])),
		},
	};
}

const listOf = (name: string) => ({
	type: "object",
	required: ["rows", "total", "page", "pageSize", "totalPages"],
	properties: {
		rows: { type: "array", items: schemaRef(name) },
		total: { type: "integer" },
		page: { type: "integer" },
		pageSize: { type: "integer", maximum: 100 },
		totalPages: { type: "integer" },
		totalCapped: {
			type: "boolean",
			description: "Present (true) when the list holds more than 10,000 rows: `total` then says 10,000, and pages past it are refused (422 PAGE_TOO_DEEP)",
		},
	},
});

export function openApiDocument(cfg: Config) {
	const assets = Object.keys(cfg.assets);
	const assetQuery = { name: "asset", in: "query", description: "Only this asset", schema: { type: "string" } };
	const paging = [paramRef("Page"), paramRef("PageSize")];
	const id = paramRef("Id");
	const supplyCommand = (cmd: "pause" | "resume" | "close", summary: string, description: string) =>
		operation("post", {
			action: `supply.${cmd}`,
			tag: "Supplies",
			summary,
			description,
			scope: "supply:write",
			ok: [200, schemaRef("Supply")],
			errors: [404, 409, 422],
			parameters: [id],
		});

	return {
		openapi: "3.0.3",
		info: {
			title: "Wallet backend API",
			version: "1.0.0",
			description:
				"Supplies, orders and claims of a peer-to-peer wallet marketplace. Amounts are exact decimal strings.\n\n" +
				"Every answer carries X-Request-ID (the client's, when it sent a sane one) and X-Region (the region that served it), " +
				"and the X-RateLimit-* headers of the caller's rate limit. Errors have the body `{error: {code, message, details?, requestId}}`; " +
				"`code` is stable and machine-readable.\n\n" +
				"Health endpoints (/health/live and /health/ready for load balancers; /health/regions, the public twin of GET /regions) and the operators' status page (/status) are not part of this API.",
			license: { name: "UNLICENSED" },
		},
		servers: [
			{
				url: "{scheme}://{host}",
				description: "A gateway of any region; paths carry the /api/v1 prefix.",
				variables: {
					scheme: { enum: ["http", "https"], default: "http" },
					host: { default: `localhost:${cfg.port || 3000}`, description: "host[:port] of a gateway" },
				},
			},
		],
		tags: [
			{ name: "Supplies", description: "Funds a shopper puts up to fill orders with" },
			{ name: "Orders", description: "What buyers want to be filled; the amount is the sum of the items" },
			{ name: "Claims", description: "A shopper's reservation of one of their supplies for an open order" },
			{ name: "Regions", description: "Where the API is served from" },
		],
		components: {
			securitySchemes: {
				bearerAuth: {
					type: "http",
					scheme: "bearer",
					bearerFormat: "JWT",
					description:
						"A JWT whose `sub` is the user and whose `scope` claim is a space-separated list of: " +
						"supply:read supply:write order:read order:write claim:read claim:write admin (admin implies every other). " +
						"OpenAPI 3.0 allows scopes only on oauth2/openIdConnect schemes, so each operation names the scope it needs " +
						"in `x-required-scopes` and in its description.",
				},
			},
			parameters: {
				Id: { name: "id", in: "path", required: true, description: "The entity's id", schema: { type: "string", format: "uuid" } },
				Page: { name: "page", in: "query", description: "1-based page number", schema: { type: "integer", minimum: 1, default: 1 } },
				PageSize: {
					name: "pageSize",
					in: "query",
					description: "Rows per page, capped at 100",
					schema: { type: "integer", minimum: 1, default: 20 },
				},
				RequestId: {
					name: "X-Request-ID",
					in: "header",
					required: false,
					description:
						"The client's id for this request, echoed in the X-Request-ID response header and in the error body's requestId. " +
						"A value that does not match ^[\\w.:@-]{1,128}$ is replaced by a server-made one.",
					schema: { type: "string" },
				},
			},
			headers: {
				"X-Request-ID": {
					description: "The request's id: the client's X-Request-ID when it was sane, else one the server made",
					required: true,
					schema: { type: "string", pattern: "^[\\w.:@-]{1,128}$" },
				},
				"X-Region": {
					description: "The region that served the request",
					required: true,
					schema: { type: "string", enum: cfg.regions },
				},
				"X-RateLimit-Limit": {
					description: "Requests allowed per window for this caller (per user; per client address without a token)",
					required: true,
					schema: { type: "integer", minimum: 1 },
				},
				"X-RateLimit-Remaining": {
					description: "Requests left in the current window",
					required: true,
					schema: { type: "integer", minimum: 0 },
				},
				"X-RateLimit-Reset": {
					description: "When the current window ends, in Unix time (seconds)",
					required: true,
					schema: { type: "integer", minimum: 0 },
				},
				"Retry-After": {
					description: "Seconds to wait before retrying",
					required: true,
					schema: { type: "integer", minimum: 1 },
				},
				Location: {
					description: "The path of the created entity (e.g. /api/v1/claims/{id})",
					required: true,
					schema: { type: "string", format: "uri-reference" },
				},
				"Idempotent-Replayed": {
					description: "Present (true) when this answer replays the claim first made with the same Idempotency-Key",
					required: false,
					schema: { type: "string", enum: ["true"] },
				},
				Warning: {
					description:
						'Present (110 - "Response is Stale") when the database could not be read and a cached copy, possibly out of date, answers instead',
					required: false,
					schema: { type: "string", example: '110 - "Response is Stale"' },
				},
			},
			responses: Object.fromEntries(
				Object.values(ERROR_RESPONSES).map(([name, description, schema = "Error", extraHeaders = []]) => [
					name,
					{ description, headers: headers(...extraHeaders), content: json(schemaRef(schema)) },
				]),
			),
			schemas: {
				Error: {
					type: "object",
					required: ["error"],
					properties: {
						error: {
							type: "object",
							required: ["code", "message", "requestId"],
							properties: {
								code: { type: "string", description: "Stable, machine-readable", example: "ORDER_NOT_OPEN" },
								message: { type: "string", description: "For people; may change" },
								details: { type: "object", description: "Code-specific facts, e.g. the entity's current state" },
								requestId: { type: "string", description: "The X-Request-ID of this request" },
							},
						},
					},
				},
				TooManyRequestsError: {
					description: "An Error whose code tells the rate limit (RATE_LIMITED) from load shedding (QUEUE_FULL)",
					allOf: [
						schemaRef("Error"),
						{
							type: "object",
							properties: {
								error: { type: "object", properties: { code: { type: "string", enum: ["RATE_LIMITED", "QUEUE_FULL"] } } },
							},
						},
					],
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
						items: { type: "array", items: schemaRef("OrderItem") },
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
					required: ["servedBy", "replication", "regions"],
					properties: {
						servedBy: { type: "string", description: "The region that answered" },
						replication: { type: "string", enum: ["kafka", "memory", "off"], description: "How events cross regions" },
						failover: { type: "boolean", description: "Whether ownership moves to another region when a region is lost (FAILOVER)" },
						durability: { type: "string", enum: ["local", "replicated"], description: "When a claim is acknowledged (CLAIM_DURABILITY)" },
						regions: {
							type: "array",
							items: {
								type: "object",
								required: ["name", "health", "owner", "epoch", "replicationLagMs", "backlog"],
								properties: {
									name: { type: "string" },
									health: { type: "string", enum: ["up", "suspect", "down", "unknown"], description: "As the serving region's watcher sees it" },
									owner: { type: "string", nullable: true, description: "The region that writes this region's entities now" },
									epoch: { type: "integer", nullable: true, description: "The ownership epoch (fencing token) of this region's entities" },
									leaseRemainingMs: {
										type: "number",
										nullable: true,
										description: "What is left of the serving region's lease on this region's entities, when it owns them (negative: expired, its writes are refused)",
									},
									replicationLagMs: {
										type: "number",
										nullable: true,
										description: "From commit in that region to apply here, for the newest events applied (0 for the serving region)",
									},
									backlog: {
										type: "integer",
										nullable: true,
										description: "That region's events not yet applied here; for the serving region, its events not yet published",
									},
									lastEventAt: { ...dateTime, nullable: true, description: "Commit time of the newest event applied from that region" },
									eventsApplied: { type: "integer", nullable: true },
								},
							},
						},
					},
				},
			},
		},
		paths: {
			[`${PREFIX}/supplies`]: {
				post: operation("post", {
					action: "supply.create",
					tag: "Supplies",
					summary: "Put funds up as supply",
					description: "Creates an active supply of one asset owned by the caller.",
					scope: "supply:write",
					ok: [201, schemaRef("Supply")],
					errors: [422],
					body: {
						type: "object",
						required: ["asset", "amount"],
						properties: { asset: { type: "string", enum: assets }, amount: decimal },
					},
				}),
				get: operation("get", {
					action: "supply.list",
					tag: "Supplies",
					summary: "List own supplies",
					description: "The caller's supplies, newest first, one page at a time.",
					scope: "supply:read",
					ok: [200, listOf("Supply")],
					errors: [422],
					parameters: [assetQuery, enumQuery("status", "Only supplies in this state", ["active", "paused", "closed"]), ...paging],
				}),
			},
			[`${PREFIX}/supplies/{id}`]: {
				get: operation("get", {
					action: "supply.get",
					tag: "Supplies",
					summary: "Get an own supply",
					description: "One of the caller's supplies. While the database is unreachable a cached copy may answer, with a Warning header.",
					scope: "supply:read",
					ok: [200, schemaRef("Supply"), ["Warning"]],
					errors: [404, 422],
					parameters: [id],
				}),
				patch: operation("patch", {
					action: "supply.update",
					tag: "Supplies",
					summary: "Raise or lower a supply's amount",
					description: "Sets the amount; it may not go below reserved + spent (409).",
					scope: "supply:write",
					ok: [200, schemaRef("Supply")],
					errors: [404, 409, 422],
					parameters: [id],
					body: { type: "object", required: ["amount"], properties: { amount: decimal } },
				}),
			},
			[`${PREFIX}/supplies/{id}/pause`]: {
				post: supplyCommand("pause", "Pause a supply", "An active supply stops filling new claims; existing claims are kept."),
			},
			[`${PREFIX}/supplies/{id}/resume`]: {
				post: supplyCommand("resume", "Resume a supply", "A paused supply is active again."),
			},
			[`${PREFIX}/supplies/{id}/close`]: {
				post: supplyCommand("close", "Close a supply", "Closes a supply for good; it must have nothing reserved (409 otherwise)."),
			},
			[`${PREFIX}/orders`]: {
				post: operation("post", {
					action: "order.create",
					tag: "Orders",
					summary: "Place an order",
					description: "Creates an open order; its amount is the sum of unitPrice × quantity, computed by the server.",
					scope: "order:write",
					ok: [201, schemaRef("Order")],
					errors: [422],
					body: {
						type: "object",
						required: ["asset", "items"],
						properties: {
							asset: { type: "string", enum: assets },
							items: { type: "array", minItems: 1, maxItems: 100, items: schemaRef("OrderItem") },
							expiresInSec: { type: "integer", minimum: 1, maximum: cfg.orderMaxTtlSec },
						},
					},
				}),
				get: operation("get", {
					action: "order.list",
					tag: "Orders",
					summary: "List visible orders",
					description: "Open orders of every buyer, and the caller's own orders as buyer or claimer, one page at a time.",
					scope: "order:read",
					ok: [200, listOf("Order")],
					errors: [422],
					parameters: [
						assetQuery,
						enumQuery("status", "Only orders in this state", ["open", "claimed", "completed", "cancelled", "expired"]),
						{ name: "mine", in: "query", schema: { type: "boolean" }, description: "Only orders where I am the buyer" },
						...paging,
					],
				}),
			},
			[`${PREFIX}/orders/{id}`]: {
				get: operation("get", {
					action: "order.get",
					tag: "Orders",
					summary: "Get an order",
					description:
						"An open order, or one where the caller is the buyer or the claimer; userId is shown to the buyer only. " +
						"While the database is unreachable a cached copy may answer, with a Warning header.",
					scope: "order:read",
					ok: [200, schemaRef("Order"), ["Warning"]],
					errors: [404, 422],
					parameters: [id],
				}),
			},
			[`${PREFIX}/orders/{id}/cancel`]: {
				post: operation("post", {
					action: "order.cancel",
					tag: "Orders",
					summary: "Cancel an open order",
					description: "The buyer cancels an order that is still open (409 once claimed).",
					scope: "order:write",
					ok: [200, schemaRef("Order")],
					errors: [404, 409, 422],
					parameters: [id],
				}),
			},
			[`${PREFIX}/orders/{id}/complete`]: {
				post: operation("post", {
					action: "order.complete",
					tag: "Orders",
					summary: "Complete a claimed order",
					description: "The buyer completes a claimed order: the claim settles and its reserved funds are spent.",
					scope: "order:write",
					ok: [200, schemaRef("Order")],
					errors: [404, 409, 422],
					parameters: [id],
				}),
			},
			[`${PREFIX}/claims`]: {
				post: operation("post", {
					action: "claiming.claim",
					tag: "Claims",
					summary: "Claim an open order",
					description:
						"Reserves the order's amount from one of the caller's active supplies; nobody else can claim the order until the claim is released. " +
						"A retry with the same Idempotency-Key returns the first claim (201 with Idempotent-Replayed: true), never a second one.",
					scope: "claim:write",
					ok: [201, schemaRef("Claim"), ["Idempotent-Replayed"]],
					errors: [404, 409, 422],
					badRequest: "No Idempotency-Key header (code IDEMPOTENCY_KEY_REQUIRED).",
					parameters: [
						{
							name: "Idempotency-Key",
							in: "header",
							required: true,
							schema: { type: "string", minLength: 1, maxLength: 128, pattern: "^[\\x21-\\x7e]+$" },
							description: "The client's key for this claim; a retry with the same key returns the first claim",
						},
					],
					body: {
						type: "object",
						required: ["orderId", "supplyId"],
						properties: { orderId: { type: "string", format: "uuid" }, supplyId: { type: "string", format: "uuid" } },
					},
				}),
				get: operation("get", {
					action: "claiming.list",
					tag: "Claims",
					summary: "List own claims",
					description: "The caller's claims, newest first, one page at a time.",
					scope: "claim:read",
					ok: [200, listOf("Claim")],
					errors: [422],
					parameters: [enumQuery("status", "Only claims in this state", ["active", "settled", "released"]), ...paging],
				}),
			},
			[`${PREFIX}/claims/{id}`]: {
				get: operation("get", {
					action: "claiming.get",
					tag: "Claims",
					summary: "Get an own claim",
					description: "One of the caller's claims. While the database is unreachable a cached copy may answer, with a Warning header.",
					scope: "claim:read",
					ok: [200, schemaRef("Claim"), ["Warning"]],
					errors: [404, 422],
					parameters: [id],
				}),
			},
			[`${PREFIX}/claims/{id}/release`]: {
				post: operation("post", {
					action: "claiming.release",
					tag: "Claims",
					summary: "Release an active claim",
					description: "The claimer gives the claim up: the reservation is returned to the supply and the order is open again.",
					scope: "claim:write",
					ok: [200, schemaRef("Claim")],
					errors: [404, 409, 422],
					parameters: [id],
				}),
			},
			[`${PREFIX}/regions`]: {
				get: operation("get", {
					action: "api.regions",
					tag: "Regions",
					summary: "List regions",
					description: "Every region's health, ownership epoch and replication lag, and the region serving this request.",
					scope: null,
					ok: [200, schemaRef("Regions")],
					errors: [],
				}),
			},
		},
	};
}
