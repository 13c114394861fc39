// Every error leaves the gateway as {error: {code, message, details?, requestId}} with a status from
// the contract. Nothing internal (stack, SQL, other users' ids) is ever copied into the body.
export interface ErrorResponse {
	status: number;
	headers: Record<string, string>;
	body: { error: { code: string; message: string; details?: unknown; requestId: string } };
}

const UNAVAILABLE = new Set([
	"SERVICE_NOT_FOUND",
	"SERVICE_NOT_AVAILABLE",
	// moleculer-web's own answer when the action has no live endpoint (a node still starting, all nodes gone)
	"SERVICE_UNAVAILABLE",
	"NO_RESPONSE",
	"BAD_GATEWAY",
	"REQUEST_REJECTED",
	"REQUEST_SKIPPED",
	"REQUEST_TIMEOUT",
	"NOT_READY",
	"DATABASE_UNAVAILABLE",
	// a lock or statement timeout: nothing was written
	"DATABASE_BUSY",
	// this region does not write that entity now (failover, an old epoch): nothing was written
	"NOT_OWNER",
	// another region this write needs (a supply held there) cannot be reached now: nothing was written here
	"REGION_UNREACHABLE",
]);

const DEFAULT_CODES: Record<number, string> = {
	400: "BAD_REQUEST",
	401: "UNAUTHORIZED",
	403: "FORBIDDEN",
	404: "NOT_FOUND",
	409: "CONFLICT",
	422: "VALIDATION_ERROR",
	429: "RATE_LIMITED",
	503: "SERVICE_UNAVAILABLE",
};

export function errorBody(err: any, requestId: string): ErrorResponse {
	const headers: Record<string, string> = {};
	const type: string | undefined = typeof err?.type === "string" ? err.type : undefined;

	// body-parser errors (malformed JSON, too large, bad charset) have an "entity.*" type or only a `status`.
	if (type?.startsWith("entity.") || (typeof err?.status === "number" && typeof err?.code !== "number")) {
		const message = err.type === "entity.too.large" ? "The request body is too large" : "The request body is not valid JSON";
		return { status: 400, headers, body: { error: { code: "INVALID_BODY", message, requestId } } };
	}

	// CLAIM_DURABILITY=replicated: the claim is written, and acknowledged once its events are in the event log.
	if (type === "NOT_DURABLE") {
		headers["Retry-After"] = "1";
		return { status: 503, headers, body: { error: { code: type, message: err.message, requestId } } };
	}

	// A 503 without a type is moleculer-web's ServiceUnavailableError (an alias whose action has no endpoint).
	if ((type && UNAVAILABLE.has(type)) || (err?.code === 503 && !type)) {
		headers["Retry-After"] = "1";
		const timeout = type === "REQUEST_TIMEOUT" || type === "REQUEST_SKIPPED";
		return {
			status: 503,
			headers,
			body: {
				error: {
					code: timeout ? "TIMEOUT" : type === "NOT_READY" ? "NOT_READY" : "SERVICE_UNAVAILABLE",
					message: timeout
						? "The request timed out; its outcome is unknown, retry with the same Idempotency-Key"
						: type === "NOT_READY"
							? "Not ready"
							: "The service is temporarily unavailable",
					requestId,
				},
			},
		};
	}

	const status = typeof err?.code === "number" && err.code >= 400 && err.code < 500 ? err.code : 500;
	if (status >= 500)
		return { status: 500, headers, body: { error: { code: "INTERNAL_ERROR", message: "Internal server error", requestId } } };

	let code = type && /^[A-Z0-9_]+$/.test(type) ? type : (DEFAULT_CODES[status] ?? "BAD_REQUEST");
	let message: string = err.message;
	let details: unknown = err.data;
	if (type === "VALIDATION_ERROR" && Array.isArray(err.data)) {
		// fastest-validator: keep which field failed and why, not internal expectations.
		details = { fields: err.data.map((d: any) => ({ field: d.field, message: d.message, type: d.type })) };
		message = "The request is invalid";
	}
	if (status === 404 && (type === "NOT_FOUND" || !type)) {
		code = "NOT_FOUND";
		message = "Not found";
		details = undefined;
	}
	if (status === 401 && type === "NO_TOKEN") code = "UNAUTHORIZED";
	if (type === "QUEUE_FULL") {
		// Moleculer's message names the action and node: say what the client needs, nothing internal.
		message = "Too many requests in progress; retry later";
		details = undefined;
	}
	if (status === 429) headers["Retry-After"] ??= String(err.data?.retryAfterSec ?? 1);
	return { status, headers, body: { error: { code, message, ...(details ? { details } : {}), requestId } } };
}
