// A fresh database per test file, dropped afterwards, so tests run repeatedly and side by side.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { migrate } from "../../src/db/migrate";
import { PG_ADMIN_URL } from "./env";

export interface TestDatabase {
	url: string;
	name: string;
	pool: pg.Pool;
	drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
	const name = `wallet_test_${randomBytes(5).toString("hex")}`;
	const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${name}`);
	await admin.end();
	const url = new URL(PG_ADMIN_URL);
	url.pathname = `/${name}`;
	const pool = new pg.Pool({ connectionString: url.toString(), max: 3 });
	pool.on("error", () => undefined);
	return {
		url: url.toString(),
		name,
		pool,
		async drop() {
			await pool.end();
			const c = new pg.Client({ connectionString: PG_ADMIN_URL });
			await c.connect();
			await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
			await c.end();
		},
	};
}

/** A fresh database with the project's migrations applied. */
export async function createMigratedDatabase(): Promise<TestDatabase> {
	const db = await createTestDatabase();
	await migrate(db.pool);
	return db;
}

/**
 * The SQL-language functions `run` called as functions of their own, in a transaction of one of `pool`'s connections
 * that is rolled back after: not inlined into the statement that used them, so PostgreSQL before 18 parsed and planned
 * their body at every call. (One is inlined when it is a single expression no more volatile than it is declared.)
 */
export async function sqlFunctionsCalled(pool: pg.Pool, run: (client: pg.PoolClient) => Promise<unknown>): Promise<string[]> {
	const client = await pool.connect();
	try {
		await client.query("BEGIN");
		await client.query("SET LOCAL track_functions = 'all'");
		await run(client);
		const { rows } = await client.query<{ name: string }>(
			`SELECT f.funcname AS name FROM pg_stat_xact_user_functions f JOIN pg_proc p ON p.oid = f.funcid
			   JOIN pg_language l ON l.oid = p.prolang WHERE l.lanname = 'sql' ORDER BY 1`,
		);
		return rows.map(r => r.name);
	} finally {
		await client.query("ROLLBACK").catch(() => undefined);
		client.release();
	}
}
