// Reads a region's database and reports every violation of the brief's invariants (§2) it can see
// in the data: used by the tests after concurrent and faulty runs, and by `npm run check`.
import type { Pool } from "pg";

export interface Violation {
	invariant: number;
	entity: string;
	id: string;
	problem: string;
}

export interface CheckReport {
	counts: { supplies: number; orders: number; claims: number; active: number; settled: number; released: number };
	violations: Violation[];
}

/** Checks each region's database (one pool per region) and reports the violations of all of them. */
export async function checkInvariants(pools: Pool | Pool[]): Promise<CheckReport> {
	const reports = await Promise.all((Array.isArray(pools) ? pools : [pools]).map(checkOne));
	const counts = { ...reports[0].counts };
	for (const r of reports.slice(1)) for (const k of Object.keys(counts) as (keyof typeof counts)[]) counts[k] += r.counts[k];
	return { counts, violations: reports.flatMap(r => r.violations) };
}

async function checkOne(pool: Pool): Promise<CheckReport> {
	const violations: Violation[] = [];
	const add = (invariant: number, entity: string, id: string, problem: string) =>
		violations.push({ invariant, entity, id, problem });

	// 1. At most one non-released claim per order, and the order points at it.
	const doubles = await pool.query(
		`SELECT order_id, count(*)::int AS n FROM claims WHERE status <> 'released' GROUP BY order_id HAVING count(*) > 1`,
	);
	for (const r of doubles.rows) add(1, "order", r.order_id, `${r.n} non-released claims`);
	const pointers = await pool.query(
		`SELECT o.id, o.status, o.claim_id, c.id AS live_claim, c.status AS claim_status
		   FROM orders o LEFT JOIN claims c ON c.order_id = o.id AND c.status <> 'released'
		  WHERE (o.status IN ('claimed','completed') AND (c.id IS NULL OR o.claim_id IS DISTINCT FROM c.id))
		     OR (o.status NOT IN ('claimed','completed') AND c.id IS NOT NULL)
		     OR (o.status = 'claimed' AND c.status <> 'active')
		     OR (o.status = 'completed' AND c.status <> 'settled')`,
	);
	for (const r of pointers.rows)
		add(1, "order", r.id, `order ${r.status} (claim_id ${r.claim_id}) but live claim is ${r.live_claim ?? "none"} (${r.claim_status ?? "-"})`);

	// 2. reserved = Σ active claims, spent = Σ settled claims, available >= 0.
	const balances = await pool.query(
		`SELECT s.id, s.amount, s.reserved, s.spent,
		        coalesce(sum(c.amount) FILTER (WHERE c.status = 'active'), 0) AS active_sum,
		        coalesce(sum(c.amount) FILTER (WHERE c.status = 'settled'), 0) AS settled_sum
		   FROM supplies s LEFT JOIN claims c ON c.supply_id = s.id
		  GROUP BY s.id
		 HAVING s.reserved <> coalesce(sum(c.amount) FILTER (WHERE c.status = 'active'), 0)
		     OR s.spent <> coalesce(sum(c.amount) FILTER (WHERE c.status = 'settled'), 0)
		     OR s.amount - s.reserved - s.spent < 0`,
	);
	for (const r of balances.rows)
		add(2, "supply", r.id, `amount ${r.amount} reserved ${r.reserved} (claims ${r.active_sum}) spent ${r.spent} (claims ${r.settled_sum})`);

	// 3. Nobody claimed their own order; claims use the claimer's own supply of the order's asset and amount.
	const own = await pool.query(
		`SELECT c.id, (o.user_id = c.claimer_id) AS own, (s.user_id <> c.claimer_id) AS foreign_supply,
		        (s.asset <> o.asset) AS asset_mismatch, (c.amount <> o.amount) AS amount_mismatch
		   FROM claims c JOIN orders o ON o.id = c.order_id JOIN supplies s ON s.id = c.supply_id
		  WHERE o.user_id = c.claimer_id OR s.user_id <> c.claimer_id OR s.asset <> o.asset OR c.amount <> o.amount`,
	);
	for (const r of own.rows)
		add(3, "claim", r.id, Object.entries(r).filter(([k, v]) => k !== "id" && v).map(([k]) => k).join(", "));

	// 4. One claim per (claimer, Idempotency-Key).
	const keys = await pool.query(
		`SELECT claimer_id, idempotency_key, count(*)::int AS n FROM claims GROUP BY 1, 2 HAVING count(*) > 1`,
	);
	for (const r of keys.rows) add(4, "claim", r.idempotency_key, `${r.n} claims for one key`);

	// 5. Only valid states and timestamps that match them.
	const states = await pool.query(
		`SELECT id, status FROM claims
		  WHERE (status = 'settled' AND (settled_at IS NULL OR released_at IS NOT NULL))
		     OR (status = 'released' AND (released_at IS NULL OR settled_at IS NOT NULL))
		     OR (status = 'active' AND (settled_at IS NOT NULL OR released_at IS NOT NULL))`,
	);
	for (const r of states.rows) add(5, "claim", r.id, `status ${r.status} with inconsistent timestamps`);

	// 6. amount = Σ unitPrice × quantity, in NUMERIC: exact, like the columns.
	const sums = await pool.query(
		`SELECT o.id, o.amount::text, s.total::text FROM orders o
		   LEFT JOIN LATERAL (SELECT sum((i->>'unitPrice')::numeric * (i->>'quantity')::numeric) AS total
		                        FROM jsonb_array_elements(o.items) i) s ON true
		  WHERE s.total IS DISTINCT FROM o.amount`,
	);
	for (const r of sums.rows) add(6, "order", r.id, `amount ${r.amount} but items sum to ${r.total}`);

	const counts = await pool.query(
		`SELECT (SELECT count(*)::int FROM supplies) AS supplies, (SELECT count(*)::int FROM orders) AS orders,
		        (SELECT count(*)::int FROM claims) AS claims,
		        (SELECT count(*)::int FROM claims WHERE status = 'active') AS active,
		        (SELECT count(*)::int FROM claims WHERE status = 'settled') AS settled,
		        (SELECT count(*)::int FROM claims WHERE status = 'released') AS released`,
	);
	return { counts: counts.rows[0], violations };
}
