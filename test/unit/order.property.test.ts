// An order's amount, for any items: the exact sum of unitPrice × quantity in BigInt units, whatever
// the order of the items or how a quantity is split, within the asset's decimals and NUMERIC(38,18).
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { formatAmount, MAX_UNITS } from "../../src/domain/money";
import { orderAmount } from "../../src/domain/order";
import type { OrderItem } from "../../src/domain/types";
import { thrown } from "./fixtures";

const decimals = fc.integer({ min: 0, max: 18 });
/** A price with at most `d` decimals and up to a million whole units, as its units and its string. */
const price = (d: number) =>
	fc.bigInt({ min: 1n, max: 10n ** BigInt(d + 6) }).map(n => {
		const units = n * 10n ** BigInt(18 - d);
		return { units, unitPrice: formatAmount(units) };
	});
const items = (d: number) =>
	fc.array(
		fc.record({ p: price(d), quantity: fc.integer({ min: 1, max: 1_000_000 }) }),
		{ minLength: 1, maxLength: 12 },
	);
const asItems = (xs: { p: { unitPrice: string }; quantity: number }[]): OrderItem[] =>
	xs.map((x, i) => ({ sku: `sku-${i}`, name: `Item ${i}`, unitPrice: x.p.unitPrice, quantity: x.quantity }));

describe("order amount", () => {
	test.prop([decimals.chain(d => fc.tuple(fc.constant(d), items(d)))])("is the exact sum of unitPrice × quantity", ([d, xs]) => {
		const want = xs.reduce((sum, x) => sum + x.p.units * BigInt(x.quantity), 0n);
		expect(orderAmount(asItems(xs), d)).toBe(want);
	});

	test.prop([decimals.chain(d => fc.tuple(fc.constant(d), items(d))), fc.nat()])("does not depend on the order of the items", ([d, xs], seed) => {
		const shuffled = [...xs];
		for (let i = shuffled.length - 1; i > 0; i--) {
			const j = (seed + i * 7919) % (i + 1);
			[shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
		}
		expect(orderAmount(asItems(shuffled), d)).toBe(orderAmount(asItems(xs), d));
	});

	test.prop([price(18), fc.integer({ min: 2, max: 1_000_000 }), fc.nat()])("is the same when a quantity is split over two lines", (p, q, cut) => {
		const a = (cut % (q - 1)) + 1;
		expect(orderAmount(asItems([{ p, quantity: a }, { p, quantity: q - a }]), 18)).toBe(orderAmount(asItems([{ p, quantity: q }]), 18));
	});

	test.prop([fc.integer({ min: 3, max: 1000 })])("adds 0.1 exactly where floats drift", n => {
		const xs = Array.from({ length: n }, () => ({ p: { unitPrice: "0.1" }, quantity: 1 }));
		expect(formatAmount(orderAmount(asItems(xs), 18))).toBe(formatAmount(BigInt(n) * 10n ** 17n));
	});

	test.prop([decimals, fc.integer({ min: 1, max: 5 }), fc.nat(11)])("refuses a price with more decimals than the asset, naming the item", (d, extra, i) => {
		const xs = Array.from({ length: 12 }, (_, k) => ({ p: { unitPrice: k === i ? `1.${"0".repeat(d)}${"1".repeat(Math.min(extra, 18 - d) || 1)}` : "1" }, quantity: 1 }));
		if (d === 18) xs[i].p.unitPrice = `1.${"1".repeat(19)}`;
		expect(thrown(() => orderAmount(asItems(xs), d))).toMatchObject({ code: 422, type: "INVALID_AMOUNT", data: { field: `items[${i}].unitPrice` } });
	});

	test.prop([fc.constantFrom("0", "0.00", "-1", "", "abc", "1e2")])("refuses a zero, negative or malformed price", p => {
		expect(thrown(() => orderAmount(asItems([{ p: { unitPrice: p }, quantity: 1 }]), 6))).toMatchObject({
			code: 422,
			type: "INVALID_AMOUNT",
			data: { field: "items[0].unitPrice" },
		});
	});

	test.prop([fc.bigInt({ min: MAX_UNITS / 2n + 1n, max: MAX_UNITS })])("refuses a total beyond NUMERIC(38,18), even when each line fits", u => {
		const p = { unitPrice: formatAmount(u) };
		expect(orderAmount(asItems([{ p, quantity: 1 }]), 18)).toBe(u);
		expect(thrown(() => orderAmount(asItems([{ p, quantity: 1 }, { p, quantity: 1 }]), 18))).toMatchObject({
			code: 422,
			type: "AMOUNT_TOO_LARGE",
			message: "amount exceeds the largest supported amount",
			data: { field: "amount" },
		});
	});
});
