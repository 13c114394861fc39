// Pure decision code for claiming: given the rows read under lock, may this user claim this order
// with this supply? Side effects (the SQL) live in the claiming service.
import { conflict, forbidden, notFound, unprocessable } from "./errors";
import { fromNumeric } from "./money";
import { isExpired, notInState } from "./order";
import type { Claim, Order, Supply } from "./types";

export function decideClaim(order: Order | undefined, supply: Supply | undefined, claimerId: string, now: Date): void {
	if (!order) throw notFound("order");
	if (order.userId === claimerId) throw forbidden("OWN_ORDER", "You cannot claim your own order");
	if (order.status === "open" && isExpired(order, now))
		throw conflict("ORDER_EXPIRED", "The order has expired", { id: order.id, status: "expired" });
	// A claimed, completed or expired order is visible only to its buyer and claimer: to anyone else it
	// does not exist (its status would tell a stranger who won it, and when).
	if (order.status !== "open" && order.claimerId !== claimerId) throw notFound("order");
	if (order.status !== "open") throw notInState(order, "claim", "open");
	// Someone else's supply looks the same as a missing one: never reveal other users' rows.
	if (!supply || supply.userId !== claimerId) throw notFound("supply");
	if (supply.asset !== order.asset)
		throw unprocessable("ASSET_MISMATCH", `The supply holds ${supply.asset} but the order is in ${order.asset}`);
	if (supply.status !== "active")
		throw conflict("SUPPLY_NOT_ACTIVE", `The supply is ${supply.status}`, { id: supply.id, status: supply.status });
	if (fromNumeric(supply.available) < fromNumeric(order.amount))
		throw conflict("INSUFFICIENT_SUPPLY", "The supply does not have enough available funds", {
			id: supply.id,
			available: supply.available,
			required: order.amount,
		});
}

/** A replay with the same key must name the same order and supply, or it is a different request. */
export function checkReplay(existing: Claim, orderId: string, supplyId: string): void {
	if (existing.orderId !== orderId || existing.supplyId !== supplyId)
		throw unprocessable("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was already used for a different claim", {
			claimId: existing.id,
		});
}

export function decideRelease(claim: Claim, userId: string | null): void {
	if (userId !== null && claim.claimerId !== userId) throw notFound("claim");
	if (claim.status !== "active")
		throw conflict("CLAIM_NOT_ACTIVE", `Cannot release a claim that is ${claim.status}`, {
			id: claim.id,
			status: claim.status,
		});
}
