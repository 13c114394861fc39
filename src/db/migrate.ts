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

/** The migration files not yet applied to this database (none when the schema is current). */
export async function pendingMigrations(pool: Pool): Promise<string[]> {
	const { readdir } = await import("node:fs/promises");
	const files = (await readdir(MIGRATIONS_DIR)).filter(f => f.endsWith(".sql")).map(f => f.replace(/\.sql$/, ""));
	const applied = await pool
		.query<{ name: string }>("SELECT name FROM pgmigrations")
		.then(r => new Set(r.rows.map(x => x.name)))
		.catch(err => {
			if ((err as { code?: string }).code === "42P01") return new Set<string>(); // no migrations table yet
			throw err;
		});
	return files.filter(f => !applied.has(f)).sort();
}
