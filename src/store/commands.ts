// The order actor's commands: each runs inside one transaction, locks rows in one order
// (order, then claim, then supply) so they never deadlock, decides with the pure domain code,
// writes the change and its outbox events together.
import { randomUUID } from "node:crypto";
import type { Pool, PoolClient } from "pg";
import { checkReplay, decideClaim, decideRelease } from "../domain/claim";
import { notFound } from "../domain/errors";
import { decideCancel, decideComplete } from "../domain/order";
import type { Claim, Order, Supply } from "../domain/types";
import { appendEvents, type DomainEvent } from "./outbox";
import { SUPPLY_COLS, toClaim, toOrder, toSupply } from "./rows";

export interface CommandContext {
	region: string;
	epoch: number;
	now: Date;
}

export interface ClaimResult {
	claim: Claim;
	order: Order;
	supply: Supply;
	replayed: boolean;
}

const lockOrder = async (c: PoolClient, id: string, skipLocked = false) => {
	const r = await c.query(`SELECT * FROM orders WHERE id = $1 FOR UPDATE${skipLocked ? " SKIP LOCKED" : ""}`, [id]);
	return r.rows[0] ? toOrder(r.rows[0]) : undefined;
};
const lockSupply = async (c: PoolClient, id: string) => {
	const r = await c.query(`SELECT ${SUPPLY_COLS} FROM supplies WHERE id = $1 FOR UPDATE`, [id]);
	return r.rows[0] ? toSupply(r.rows[0]) : undefined;
};
const lockClaim = async (c: PoolClient, id: string) => {
	const r = await c.query(`SELECT * FROM claims WHERE id = $1 FOR UPDATE`, [id]);
	return r.rows[0] ? toClaim(r.rows[0]) : undefined;
};

export async function findClaimByKey(c: PoolClient | Pool, claimerId: string, key: string) {
	const r = await c.query(`SELECT * FROM claims WHERE claimer_id = $1 AND idempotency_key = $2`, [claimerId, key]);
	return r.rows[0] ? toClaim(r.rows[0]) : undefined;
}

const supplyChange = (c: PoolClient, id: string, reservedDelta: string, spentDelta: string) =>
	c
		.query(
			`UPDATE supplies SET reserved = reserved + $2, spent = spent + $3, version = version + 1, updated_at = now()
			 WHERE id = $1 RETURNING ${SUPPLY_COLS}`,
			[id, reservedDelta, spentDelta],
		)
		.then(r => toSupply(r.rows[0]));

const event = (
	region: string,
	aggregateType: DomainEvent["aggregateType"],
	entity: { id: string; version?: number },
	type: string,
	payload: unknown,
): DomainEvent => ({ aggregateType, aggregateId: entity.id, version: entity.version ?? 1, type, region, payload });

export async function claimOrder(
	c: PoolClient,
	cc: CommandContext,
	args: { orderId: string; supplyId: string; claimerId: string; idempotencyKey: string; holdSec: number },
): Promise<ClaimResult> {
	const existing = await findClaimByKey(c, args.claimerId, args.idempotencyKey);
	if (existing) {
		checkReplay(existing, args.orderId, args.supplyId);
		const order = await c.query(`SELECT * FROM orders WHERE id = $1`, [existing.orderId]);
		const supply = await c.query(`SELECT ${SUPPLY_COLS} FROM supplies WHERE id = $1`, [existing.supplyId]);
		return { claim: existing, order: toOrder(order.rows[0]), supply: toSupply(supply.rows[0]), replayed: true };
	}
	const order = await lockOrder(c, args.orderId);
	const supply0 = await lockSupply(c, args.supplyId);
	decideClaim(order, supply0, args.claimerId, cc.now);
	const o = order!;
	const supply = await supplyChange(c, args.supplyId, o.amount, "0");
	const claimRow = await c.query(
		`INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at)
		 VALUES ($1,$2,$3,$4,$5,$6,$7,$8, now() + make_interval(secs => $9)) RETURNING *`,
		[randomUUID(), o.id, args.claimerId, supply.id, o.amount, args.idempotencyKey, cc.region, cc.epoch, args.holdSec],
	);
	const claim = toClaim(claimRow.rows[0]);
	const orderRow = await c.query(
		`UPDATE orders SET status = 'claimed', claim_id = $2, claimer_id = $3, version = version + 1, updated_at = now()
		 WHERE id = $1 RETURNING *`,
		[o.id, claim.id, args.claimerId],
	);
	const updated = toOrder(orderRow.rows[0]);
	await appendEvents(c, [
		event(cc.region, "claim", claim, "ClaimCreated", claim),
		event(cc.region, "order", updated, "OrderClaimed", updated),
		event(cc.region, "supply", supply, "SupplyReserved", supply),
	]);
	return { claim, order: updated, supply, replayed: false };
}

