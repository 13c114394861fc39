import { describe, expect, it } from "vitest";
import { formatAmount } from "../../src/domain/money";
import { decideCancel, decideComplete, isExpired, orderAmount } from "../../src/domain/order";
import type { OrderItem, OrderStatus } from "../../src/domain/types";
import { NOW, makeOrder, thrown } from "./fixtures";

const item = (unitPrice: string, quantity: number, sku = "sku"): OrderItem => ({ sku, name: sku, unitPrice, quantity });
const total = (items: OrderItem[], decimals = 18) => formatAmount(orderAmount(items, decimals));

describe("orderAmount", () => {
	it("sums unitPrice × quantity exactly, with no float error", () => {
		expect(total([item("0.1", 3), item("0.05", 1)])).toBe("0.35");
		expect(total([item("0.1", 1), item("0.2", 1)])).toBe("0.3");
		expect(total([item("19.99", 7), item("0.01", 100)])).toBe("140.93");
	});

	it("keeps precision for large quantities and prices", () => {
		expect(total([item("0.000000000000000001", 1_000_000)])).toBe("0.000000000001");
		expect(total([item("12345678901234.123456", 1_000_000)], 6)).toBe("12345678901234123456");
		expect(total([item("99999999999999999999", 1)])).toBe("99999999999999999999");
	});

	it("rejects a total beyond NUMERIC(38,18) with 422 AMOUNT_TOO_LARGE", () => {
		expect(thrown(() => orderAmount([item("99999999999999999999", 2)], 18))).toMatchObject({
			code: 422,
			type: "AMOUNT_TOO_LARGE",
		});
	});

	it("rejects a price with more decimals than USDC's 6, naming the item", () => {
		const err = thrown(() => orderAmount([item("1", 1), item("0.0000001", 1)], 6));
		expect(err).toMatchObject({ code: 422, type: "INVALID_AMOUNT", data: { field: "items[1].unitPrice", decimals: 6 } });
	});

	it("rejects a zero or malformed unit price with 422 INVALID_AMOUNT", () => {
		expect(thrown(() => orderAmount([item("0", 1)], 6))).toMatchObject({ code: 422, type: "INVALID_AMOUNT" });
		expect(thrown(() => orderAmount([item("1.5e3", 1)], 6))).toMatchObject({ code: 422, type: "INVALID_AMOUNT" });
	});
});

describe("isExpired", () => {
	it("is expired at and after expiresAt, not before", () => {
		expect(isExpired({ expiresAt: "2025-01-01T12:00:00.001Z" }, NOW)).toBe(false);
		expect(isExpired({ expiresAt: NOW.toISOString() }, NOW)).toBe(true);
		expect(isExpired({ expiresAt: "2025-01-01T11:59:59.999Z" }, NOW)).toBe(true);
	});
});

describe("decideCancel", () => {
	it("lets the buyer cancel an open order", () => {
		expect(decideCancel(makeOrder(), "buyer-1")).toBe("cancelled");
	});

	it("refuses anyone but the buyer with 403 NOT_BUYER", () => {
		expect(thrown(() => decideCancel(makeOrder(), "claimer-1"))).toMatchObject({ code: 403, type: "NOT_BUYER" });
	});

	it.each<[OrderStatus, string]>([
		["claimed", "ORDER_NOT_OPEN"],
		["completed", "ORDER_NOT_OPEN"],
		["cancelled", "ORDER_NOT_OPEN"],
		["expired", "ORDER_EXPIRED"],
	])("refuses an order that is %s with 409 %s", (status, code) => {
		const err = thrown(() => decideCancel(makeOrder({ id: "o-7", status }), "buyer-1"));
		expect(err).toMatchObject({ code: 409, type: code, data: { id: "o-7", status } });
	});
});

describe("who may command an order", () => {
	it("404, not 403, for a stranger who cannot see the order", () => {
		const claimed = makeOrder({ status: "claimed", claimerId: "claimer-1" });
		expect(thrown(() => decideComplete(claimed, "stranger"))).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
		expect(thrown(() => decideCancel(claimed, "stranger"))).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
	});

	it("403 NOT_BUYER for those who can see it: anyone while open, the claimer, an admin", () => {
		expect(thrown(() => decideCancel(makeOrder(), "stranger"))).toMatchObject({ code: 403, type: "NOT_BUYER" });
		const claimed = makeOrder({ status: "claimed", claimerId: "claimer-1" });
		expect(thrown(() => decideComplete(claimed, "claimer-1"))).toMatchObject({ code: 403, type: "NOT_BUYER" });
		expect(thrown(() => decideComplete(claimed, "admin-1", true))).toMatchObject({ code: 403, type: "NOT_BUYER" });
	});
});

describe("decideComplete", () => {
	it("lets the buyer complete a claimed order", () => {
		expect(decideComplete(makeOrder({ status: "claimed", claimerId: "claimer-1" }), "buyer-1")).toBe("completed");
	});

	it("refuses the claimer with 403 NOT_BUYER", () => {
		const order = makeOrder({ status: "claimed", claimerId: "claimer-1" });
		expect(thrown(() => decideComplete(order, "claimer-1"))).toMatchObject({ code: 403, type: "NOT_BUYER" });
	});

	it.each<[OrderStatus, string]>([
		["open", "ORDER_NOT_CLAIMED"],
		["completed", "ORDER_NOT_CLAIMED"],
		["cancelled", "ORDER_NOT_CLAIMED"],
		["expired", "ORDER_EXPIRED"],
	])("refuses an order that is %s with 409 %s", (status, code) => {
		expect(thrown(() => decideComplete(makeOrder({ status }), "buyer-1"))).toMatchObject({ code: 409, type: code });
	});
});
