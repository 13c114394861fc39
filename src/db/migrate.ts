import path from "node:path";
import type { Pool } from "pg";

export const MIGRATIONS_DIR = path.resolve(__dirname, "..", "..", "migrations");

/** Applies pending migrations (node-pg-migrate takes an advisory lock, so concurrent nodes are safe). */
export async function migrate(pool: Pool, direction: "up" | "down" = "up", log: (m: string) => void = () => undefined) {
	const { runner } = await import("node-pg-migrate");
	const client = await pool.connect();
	try {
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
