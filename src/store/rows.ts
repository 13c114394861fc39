// Row -> domain object mapping. Amounts are normalised exact strings, times ISO-8601.
import { normalize } from "../domain/money";
import type { Claim, Order, Supply } from "../domain/types";

type Row = Record<string, any>;
const iso = (v: Date | null) => (v ? v.toISOString() : null);

export function toSupply(r: Row): Supply {
	const amount = normalize(r.amount);
	return {
		id: r.id,
		userId: r.user_id,
		asset: r.asset,
		amount,
		reserved: normalize(r.reserved),
		spent: normalize(r.spent),
		available: normalize(r.available),
		status: r.status,
		homeRegion: r.home_region,
		version: r.version,
		createdAt: iso(r.created_at)!,
		updatedAt: iso(r.updated_at)!,
	};
}

export function toOrder(r: Row): Order {
	return {
		id: r.id,
		userId: r.user_id,
		asset: r.asset,
		items: r.items,
		amount: normalize(r.amount),
		status: r.status,
		claimId: r.claim_id,
		claimerId: r.claimer_id,
		homeRegion: r.home_region,
		version: r.version,
		expiresAt: iso(r.expires_at)!,
		createdAt: iso(r.created_at)!,
		updatedAt: iso(r.updated_at)!,
	};
}

export function toClaim(r: Row): Claim {
	return {
		id: r.id,
		orderId: r.order_id,
		claimerId: r.claimer_id,
		supplyId: r.supply_id,
		amount: normalize(r.amount),
		status: r.status,
		idempotencyKey: r.idempotency_key,
		region: r.region,
		epoch: Number(r.epoch),
		version: r.version,
		expiresAt: iso(r.expires_at)!,
		createdAt: iso(r.created_at)!,
		settledAt: iso(r.settled_at),
		releasedAt: iso(r.released_at),
	};
}

export const SUPPLY_COLS = "*, amount - reserved - spent AS available";
