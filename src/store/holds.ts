// Cross-region claims (docs/multi-region.md): holds on a supply in the supply's region, and the fate of
// each claim id in the order's region. The SQL is in migrations/*cross-region-claims.sql.
import { createHash } from "node:crypto";
import type { Pool } from "pg";
import type { Supply } from "../domain/types";
import { busy, refusal } from "./refusals";

export interface HoldRequest {
	claimId: string;
	supplyId: string;
	orderId: string;
	claimerId: string;
	asset: string;
	amount: string;
	/** The order's home region: where to ask what became of the claim. */
	orderRegion: string;
}

/**
 * The id a cross-region claim gets, the same for every attempt with one Idempotency-Key: a retry finds the
 * hold its first attempt made (holds are idempotent by claim id) instead of holding the funds twice.
 */
export function claimIdFor(claimerId: string, key: string): string {
	const h = createHash("sha256").update(`${claimerId}\u0000${key}`).digest("hex");
	// An RFC 4122 variant, version 8 (custom) UUID.
	return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Holds the funds in this region (which must own the supply); the supply after the hold. */
export async function holdSupply(db: Pool, region: string, req: HoldRequest): Promise<{ supply: Supply; replayed: boolean }> {
	const r = await db.query(`SELECT supply_hold($1::jsonb) AS r`, [JSON.stringify({ ...req, region })]).catch(busy);
	const out = r.rows[0].r;
	if (!out.ok) throw refusal(out.error, out.details ?? {});
	return { supply: out.supply, replayed: out.replayed };
}

/** Ends a standing hold (settled or released); the supply's new state, or null when nothing changed. */
export async function endHold(db: Pool, region: string, claimId: string, to: "settled" | "released"): Promise<Supply | null> {
	const r = await db.query(`SELECT end_hold($1, $2, $3) AS s`, [claimId, to, region]).catch(busy);
	return r.rows[0].s;
}

/** In the order's region: 'claimed' if the claim exists, else 'void' from now on (it can never be written). */
export async function voidClaim(db: Pool, claimId: string): Promise<"claimed" | "void"> {
	const r = await db.query(`SELECT void_claim($1) AS outcome`, [claimId]).catch(busy);
	return r.rows[0].outcome;
}

/** Holds whose claim has not shown up in the log for `olderThanSec`: their fate is asked of the order's region. */
export async function unconfirmedHolds(db: Pool, olderThanSec: number, limit: number, region?: string) {
	// Every region keeps every hold (they travel with the supply's events); only the one that writes the supply
	// resolves them.
	const r = await db.query<{ claim_id: string; order_region: string }>(
		`SELECT h.claim_id, h.order_region FROM holds h
		   JOIN supplies s ON s.id = h.supply_id
		  WHERE h.status = 'held' AND h.created_at < now() - make_interval(secs => $1)
		    AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM ownership w WHERE w.home_region = s.home_region AND w.owner = $3))
		  ORDER BY h.created_at LIMIT $2`,
		[olderThanSec, limit, region ?? null],
	);
	return r.rows.map(x => ({ claimId: x.claim_id, orderRegion: x.order_region }));
}

export async function confirmHold(db: Pool, claimId: string): Promise<void> {
	await db.query(`UPDATE holds SET status = 'confirmed', updated_at = now() WHERE claim_id = $1 AND status = 'held'`, [claimId]);
}
