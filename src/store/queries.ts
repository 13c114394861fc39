// Read queries for the get and list actions.
import type { Pool } from "pg";
import type { Claim, Order, Page, Supply } from "../domain/types";
import { checkDepth, MAX_ROWS, pageArgs, toPage, where } from "./paging";
import { SUPPLY_COLS, toClaim, toOrder, toSupply } from "./rows";

export interface ListArgs {
	page?: number;
	pageSize?: number;
}

async function paged<T>(
	pool: Pool,
	table: string,
	cols: string,
	w: { sql: string; values: unknown[] },
	args: ListArgs,
	map: (r: any) => T,
): Promise<Page<T>> {
	const { page, pageSize, offset } = pageArgs(args.page, args.pageSize);
	checkDepth(page, pageSize);
	const n = w.values.length;
	const [rows, count] = await Promise.all([
		pool.query(`SELECT ${cols} FROM ${table} ${w.sql} ORDER BY created_at DESC, id LIMIT $${n + 1} OFFSET $${n + 2}`, [
			...w.values,
			pageSize,
			offset,
		]),
		// Counting stops after MAX_ROWS + 1 rows: the cost of a list does not grow with the table.
		pool.query(`SELECT count(*)::int AS n FROM (SELECT 1 FROM ${table} ${w.sql} LIMIT ${MAX_ROWS + 1}) AS capped`, w.values),
	]);
	return toPage(rows.rows.map(map), count.rows[0].n, page, pageSize);
}

export async function getSupply(pool: Pool, id: string): Promise<Supply | null> {
	const r = await pool.query(`SELECT ${SUPPLY_COLS} FROM supplies WHERE id = $1`, [id]);
	return r.rows[0] ? toSupply(r.rows[0]) : null;
}

export async function getOrder(pool: Pool, id: string): Promise<Order | null> {
	const r = await pool.query(`SELECT * FROM orders WHERE id = $1`, [id]);
	return r.rows[0] ? toOrder(r.rows[0]) : null;
}

export async function getClaim(pool: Pool, id: string): Promise<Claim | null> {
	const r = await pool.query(`SELECT * FROM claims WHERE id = $1`, [id]);
	return r.rows[0] ? toClaim(r.rows[0]) : null;
}

export function listSupplies(pool: Pool, a: ListArgs & { userId: string; asset?: string; status?: string }) {
	const w = where([
		["user_id = ?", a.userId],
		["asset = ?", a.asset],
		["status = ?", a.status],
	]);
	return paged(pool, "supplies", SUPPLY_COLS, w, a, toSupply);
}

/** Visible orders: open ones, plus the user's own as buyer or claimer (all of them for an admin). */
export function listOrders(
	pool: Pool,
	a: ListArgs & { userId: string; admin: boolean; asset?: string; status?: string; mine?: boolean },
) {
	const w = where(
		[
			["asset = ?", a.asset],
			["status = ?", a.status],
			["user_id = ?", a.mine ? a.userId : undefined],
		],
		[],
	);
	if (!a.mine && !a.admin) {
		w.values.push(a.userId);
		const p = `$${w.values.length}`;
		const vis = `(status = 'open' OR user_id = ${p} OR claimer_id = ${p})`;
		w.sql = w.sql ? `${w.sql} AND ${vis}` : `WHERE ${vis}`;
	}
	return paged(pool, "orders", "*", w, a, toOrder);
}

export function listClaims(pool: Pool, a: ListArgs & { userId: string; status?: string }) {
	const w = where([
		["claimer_id = ?", a.userId],
		["status = ?", a.status],
	]);
	return paged(pool, "claims", "*", w, a, toClaim);
}
