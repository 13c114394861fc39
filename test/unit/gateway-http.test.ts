// The gateway's HTTP helpers: body errors, prototype keys, parser errors, the methods of a path.
import { describe, expect, it } from "vitest";
import { methodTable } from "../../src/http/allow";
import { bodyError, bodyProblem, MAX_DEPTH } from "../../src/http/body";
import { clientErrorAnswer, rawErrorResponse } from "../../src/http/client-error";
import { ROUTES } from "../../src/routes";
import { parseRawReply } from "../helpers/raw-http";

describe("body errors", () => {
	it("are the client's: zlib errors and parse errors are 400, encodings 415, never 500", () => {
		const zlib = Object.assign(new Error("incorrect header check"), { code: "Z_DATA_ERROR", status: 400 });
		expect(bodyError(zlib)).toMatchObject({ code: 400, type: "INVALID_BODY", message: "The request body is not valid compressed data" });
		expect(bodyError({ status: 415, type: "encoding.unsupported" })).toMatchObject({ code: 415, type: "UNSUPPORTED_MEDIA_TYPE" });
		expect(bodyError({ status: 413, type: "entity.too.large" })).toMatchObject({ code: 400, message: "The request body is too large" });
		expect(bodyError({ status: 500, type: "stream.not.readable" })).toMatchObject({ code: 400 });
		expect(bodyError(new Error("odd"))).toMatchObject({ code: 400, type: "INVALID_BODY" });
	});

	it("finds a __proto__ key at any depth, and only an own one", () => {
		expect(bodyProblem(JSON.parse('{"__proto__": {"a": 1}}'))).toMatch(/__proto__/);
		expect(bodyProblem(JSON.parse('{"a": [{"b": {"__proto__": null}}]}'))).toMatch(/__proto__/);
		expect(bodyProblem({ a: [{ b: 1 }], c: "__proto__" })).toBeUndefined();
	});

	it("wants an object, nested at most MAX_DEPTH levels", () => {
		for (const v of [null, [], [{}], "x", 1]) expect(bodyProblem(v)).toBe("The request body must be a JSON object");
		const nest = (n: number) => JSON.parse('{"a":'.repeat(n - 1) + "{}" + "}".repeat(n - 1));
		expect(bodyProblem(nest(MAX_DEPTH))).toBeUndefined();
		expect(bodyProblem(nest(MAX_DEPTH + 1))).toMatch(/nested/);
		// Very deep nesting is found without overflowing the stack.
		expect(bodyProblem({ a: JSON.parse("[".repeat(50_000) + "]".repeat(50_000)) })).toMatch(/nested/);
	});
});

describe("parser errors", () => {
	it("map to 431 for a head too large, else 400, with the JSON body", () => {
		expect(clientErrorAnswer("HPE_HEADER_OVERFLOW").status).toBe(431);
		expect(clientErrorAnswer("HPE_INVALID_HEADER_TOKEN").status).toBe(400);
		const reply = parseRawReply(rawErrorResponse(400, "BAD_REQUEST", "Malformed HTTP request", { "X-Region": "r1" }));
		expect(reply).toMatchObject({ status: 400, headers: { "x-region": "r1", connection: "close" } });
		expect(reply.body.error).toMatchObject({ code: "BAD_REQUEST", message: "Malformed HTTP request" });
		expect(reply.body.error.requestId).toBe(reply.headers["x-request-id"]);
	});
});

describe("the methods of a path", () => {
	const allow = methodTable([{ prefix: "/api/v1", aliases: ROUTES }]);
	it("come from the route table, on any spelling moleculer-web routes", () => {
		expect(allow("/api/v1/supplies")).toEqual(["GET", "POST", "OPTIONS"]);
		expect(allow("/api/v1/supplies/?page=2")).toEqual(["GET", "POST", "OPTIONS"]);
		expect(allow("/api/v1/supplies/abc")).toEqual(["GET", "PATCH", "OPTIONS"]);
		expect(allow("/api/v1/claims/abc/release")).toEqual(["POST", "OPTIONS"]);
		expect(allow("/api/v1/nothing")).toBeUndefined();
		expect(allow("/api/v1/supplies/a/b/c")).toBeUndefined();
	});
	it("of a route's own path (alias \"GET /\") is its prefix, with or without the trailing slash", () => {
		const status = methodTable([{ prefix: "/status", aliases: { "GET /": "api.statusPage" } }]);
		expect(status("/status")).toEqual(["GET", "OPTIONS"]);
		expect(status("/status/")).toEqual(["GET", "OPTIONS"]);
		expect(status("/status/x")).toBeUndefined();
	});
});
