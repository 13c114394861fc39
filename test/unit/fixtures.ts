// Shared factories for unit tests: complete domain rows with sensible defaults, overridable per test.
import type { Claim, Order, Supply, User } from "../../src/domain/types";

export const NOW = new Date("2025-01-01T12:00:00.000Z");
const LATER = "2025-01-02T12:00:00.000Z";
const EARLIER = "2025-01-01T00:00:00.000Z";

export function makeUser(id = "buyer-1", scopes: string[] = ["order:read"]): User {
	return { id, scopes };
}

export function makeOrder(overrides: Partial<Order> = {}): Order {
	return {
		id: "order-1",
		userId: "buyer-1",
		asset: "USDC",
		items: [{ sku: "sku-1", name: "Widget", unitPrice: "10", quantity: 1 }],
		amount: "10",
		status: "open",
		claimId: null,
		claimerId: null,
		homeRegion: "us-central1",
		version: 1,
		expiresAt: LATER,
		createdAt: EARLIER,
		updatedAt: EARLIER,
		...overrides,
	};
}

export function makeSupply(overrides: Partial<Supply> = {}): Supply {
	return {
		id: "supply-1",
		userId: "claimer-1",
		asset: "USDC",
		amount: "100",
		reserved: "0",
		spent: "0",
		available: "100",
		status: "active",
		homeRegion: "us-central1",
		version: 1,
		createdAt: EARLIER,
		updatedAt: EARLIER,
		...overrides,
	};
}

export function makeClaim(overrides: Partial<Claim> = {}): Claim {
	return {
		id: "claim-1",
		orderId: "order-1",
		claimerId: "claimer-1",
		supplyId: "supply-1",
		amount: "10",
		status: "active",
		idempotencyKey: "key-1",
		region: "us-central1",
		epoch: 1,
		version: 1,
		expiresAt: LATER,
		createdAt: EARLIER,
		settledAt: null,
		releasedAt: null,
		...overrides,
	};
}

/** Runs `fn` and returns what it threw; fails the test if it did not throw. */
export function thrown(fn: () => unknown): any {
	try {
		fn();
	} catch (err) {
		return err;
	}
	throw new Error("expected the call to throw, but it returned");
}
