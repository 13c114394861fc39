import { Errors } from "moleculer";
import { Errors as WebErrors } from "moleculer-web";
import { describe, expect, it } from "vitest";
import { AppError, conflict, notFound } from "../../src/domain/errors";
import { refusal } from "../../src/store/refusals";
import { errorBody } from "../../src/lib/http-errors";

const RID = "req-123";

describe("errorBody", () => {
	it("keeps an AppError's status, code, message and details", () => {
		const err = conflict("INSUFFICIENT_SUPPLY", "Not enough funds", { id: "s-1", available: "1.5" });
		expect(errorBody(err, RID)).toEqual({
			status: 409,
			headers: {},
			body: {
				error: { code: "INSUFFICIENT_SUPPLY", message: "Not enough funds", details: { id: "s-1", available: "1.5" }, requestId: RID },
			},
		});
	});

	it("omits details when the error has none", () => {
		const res = errorBody(new AppError(403, "NOT_BUYER", "Only the buyer"), RID);
		expect(res.status).toBe(403);
		expect(res.body.error).not.toHaveProperty("details");
	});

	it("keeps a domain 404 code like ORDER_NOT_FOUND", () => {
		const res = errorBody(notFound("order"), RID);
		expect(res).toMatchObject({ status: 404, body: { error: { code: "ORDER_NOT_FOUND", requestId: RID } } });
	});

	it("turns a validation error into 422 with the failing fields but not their actual values", () => {
		const err = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
			{ field: "amount", message: "The 'amount' field must be a string.", type: "string", actual: "secret-value" },
		]);
		const res = errorBody(err, RID);
		expect(res.status).toBe(422);
		expect(res.body.error.code).toBe("VALIDATION_ERROR");
		expect(res.body.error.details).toEqual({
			fields: [{ field: "amount", message: "The 'amount' field must be a string.", type: "string" }],
		});
		expect(JSON.stringify(res.body)).not.toContain("secret-value");
	});

	it.each([
		["ServiceNotFoundError", new Errors.ServiceNotFoundError({ action: "order.get", nodeID: "node-1" })],
		["ServiceNotAvailableError", new Errors.ServiceNotAvailableError({ action: "order.get", nodeID: "node-1" })],
		// moleculer-web's own, thrown with no type when a route's action has no endpoint yet (found by npm run bench)
		["moleculer-web's ServiceUnavailableError", new WebErrors.ServiceUnavailableError(undefined as unknown as string)],
	])("maps %s to 503 SERVICE_UNAVAILABLE with Retry-After, without internal names", (_name, err) => {
		const res = errorBody(err, RID);
		expect(res.status).toBe(503);
		expect(res.headers["Retry-After"]).toBeDefined();
		expect(res.body.error.code).toBe("SERVICE_UNAVAILABLE");
		expect(JSON.stringify(res.body)).not.toMatch(/order\.get|node-1/);
	});

	it("maps a request timeout to 503 TIMEOUT with Retry-After", () => {
		const res = errorBody(new Errors.RequestTimeoutError({ action: "claiming.claim", nodeID: "node-2" }), RID);
		expect(res.status).toBe(503);
		expect(res.headers["Retry-After"]).toBeDefined();
		expect(res.body.error).toMatchObject({ code: "TIMEOUT", requestId: RID });
	});

	it.each([
		["a plain Error", new Error('duplicate key value violates unique constraint "claims_pkey": SELECT * FROM claims')],
		["a 500 MoleculerError", new Errors.MoleculerError('relation "orders" does not exist: SELECT * FROM orders', 500, "DB_ERROR")],
		["a pg-style error with a string code", Object.assign(new Error("SELECT password FROM users"), { code: "42P01" })],
	])("maps %s to 500 INTERNAL_ERROR without leaking its message", (_name, err) => {
		const res = errorBody(err, RID);
		expect(res.status).toBe(500);
		expect(res.body.error.code).toBe("INTERNAL_ERROR");
		expect(res.body.error.requestId).toBe(RID);
		expect(JSON.stringify(res.body)).not.toMatch(/SELECT|claims|orders|password/);
		expect(res.body.error).not.toHaveProperty("details");
	});

	it("maps a non-error value thrown by accident to 500", () => {
		expect(errorBody(undefined, RID)).toMatchObject({ status: 500, body: { error: { code: "INTERNAL_ERROR" } } });
		expect(errorBody("oops", RID).status).toBe(500);
	});

	it("maps a body-parser error to 400 INVALID_BODY", () => {
		const err = Object.assign(new SyntaxError("Unexpected token } in JSON at position 7"), {
			status: 400,
			statusCode: 400,
			type: "entity.parse.failed",
			body: '{"a": 1}}',
		});
		const res = errorBody(err, RID);
		expect(res).toMatchObject({ status: 400, body: { error: { code: "INVALID_BODY", requestId: RID } } });
		expect(JSON.stringify(res.body)).not.toContain("Unexpected token");
	});

	it("adds Retry-After to 429 errors, from retryAfterSec when given", () => {
		const withHint = errorBody(new AppError(429, "RATE_LIMITED", "Too many requests", { retryAfterSec: 7 }), RID);
		expect(withHint).toMatchObject({ status: 429, headers: { "Retry-After": "7" }, body: { error: { code: "RATE_LIMITED" } } });
		const withoutHint = errorBody(new AppError(429, "RATE_LIMITED", "Too many requests"), RID);
		expect(withoutHint.headers["Retry-After"]).toBe("1");
	});

	it("never lets a non-HTTP error code through as the body code", () => {
		const res = errorBody(new AppError(400, "bad code with spaces", "Bad"), RID);
		expect(res.body.error.code).toBe("BAD_REQUEST");
	});

	it("a busy database, a region that does not own the entity, and a service still starting are retryable 503s", () => {
		for (const err of [
			refusal("COMMAND_FAILED", { sqlstate: "55P03" }),
			refusal("NOT_OWNER", { homeRegion: "europe-west1" }),
			Object.assign(new Error("Service unavailable"), { code: 503, type: "SERVICE_UNAVAILABLE" }),
		]) {
			const res = errorBody(err, RID);
			expect(res, String((err as any).type)).toMatchObject({ status: 503, headers: { "Retry-After": "1" }, body: { error: { code: "SERVICE_UNAVAILABLE" } } });
			expect(JSON.stringify(res.body)).not.toMatch(/europe-west1|55P03/);
		}
	});
});
