// Rows written straight into a test database, for tests of the SQL commands that need exact control
// over what exists (and, for fault tests, states the API would never produce).
import { randomUUID } from "node:crypto";
import type { Pool } from "pg";

export async function seedSupply(pool: Pool, userId: string, amount = "10", o: { asset?: string; home?: string; status?: string } = {}) {
	const id = randomUUID();
	await pool.query(`INSERT INTO supplies (id, user_id, asset, amount, home_region, status) VALUES ($1,$2,$3,$4,$5,$6)`, [
		id,
		userId,
		o.asset ?? "ETH",
		amount,
		o.home ?? "us-central1",
		o.status ?? "active",
	]);
	return id;
}

export async function seedOrder(pool: Pool, userId: string, amount = "1", o: { asset?: string; home?: string; expiresInSec?: number } = {}) {
	const id = randomUUID();
	const items = [{ sku: "s", name: "n", unitPrice: amount, quantity: 1 }];
	await pool.query(
		`INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
		 VALUES ($1,$2,$3,$4,$5,$6, now() + make_interval(secs => $7))`,
		[id, userId, o.asset ?? "ETH", JSON.stringify(items), amount, o.home ?? "us-central1", o.expiresInSec ?? 3600],
	);
	return id;
}

/** The sessions of this database waiting for a row lock right now (not for a page or relation extension). */
export async function lockWaits(pool: Pool): Promise<number> {
	const r = await pool.query<{ n: number }>(
		`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event IN ('tuple', 'transactionid')`,
	);
	return r.rows[0].n;
}

export async function waitForLockWaits(pool: Pool, n: number, timeoutMs = 10_000) {
	const until = Date.now() + timeoutMs;
	while ((await lockWaits(pool)) < n) {
		if (Date.now() > until) throw new Error(`fewer than ${n} sessions waited for a lock within ${timeoutMs} ms`);
		await new Promise(r => setTimeout(r, 20));
	}
}

/**
 * `n` claims whose hold has run out, each on a supply of its own and an order it claimed: a consistent state
 * (reserved = the claim's amount) as if the sweeper had been away. Bulk SQL, so 100,000 take seconds.
 */
export async function seedExpiredHolds(pool: Pool, n: number, region = "us-central1"): Promise<void> {
	const c = await pool.connect();
	try {
		await c.query("BEGIN");
		await c.query(
			`CREATE TEMP TABLE holds ON COMMIT DROP AS
			 SELECT g, gen_random_uuid() AS sid, gen_random_uuid() AS oid, gen_random_uuid() AS cid FROM generate_series(1, $1) g`,
			[n],
		);
		await c.query(
			`INSERT INTO supplies (id, user_id, asset, amount, reserved, home_region)
			 SELECT sid, 'shopper-' || (g % 100), 'ETH', 10, 1, $1 FROM holds`,
			[region],
		);
		await c.query(
			`INSERT INTO orders (id, user_id, asset, items, amount, status, claim_id, claimer_id, home_region, version, expires_at)
			 SELECT oid, 'buyer', 'ETH', '[{"sku":"s","name":"n","unitPrice":"1","quantity":1}]', 1, 'claimed', cid, 'shopper-' || (g % 100), $1, 2, now() + interval '1 day' FROM holds`,
			[region],
		);
		await c.query(
			`INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
			 SELECT cid, oid, 'shopper-' || (g % 100), sid, 1, 'hold-' || $1 || '-' || g, $1, 1, now() - interval '1 second' FROM holds`,
			[region],
		);
		await c.query("COMMIT");
	} catch (err) {
		await c.query("ROLLBACK");
		throw err;
	} finally {
		c.release();
	}
}