/** Releases an active claim: by its claimer (claimerId given) or because its hold expired (null). */
export async function releaseClaim(
	c: PoolClient,
	cc: CommandContext,
	args: { orderId: string; claimId: string; claimerId: string | null; skipLocked?: boolean },
): Promise<{ claim: Claim; order: Order; supply: Supply } | undefined> {
	const order = await lockOrder(c, args.orderId, args.skipLocked);
	if (!order) {
		if (args.skipLocked) return undefined;
		throw notFound("claim");
	}
	const claim0 = await lockClaim(c, args.claimId);
	if (!claim0 || claim0.orderId !== order.id) throw notFound("claim");
	if (args.claimerId === null && claim0.status !== "active") return undefined;
	decideRelease(claim0, args.claimerId);
	await lockSupply(c, claim0.supplyId);
	const claimRow = await c.query(
		`UPDATE claims SET status = 'released', released_at = now(), version = version + 1 WHERE id = $1 RETURNING *`,
		[claim0.id],
	);
	const claim = toClaim(claimRow.rows[0]);
	const supply = await supplyChange(c, claim.supplyId, `-${claim.amount}`, "0");
	const orderRow = await c.query(
		`UPDATE orders SET status = 'open', claim_id = NULL, claimer_id = NULL, version = version + 1, updated_at = now()
		 WHERE id = $1 AND claim_id = $2 RETURNING *`,
		[order.id, claim.id],
	);
	const updated = orderRow.rows[0] ? toOrder(orderRow.rows[0]) : order;
	await appendEvents(c, [
		event(cc.region, "claim", claim, "ClaimReleased", { ...claim, reason: args.claimerId ? "claimer" : "expired" }),
		event(cc.region, "order", updated, "OrderReopened", updated),
		event(cc.region, "supply", supply, "SupplyReleased", supply),
	]);
	return { claim, order: updated, supply };
}

export async function completeOrder(c: PoolClient, cc: CommandContext, args: { orderId: string; buyerId: string }) {
	const order0 = await lockOrder(c, args.orderId);
	if (!order0) throw notFound("order");
	decideComplete(order0, args.buyerId);
	const claim0 = await lockClaim(c, order0.claimId!);
	await lockSupply(c, claim0!.supplyId);
	const claimRow = await c.query(
		`UPDATE claims SET status = 'settled', settled_at = now(), version = version + 1 WHERE id = $1 AND status = 'active' RETURNING *`,
		[claim0!.id],
	);
	const claim = toClaim(claimRow.rows[0]);
	const supply = await supplyChange(c, claim.supplyId, `-${claim.amount}`, claim.amount);
	const orderRow = await c.query(
		`UPDATE orders SET status = 'completed', version = version + 1, updated_at = now() WHERE id = $1 RETURNING *`,
		[order0.id],
	);
	const order = toOrder(orderRow.rows[0]);
	await appendEvents(c, [
		event(cc.region, "claim", claim, "ClaimSettled", claim),
		event(cc.region, "order", order, "OrderCompleted", order),
		event(cc.region, "supply", supply, "SupplySpent", supply),
	]);
	return { order, claim, supply };
}

export async function cancelOrder(c: PoolClient, cc: CommandContext, args: { orderId: string; buyerId: string }) {
	const order0 = await lockOrder(c, args.orderId);
	if (!order0) throw notFound("order");
	decideCancel(order0, args.buyerId);
	const r = await c.query(
		`UPDATE orders SET status = 'cancelled', version = version + 1, updated_at = now() WHERE id = $1 RETURNING *`,
		[order0.id],
	);
	const order = toOrder(r.rows[0]);
	await appendEvents(c, [event(cc.region, "order", order, "OrderCancelled", order)]);
	return { order };
}

/** Marks open orders past expiresAt as expired; rows another node holds are skipped, not waited for. */
export async function expireOrders(c: PoolClient, cc: CommandContext, limit: number): Promise<Order[]> {
	const r = await c.query(
		`UPDATE orders SET status = 'expired', version = version + 1, updated_at = now()
		 WHERE id IN (SELECT id FROM orders WHERE status = 'open' AND expires_at <= now()
		              ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		 RETURNING *`,
		[limit],
	);
	const orders = r.rows.map(toOrder);
	await appendEvents(c, orders.map(o => event(cc.region, "order", o, "OrderExpired", o)));
	return orders;
}

/** Claims whose hold has run out, oldest first. */
export async function expiredClaims(c: Pool, limit: number): Promise<{ id: string; orderId: string }[]> {
	const r = await c.query(
		`SELECT id, order_id FROM claims WHERE status = 'active' AND expires_at <= now() ORDER BY expires_at LIMIT $1`,
		[limit],
	);
	return r.rows.map(row => ({ id: row.id, orderId: row.order_id }));
}
