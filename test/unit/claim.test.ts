import { describe, expect, it } from "vitest";
import { checkReplay, decideClaim, decideRelease } from "../../src/domain/claim";
import type { ClaimStatus, OrderStatus } from "../../src/domain/types";
import { NOW, makeClaim, makeOrder, makeSupply, thrown } from "./fixtures";

const CLAIMER = "claimer-1";

describe("decideClaim", () => {
	it("allows a valid claim", () => {
		expect(() => decideClaim(makeOrder(), makeSupply(), CLAIMER, NOW)).not.toThrow();
	});

	it("allows a supply whose available equals the order amount exactly", () => {
		const order = makeOrder({ amount: "10.000001" });
		const supply = makeSupply({ available: "10.000001000000000000" });
		expect(() => decideClaim(order, supply, CLAIMER, NOW)).not.toThrow();
	});

	it("404 ORDER_NOT_FOUND when the order is missing", () => {
		expect(thrown(() => decideClaim(undefined, makeSupply(), CLAIMER, NOW))).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
	});

	it("403 OWN_ORDER when the buyer claims their own order", () => {
		const supply = makeSupply({ userId: "buyer-1" });
		expect(thrown(() => decideClaim(makeOrder(), supply, "buyer-1", NOW))).toMatchObject({ code: 403, type: "OWN_ORDER" });
	});

	it("409 ORDER_EXPIRED for an open order past its expiry", () => {
		const order = makeOrder({ expiresAt: NOW.toISOString() });
		expect(thrown(() => decideClaim(order, makeSupply(), CLAIMER, NOW))).toMatchObject({ code: 409, type: "ORDER_EXPIRED" });
	});

	it.each<[OrderStatus, string]>([
		["claimed", "ORDER_NOT_OPEN"],
		["completed", "ORDER_NOT_OPEN"],
		["cancelled", "ORDER_NOT_OPEN"],
		["expired", "ORDER_EXPIRED"],
	])("409 for its own claimer when the order is %s (%s)", (status, code) => {
		const order = makeOrder({ status, claimerId: CLAIMER });
		expect(thrown(() => decideClaim(order, makeSupply(), CLAIMER, NOW))).toMatchObject({ code: 409, type: code });
	});

	it.each<OrderStatus>(["claimed", "completed", "cancelled", "expired"])("404 for a stranger when the order is %s", status => {
		const order = makeOrder({ status, claimerId: status === "claimed" || status === "completed" ? "someone-else" : null });
		expect(thrown(() => decideClaim(order, makeSupply(), CLAIMER, NOW))).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
	});

	it("404 SUPPLY_NOT_FOUND for a missing supply or another user's supply, indistinguishably", () => {
		const missing = thrown(() => decideClaim(makeOrder(), undefined, CLAIMER, NOW));
		const foreign = thrown(() => decideClaim(makeOrder(), makeSupply({ userId: "someone-else" }), CLAIMER, NOW));
		expect(missing).toMatchObject({ code: 404, type: "SUPPLY_NOT_FOUND" });
		expect(foreign).toMatchObject({ code: 404, type: "SUPPLY_NOT_FOUND" });
		expect(foreign.message).toBe(missing.message);
		expect(foreign.data).toEqual(missing.data);
	});

	it("422 ASSET_MISMATCH when the supply holds another asset", () => {
		const supply = makeSupply({ asset: "ETH" });
		expect(thrown(() => decideClaim(makeOrder(), supply, CLAIMER, NOW))).toMatchObject({ code: 422, type: "ASSET_MISMATCH" });
	});

	it.each(["paused", "closed"] as const)("409 SUPPLY_NOT_ACTIVE for a %s supply", status => {
		const supply = makeSupply({ status });
		expect(thrown(() => decideClaim(makeOrder(), supply, CLAIMER, NOW))).toMatchObject({
			code: 409,
			type: "SUPPLY_NOT_ACTIVE",
			data: { status },
		});
	});

	it("409 INSUFFICIENT_SUPPLY when available is one unit short", () => {
		const order = makeOrder({ amount: "10" });
		const supply = makeSupply({ available: "9.999999999999999999" });
		expect(thrown(() => decideClaim(order, supply, CLAIMER, NOW))).toMatchObject({
			code: 409,
			type: "INSUFFICIENT_SUPPLY",
			data: { available: "9.999999999999999999", required: "10" },
		});
	});
});

describe("checkReplay", () => {
	const existing = makeClaim({ id: "claim-9", orderId: "order-1", supplyId: "supply-1" });

	it("accepts a replay naming the same order and supply", () => {
		expect(() => checkReplay(existing, "order-1", "supply-1")).not.toThrow();
	});

	it.each([
		["order-2", "supply-1"],
		["order-1", "supply-2"],
	])("422 IDEMPOTENCY_KEY_REUSED for order %s / supply %s", (orderId, supplyId) => {
		expect(thrown(() => checkReplay(existing, orderId, supplyId))).toMatchObject({
			code: 422,
			type: "IDEMPOTENCY_KEY_REUSED",
			data: { claimId: "claim-9" },
		});
	});
});

describe("decideRelease", () => {
	it("lets the claimer, or the system (null user), release an active claim", () => {
		expect(() => decideRelease(makeClaim(), CLAIMER)).not.toThrow();
		expect(() => decideRelease(makeClaim(), null)).not.toThrow();
	});

	it("hides another user's claim as 404 CLAIM_NOT_FOUND", () => {
		expect(thrown(() => decideRelease(makeClaim(), "buyer-1"))).toMatchObject({ code: 404, type: "CLAIM_NOT_FOUND" });
	});

	it.each<ClaimStatus>(["settled", "released"])("409 CLAIM_NOT_ACTIVE for a %s claim", status => {
		expect(thrown(() => decideRelease(makeClaim({ status }), CLAIMER))).toMatchObject({ code: 409, type: "CLAIM_NOT_ACTIVE" });
	});
});
