// One pg pool per database URL per process, shared by every service of every broker in it.
// With no DATABASE_URL the embedded PostgreSQL is started once and used.
import pg from "pg";
import type { Config } from "../../config";
import { startEmbeddedPostgres, type EmbeddedHandle } from "./embedded";
import { instrumentClient, instrumentPool, translate } from "./instrument";
import { migrate, pendingMigrations } from "./migrate";

/** A node that does not migrate refuses to run on a schema older than its code. */
async function checkSchema(pool: pg.Pool): Promise<void> {
	const pending = await pendingMigrations(pool);
	if (pending.length)
		throw new Error(`The database schema is behind this code: run \`npm run migrate\` first (pending: ${pending.join(", ")})`);
}

export interface Database {
	pool: pg.Pool;
	url: string;
	refs: number;
}

const databases = new Map<string, Promise<Database>>();
const opened = new Set<pg.Pool>();

/** The pools open in this process (for the pool metrics). */
export const openDatabases = (): pg.Pool[] => [...opened];
let embedded: Promise<EmbeddedHandle> | undefined;

// NUMERIC stays a string (exact); bigint (epoch, counts) becomes a JS number, always small here.
pg.types.setTypeParser(pg.types.builtins.INT8, v => Number(v));

async function open(url: string, cfg: Config, log: (m: string) => void): Promise<Database> {
	const pool = new pg.Pool({
		connectionString: url,
		max: cfg.pgPoolMax,
		connectionTimeoutMillis: 5000,
		idleTimeoutMillis: 30000,
		application_name: `wallet-${cfg.region}`,
		// 0 turns a limit off (PostgreSQL's own meaning).
		statement_timeout: cfg.pgTimeouts.statementMs,
		lock_timeout: cfg.pgTimeouts.lockMs,
		idle_in_transaction_session_timeout: cfg.pgTimeouts.idleInTxMs,
	});
	// Idle clients get 57P01 when the server shuts down; without a listener that kills the process.
	pool.on("error", err => log(`postgres pool error: ${err.message}`));
	const ready = cfg.migrateOnStart ? migrate(pool) : checkSchema(pool);
	await ready.catch(async err => {
		await pool.end().catch(() => undefined);
		throw err;
	});
	opened.add(pool);
	return { pool: instrumentPool(pool), url, refs: 0 };
}

/** Services of one region ask at once: the database is created once. */
const embeddedUrls = new Map<string, Promise<string>>();

/** The embedded server's URL for one database, created on first use (the embedded default's regions each have one). */
async function embeddedDatabaseUrl(serverUrl: string, name: string): Promise<string> {
	const url = new URL(serverUrl);
	if (url.pathname === `/${name}`) return serverUrl;
	const admin = new pg.Client({ connectionString: serverUrl });
	await admin.connect();
	try {
		const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [name]);
		// The name is checked by the configuration (a plain identifier).
		if (!exists.rowCount) await admin.query(`CREATE DATABASE ${name}`).catch(err => (err.code === "42P04" ? undefined : Promise.reject(err)));
	} finally {
		await admin.end();
	}
	url.pathname = `/${name}`;
	return url.toString();
}

export async function acquireDatabase(cfg: Config, log: (m: string) => void): Promise<Database> {
	let url = cfg.databaseUrl;
	if (!url) {
		embedded ??= startEmbeddedPostgres(cfg.dataDir, cfg.embeddedPgPort, log);
		const server = (await embedded).url;
		let made = embeddedUrls.get(cfg.embeddedDatabase);
		if (!made) embeddedUrls.set(cfg.embeddedDatabase, (made = embeddedDatabaseUrl(server, cfg.embeddedDatabase)));
		made.catch(() => embeddedUrls.delete(cfg.embeddedDatabase));
		url = await made;
	}
	let db = databases.get(url);
	if (!db) {
		db = open(url, cfg, log);
		databases.set(url, db);
		db.catch(() => databases.delete(url));
	}
	const d = await db;
	d.refs++;
	return d;
}

export async function releaseDatabase(db: Database): Promise<void> {
	if (--db.refs > 0) return;
	databases.delete(db.url);
	opened.delete(db.pool);
	await db.pool.end();
	if (databases.size === 0 && embedded) {
		embeddedUrls.clear();
		const e = embedded;
		embedded = undefined;
		await (await e).stop();
	}
}

export interface TxOptions {
	/**
	 * fn sends BEGIN itself, joined to its first statement (`BEGIN; EXECUTE ...`: the simple query protocol, which
	 * takes no parameters), and may join COMMIT to its last: two round trips fewer, for a caller whose round trips
	 * are its latency (the outbox relay). A transaction fn leaves open is committed here.
	 */
	joined?: boolean;
}

/** Runs fn in one transaction; rolls back on any error. */
export async function withTx<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>, o: TxOptions = {}): Promise<T> {
	const client = instrumentClient(await pool.connect().catch(translate));
	// A checked-out client has no listener of the pool's: an error the server sends between queries (the
	// idle-in-transaction timeout, a terminated backend) would be unhandled and end the process. The next query
	// fails with it instead, and the client is destroyed on release.
	let broken: Error | undefined;
	const onError = (err: Error) => {
		broken = err;
	};
	client.on("error", onError);
	try {
		if (!o.joined) await client.query("BEGIN");
		const result = await fn(client);
		if (!o.joined || client.getTransactionStatus() !== "I") await client.query("COMMIT");
		return result;
	} catch (err) {
		await client.query("ROLLBACK").catch(() => undefined);
		throw err;
	} finally {
		client.off("error", onError);
		client.release(broken);
	}
}
