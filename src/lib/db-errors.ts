// PostgreSQL being away is not a bug: it becomes a retryable 503 where it happens, so reads are retried,
// breakers count it and the client is told to come back, instead of a 500.
import { Errors } from "moleculer";

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);
// SQLSTATE classes 08 (connection), 57P (shutdown / cannot connect now), 53300 (too many connections),
// 3D000 (database missing or not accepting connections).
const SQLSTATE = /^(08|57P0[1-3]|53300|3D000)/;

export function isDatabaseUnavailable(err: unknown): boolean {
	const e = err as { code?: unknown; message?: string } | null;
	if (!e) return false;
	if (typeof e.code === "string" && (NETWORK.has(e.code) || SQLSTATE.test(e.code))) return true;
	return /Connection terminated|timeout exceeded when trying to connect|not (currently )?accepting connections|the database system is (starting up|shutting down)/i.test(e.message ?? "");
}

export function databaseUnavailable(err: Error) {
	return new Errors.MoleculerRetryableError("The database is unavailable", 503, "DATABASE_UNAVAILABLE", {
		cause: (err as { code?: string }).code ?? err.message,
	});
}
