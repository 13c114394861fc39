// SQL calls as spans of the current action's trace (promise-style calls only; pg's own callback
// calls inside the pool are left alone so nothing is counted twice), and a database that is away as
// a retryable 503 instead of a driver error.
import type { Pool, PoolClient } from "pg";
import { databaseUnavailable, isDatabaseUnavailable } from "../lib/db-errors";
import { busy } from "../store/refusals";
import { traced } from "../lib/request-context";

type Queryable = Pick<Pool, "query"> | Pick<PoolClient, "query">;

function wrap<T extends Queryable>(target: T): T {
	const original = target.query.bind(target) as (...args: unknown[]) => unknown;
	(target as any).query = (...args: unknown[]) => {
		const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text;
		if (typeof args[args.length - 1] === "function" || !text) return original(...args);
		// The span's name and statement are built only when the call is traced (a regex over every statement's text
		// otherwise).
		const verb = /^\s*(\w+)/.exec(text)?.[1].toUpperCase() ?? "";
		return traced(`sql ${verb}`, () => ({ db: { system: "postgresql", statement: text.replace(/\s+/g, " ").trim().slice(0, 300) } }), () =>
			(original(...args) as Promise<unknown>).catch(translate),
		);
	};
	return target;
}

/**
 * Connection-level failures become a retryable 503 right where they happen, and so does a statement that
 * gave up on a lock or ran past its limit (nothing was written).
 */
export function translate(err: Error): never {
	if (isDatabaseUnavailable(err)) throw databaseUnavailable(err);
	return busy(err);
}

export const instrumentPool = (pool: Pool): Pool => wrap(pool);

/** Wraps a checked-out client once; pg reuses client objects, so mark them. */
export function instrumentClient(client: PoolClient): PoolClient {
	if ((client as any).__traced) return client;
	(client as any).__traced = true;
	return wrap(client);
}
