// The claim path measured with pgbench, without Node in the way: today's one call (`SELECT order_commands(...)`)
// against the ten round trips of the code before 7b98123 (docs/claim-path.md), both on today's schema.
// `npx tsx bench/pgbench.ts` runs both scripts at 1 and 16 clients for 5 s each (after a warm-up as long, at most 5 s).
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { migrate } from "../src/db/migrate";
import { ensureOwnership } from "../src/store/commands";

export type PgbenchScript = "one-call" | "old";
export interface PgbenchOptions {
	adminUrl: string;
	clients: number;
	seconds: number;
	script: PgbenchScript;
	/** Open orders to seed; every transaction, the warm-up's too, claims a fresh one. */
	orders?: number;
}
export type PgbenchResult = { script: string; clients: number; tps: number; latencyMs: number; transactions: number } | { skipped: string };

const REGION = "us-central1";
const HOLD_SEC = 300; // config's CLAIM_HOLD_SEC default
// Enough supplies that concurrent claims rarely queue on one supply row: the bench measures the path, not contention.
const MIN_SHOPPERS = 64;
// 4000 claims/s per client is far above what one 2-core box does; the cap keeps seeding to seconds at many clients.
const ORDERS_PER_CLIENT_SECOND = 4000;
const MAX_ORDERS = 1_000_000;
const WARMUP_SEC = 5;

// The next bench_claims row, taken once per transaction. nextval sits in an uncorrelated subquery (an InitPlan
// evaluated once), so the row is found by its primary key; `WHERE n = nextval(...)` would call it once per row.
const NEXT = `(SELECT nextval('bench_seq'))`;

// Exactly what runCommands sends for one claim, built in SQL from the next row: one statement, one round trip.
const ONE_CALL = `
SELECT order_commands(jsonb_build_object('region', '${REGION}', 'epochs', jsonb_build_object('${REGION}', 1), 'holdSec', ${HOLD_SEC},
  'cmds', jsonb_build_array(jsonb_build_object('op', 'claim', 'orderId', b.order_id, 'supplyId', b.supply_id,
    'userId', b.user_id, 'key', 'bench-' || b.n)))) AS out
  FROM bench_claims b WHERE b.n = ${NEXT};
`;

// claimOrder of 7b98123^ (src/store/commands.ts) with its caller (claiming.service.ts: the fast-path key lookup on
// the pool, then withTx): ten round trips. Each \gset returns the row to the client, as the old code read every row
// back (RETURNING *); the outbox payloads go back to the server as parameters, as the old code sent its objects.
// Today's payload shapes (api_*) and outbox columns (home_region, epoch; tx_id and schema_version by default).
// The old domain check (decideClaim) ran in Node between the supply lock and the update: no round trip.
const OLD = `
-- 1. the claim service's fast path: is the key known? (input row fetched in the same statement)
SELECT b.n, b.order_id, b.supply_id, b.user_id, 'bench-' || b.n AS key, coalesce(k.id::text, '') AS existing
  FROM bench_claims b
  LEFT JOIN LATERAL (SELECT * FROM claims WHERE claimer_id = b.user_id AND idempotency_key = 'bench-' || b.n) k ON true
 WHERE b.n = ${NEXT}
\\gset
-- 2.
BEGIN;
-- 3. claimOrder: findClaimByKey again, inside the transaction
SELECT * FROM claims WHERE claimer_id = :user_id AND idempotency_key = :key;
-- 4. lockOrder
SELECT * FROM orders WHERE id = :order_id FOR UPDATE
\\gset o_
-- 5. lockSupply
SELECT *, amount - reserved - spent AS available FROM supplies WHERE id = :supply_id FOR UPDATE
\\gset s_
-- 6. supplyChange(+amount, 0)
UPDATE supplies SET reserved = reserved + :o_amount, spent = spent + 0, version = version + 1, updated_at = now()
 WHERE id = :supply_id RETURNING *, amount - reserved - spent AS available, api_supply(supplies) AS payload
\\gset s_
-- 7. the claim (its id was a client-side randomUUID; same round trips)
INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
VALUES (gen_random_uuid(), :order_id, :user_id, :supply_id, :o_amount, :key, '${REGION}', 1, now() + make_interval(secs => ${HOLD_SEC}))
RETURNING *, api_claim(claims) AS payload
\\gset c_
-- 8. the order
UPDATE orders SET status = 'claimed', claim_id = :c_id, claimer_id = :user_id, version = version + 1, updated_at = now()
 WHERE id = :order_id RETURNING *, api_order(orders) AS payload
\\gset o_
-- 9. appendEvents: one multi-row insert
INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, payload, home_region, epoch) VALUES
  (gen_random_uuid(), 'claim', :c_id, :c_version, 'ClaimCreated', '${REGION}', :c_payload, :o_home_region, 1),
  (gen_random_uuid(), 'order', :o_id, :o_version, 'OrderClaimed', '${REGION}', :o_payload, :o_home_region, 1),
  (gen_random_uuid(), 'supply', :s_id, :s_version, 'SupplyReserved', '${REGION}', :s_payload, :s_home_region, 1);
-- 10.
COMMIT;
`;

