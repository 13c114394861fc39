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

/** The sessions of this database that are waiting for a lock right now. */
export async function lockWaits(pool: Pool): Promise<number> {
	const r = await pool.query<{ n: number }>(
		`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
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
