import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { brokerOptions } from "../../moleculer.config";
import { loadConfig } from "../../config";
import { breakerCounts } from "../../src/lib/breaker";
import { conflict, unprocessable } from "../../src/domain/errors";
import { databaseUnavailable } from "../../src/lib/db-errors";

describe("what a circuit breaker counts", () => {
	it("counts an unhealthy node or dependency", () => {
		expect(breakerCounts(new Errors.RequestTimeoutError({ action: "a", nodeID: "n" } as any))).toBe(true);
		expect(breakerCounts(databaseUnavailable(new Error("Connection terminated")))).toBe(true);
		expect(breakerCounts(new Errors.MoleculerRetryableError("busy", 503, "DATABASE_BUSY"))).toBe(true);
		expect(breakerCounts(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))).toBe(true);
	});

	it("never counts one caller's input: refusals, and not even a 500 (a bug one user could trigger at will)", () => {
		expect(breakerCounts(unprocessable("VALIDATION_ERROR", "bad"))).toBe(false);
		expect(breakerCounts(conflict("ORDER_NOT_OPEN", "no"))).toBe(false);
		expect(breakerCounts(new TypeError("Cannot read properties of undefined"))).toBe(false);
		expect(breakerCounts(new Errors.MoleculerServerError("boom", 500, "INTERNAL"))).toBe(false);
	});

	it("is the check every broker uses", () => {
		const opts = brokerOptions(loadConfig({ NODE_ENV: "test" }));
		expect((opts.circuitBreaker as { check?: unknown }).check).toBe(breakerCounts);
	});
});
