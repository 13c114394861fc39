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

/** True when a parsed body has a `__proto__` key anywhere: merged into the action's parameters by
 * Object.assign, it would set their prototype and supply parameters the client did not send. */
export function hasProtoKey(value: unknown): boolean {
	const stack: unknown[] = [value];
	while (stack.length > 0) {
		const v = stack.pop();
		if (v === null || typeof v !== "object") continue;
		if (!Array.isArray(v) && Object.hasOwn(v, "__proto__")) return true;
		for (const child of Object.values(v)) if (child !== null && typeof child === "object") stack.push(child);
	}
	return false;
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
			if (req.body !== undefined && hasProtoKey(req.body))
				return next(new AppError(400, "INVALID_BODY", "The request body must not contain a __proto__ key"));
			next();
		});
	};
}