const SCRIPTS: Record<PgbenchScript, string> = { "one-call": ONE_CALL, old: OLD };

function hasPgbench(): boolean {
	return !spawnSync("pgbench", ["--version"], { stdio: "ignore" }).error;
}

/** A scratch database on adminUrl's server, dropped afterwards (bench/sweeper.ts's withDatabase). */
async function withDatabase<T>(adminUrl: string, fn: (url: string) => Promise<T>): Promise<T> {
	const name = `wallet_pgbench_${randomBytes(4).toString("hex")}`;
	const admin = new pg.Client({ connectionString: adminUrl });
	await admin.connect();
	try {
		await admin.query(`CREATE DATABASE ${name}`);
		const url = new URL(adminUrl);
		url.pathname = `/${name}`;
		return await fn(url.toString());
	} finally {
		await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
		await admin.end();
	}
}

/** `orders` open orders, each with its row in bench_claims naming the shopper (and supply) that will claim it. */
async function seed(pool: pg.Pool, orders: number, shoppers: number): Promise<void> {
	await pool.query(`CREATE TABLE bench_claims (n bigint PRIMARY KEY, order_id uuid NOT NULL, supply_id uuid NOT NULL, user_id text NOT NULL);
		CREATE SEQUENCE bench_seq`);
	const c = await pool.connect();
	try {
		await c.query("BEGIN");
		await c.query(
			`CREATE TEMP TABLE shoppers ON COMMIT DROP AS
			 SELECT g AS i, gen_random_uuid() AS sid, 'shopper-' || g AS uid FROM generate_series(0, $1 - 1) g`,
			[shoppers],
		);
		await c.query(`INSERT INTO supplies (id, user_id, asset, amount, home_region) SELECT sid, uid, 'ETH', 1e12, $1 FROM shoppers`, [REGION]);
		await c.query(
			`INSERT INTO bench_claims SELECT g, gen_random_uuid(), s.sid, s.uid FROM generate_series(1, $1) g JOIN shoppers s ON s.i = g % $2`,
			[orders, shoppers],
		);
		await c.query(
			`INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
			 SELECT order_id, 'buyer-' || n, 'ETH', '[{"sku":"s","name":"n","unitPrice":"1","quantity":1}]', 1, $1, now() + interval '1 day'
			   FROM bench_claims`,
			[REGION],
		);
		await c.query("COMMIT");
	} catch (err) {
		await c.query("ROLLBACK");
		throw err;
	} finally {
		c.release();
	}
	await pool.query("VACUUM ANALYZE");
	// Seeding writes hundreds of MB of WAL: without a checkpoint now, one forced by max_wal_size may land mid-run.
	// Needs superuser or pg_checkpoint; without it the run goes on, only noisier.
	await pool.query("CHECKPOINT").catch((err: { code?: string }) => {
		if (err.code !== "42501") throw err;
	});
}

function parse(out: string, re: RegExp): number {
	const m = re.exec(out);
	if (!m) throw new Error(`pgbench output has no ${re}:\n${out}`);
	return Number(m[1]);
}

