import path from "node:path";
import type { Pool } from "pg";

export const MIGRATIONS_DIR = path.resolve(__dirname, "..", "..", "migrations");

/** Applies pending migrations (node-pg-migrate takes an advisory lock, so concurrent nodes are safe). */
export async function migrate(pool: Pool, direction: "up" | "down" = "up", log: (m: string) => void = () => undefined) {
	const { runner } = await import("node-pg-migrate");
	const client = await pool.connect();
	try {
		// The pool's statement and lock limits are for requests; a migration may build an index for minutes,
		// and waits for another node's migration lock as long as that takes.
		await client.query("SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0");
		return await runner({
			dbClient: client,
			dir: MIGRATIONS_DIR,
			direction,
			count: direction === "down" ? 1 : Infinity,
			migrationsTable: "pgmigrations",
			log,
			logger: undefined,
			singleTransaction: true,
			// Nodes start together: the others wait for the first one's migration instead of failing.
			advisoryLockMode: "wait",
		} as Parameters<typeof runner>[0]);
	} finally {
		client.release();
	}
}
