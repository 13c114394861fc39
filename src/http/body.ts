// The JSON body parser of every route: body-parser, with every failure of reading the body answered
// as the client's error (400, or 415 for an encoding or charset we do not read), never a 500. A zlib
// error (a gzip or deflate body that is not valid or is empty) carries a string `code` that
// moleculer-web would turn into a 500.
import type { IncomingMessage, ServerResponse } from "node:http";
import bodyParser from "body-parser";
import { AppError } from "../domain/errors";

type Next = (err?: unknown) => void;

export function bodyError(err: any): AppError {
	const status = typeof err?.status === "number" ? err.status : 400;
	if (status === 415)
		return new AppError(415, "UNSUPPORTED_MEDIA_TYPE", "The request body's encoding or charset is not supported");
	if (err?.type === "entity.too.large") return new AppError(400, "INVALID_BODY", "The request body is too large");
	if (typeof err?.code === "string" && err.code.startsWith("Z_"))
		return new AppError(400, "INVALID_BODY", "The request body is not valid compressed data");
	return new AppError(400, "INVALID_BODY", "The request body is not valid JSON");
}

/** Deeper than any body of the API (an order's items are 3 levels deep). */
export const MAX_DEPTH = 32;

/**
 * What makes a parsed body unusable as an action's parameters, or undefined:
 * - not an object (an array would be merged into the parameters as keys "0", "1", ...);
 * - a `__proto__` key anywhere: merged by Object.assign, it would set the parameters' prototype and supply
 *   parameters the client did not send;
 * - nesting deeper than MAX_DEPTH: serializing it for the transporter would overflow the stack (a 500).
 */
export function bodyProblem(value: unknown): string | undefined {
	if (value === null || typeof value !== "object" || Array.isArray(value)) return "The request body must be a JSON object";
	const stack: [unknown, number][] = [[value, 1]];
	while (stack.length > 0) {
		const [v, depth] = stack.pop()!;
		if (depth > MAX_DEPTH) return `The request body must not be nested more than ${MAX_DEPTH} levels deep`;
		if (!Array.isArray(v) && Object.hasOwn(v as object, "__proto__")) return "The request body must not contain a __proto__ key";
		for (const child of Object.values(v as object)) if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
	}
	return undefined;
}

export function jsonBody(opts: { limit: string }) {
	const parse = bodyParser.json({ strict: true, limit: opts.limit });
	return function jsonBodyParser(req: IncomingMessage & { body?: unknown }, res: ServerResponse, next: Next) {
		// An empty body is not valid compressed data either (body-parser would skip it as "no body").
		const encoding = req.headers["content-encoding"];
		if (encoding && !/^\s*identity\s*$/i.test(encoding) && req.headers["content-length"] === "0")
			return next(new AppError(400, "INVALID_BODY", "The request body is not valid compressed data"));
		parse(req, res, (err?: unknown) => {
			if (err) return next(bodyError(err));
			const problem = req.body === undefined ? undefined : bodyProblem(req.body);
			if (problem) return next(new AppError(400, "INVALID_BODY", problem));
			next();
		});
	};
}