async function pgbench(args: string[]): Promise<string> {
	const run = promisify(execFile)("pgbench", args, { maxBuffer: 16 << 20 });
	const { stdout } = await run.catch((err: { stdout?: string; stderr?: string; message: string }) => {
		throw new Error(`pgbench failed: ${err.message}\n${err.stdout ?? ""}${err.stderr ?? ""}`);
	});
	return stdout;
}

const countClaims = async (pool: pg.Pool) => Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM claims")).rows[0].n);

export async function runPgbench(o: PgbenchOptions): Promise<PgbenchResult> {
	if (!hasPgbench()) return { skipped: "pgbench is not installed" };
	const warmup = Math.min(o.seconds, WARMUP_SEC);
	const orders = o.orders ?? Math.min(o.clients * (warmup + o.seconds) * ORDERS_PER_CLIENT_SECOND, MAX_ORDERS);
	return withDatabase(o.adminUrl, async url => {
		const pool = new pg.Pool({ connectionString: url, max: 2 });
		// 57P01: our own DROP DATABASE ... WITH (FORCE) can beat an ended client's socket to the close.
		pool.on("error", (err: Error & { code?: string }) => err.code !== "57P01" && console.error(`postgres: ${err.message}`));
		const dir = await mkdtemp(path.join(tmpdir(), "pgbench-"));
		try {
			await migrate(pool);
			await ensureOwnership(pool, [REGION]);
			await seed(pool, orders, Math.max(MIN_SHOPPERS, o.clients));
			const file = path.join(dir, `${o.script}.sql`);
			await writeFile(file, SCRIPTS[o.script]);
			// -M extended: node-postgres sends every parameterised query as an unnamed Parse/Bind/Execute, parsed and
			// planned each time, and so does extended mode. Simple mode would paste \gset values into the SQL text
			// unquoted (JSON payloads break it); prepared mode would skip the parse and plan the node pays.
			const args = (sec: number) =>
				["-n", "-c", String(o.clients), "-j", String(Math.min(o.clients, 2)), "-T", String(sec), "-M", "extended", "-f", file, url];
			// Right after the seed's checkpoint, the first change of every page writes a full-page image; measured
			// from a cold start, the one call is WAL-bound and ran at half its steady rate here. The warm-up pays that.
			if (warmup > 0) await pgbench(args(warmup));
			const before = await countClaims(pool);
			const stdout = await pgbench(args(o.seconds));
			const transactions = parse(stdout, /number of transactions actually processed: (\d+)/);
			const tps = parse(stdout, /tps = ([\d.]+)/);
			const latencyMs = parse(stdout, /latency average = ([\d.]+) ms/);

			const check = await pool.query<{ taken: string; negative: string }>(
				`SELECT (SELECT last_value FROM bench_seq) AS taken, (SELECT count(*) FROM supplies WHERE amount - reserved - spent < 0) AS negative`,
			);
			if (Number(check.rows[0].taken) > orders) throw new Error(`${o.script}: all ${orders} seeded orders were taken; pass a larger \`orders\``);
			// Each transaction claims one order; one cut off per client when -T ends is the most a mismatch may be.
			const claims = (await countClaims(pool)) - before;
			if (Math.abs(claims - transactions) > o.clients) {
				throw new Error(`${o.script}: pgbench reported ${transactions} transactions but ${claims} claims were made`);
			}
			if (Number(check.rows[0].negative) > 0) throw new Error(`${o.script}: ${check.rows[0].negative} supplies have negative available`);
			return { script: o.script, clients: o.clients, tps, latencyMs, transactions };
		} finally {
			await rm(dir, { recursive: true, force: true });
			await pool.end();
		}
	});
}

if (require.main === module) {
	const adminUrl = process.env.BENCH_PG_URL ?? process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
	(async () => {
		for (const clients of [1, 16]) {
			for (const script of ["one-call", "old"] as const) {
				const r = await runPgbench({ adminUrl, clients, seconds: 5, script });
				if ("skipped" in r) {
					console.log(`pgbench: skipped (${r.skipped})`);
					return;
				}
				console.log(`${r.script.padEnd(8)} ${String(r.clients).padStart(2)} client(s): ${r.tps.toFixed(0)} tps, ${r.latencyMs.toFixed(3)} ms average, ${r.transactions} transactions`);
			}
		}
	})().catch(err => {
		console.error(err);
		process.exit(1);
	});
}
