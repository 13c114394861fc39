// Money, for any input: exact round trips between decimal strings and BigInt units, the asset's
// decimals enforced, the NUMERIC(38,18) range held, and no float anywhere on the way.
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
	assertInRange,
	formatAmount,
	fromNumeric,
	MAX_UNITS,
	normalize,
	parseAmount,
	positiveAmount,
	SCALE,
	toNumeric,
} from "../../src/domain/money";
import { thrown } from "./fixtures";

const ONE = 10n ** 18n;
const units = fc.bigInt({ min: 0n, max: MAX_UNITS });
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: min, maxLength: max });

/** The decimal string of `u` units, by string slicing only: an independent model of formatAmount. */
function model(u: bigint): string {
	const s = (u < 0n ? -u : u).toString().padStart(19, "0");
	const int = s.slice(0, -18).replace(/^0+(?=\d)/, "");
	const frac = s.slice(-18).replace(/0+$/, "");
	return `${u < 0n ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
}

describe("money round trips", () => {
	test.prop([units])("format then parse gives the same units, and the string is the shortest exact one", u => {
		const s = formatAmount(u);
		expect(s).toBe(model(u));
		expect(parseAmount(s, 18)).toBe(u);
		expect(fromNumeric(s)).toBe(u);
		expect(toNumeric(u)).toBe(s);
	});

	test.prop([units])("what PostgreSQL returns (18 decimals, trailing zeros) normalises to the API form", u => {
		const pg = `${u / ONE}.${(u % ONE).toString().padStart(18, "0")}`;
		expect(fromNumeric(pg)).toBe(u);
		expect(normalize(pg)).toBe(model(u));
	});

	test.prop([units])("negative amounts round trip too (deltas are written as negative numerics)", u => {
		expect(fromNumeric(formatAmount(-u))).toBe(-u);
		expect(formatAmount(-u)).toBe(u === 0n ? "0" : `-${model(u)}`);
	});

	test.prop([digits(1, 20), digits(0, 18)])("any well-formed string parses to int × 10^18 + frac, leading and trailing zeros aside", (int, frac) => {
		const s = frac ? `${int}.${frac}` : int;
		const u = parseAmount(s, 18);
		expect(u).toBe(BigInt(int) * ONE + BigInt(frac.padEnd(18, "0")));
		expect(parseAmount(formatAmount(u), 18)).toBe(u);
	});

	test.prop([units, units])("sums and differences are exact: no float rounding", (a, b) => {
		const sum = parseAmount(formatAmount(a), 18) + parseAmount(formatAmount(b), 18);
		expect(fromNumeric(formatAmount(sum))).toBe(a + b);
		expect(fromNumeric(formatAmount(a - b))).toBe(a - b);
		// 0.1 + 0.2 is 0.3 here, and the 18th decimal survives any magnitude.
		expect(formatAmount(parseAmount("0.1", 18) + parseAmount("0.2", 18))).toBe("0.3");
		expect(formatAmount(MAX_UNITS)).toBe(`${"9".repeat(20)}.${"9".repeat(18)}`);
	});
});

describe("money limits", () => {
	test.prop([fc.integer({ min: 0, max: 17 }), digits(1, 20), fc.integer({ min: 1, max: 9 })])(
		"more significant decimals than the asset allows are refused, trailing zeros are not",
		(decimals, int, last) => {
			const significant = decimals ? `${"0".repeat(decimals - 1)}${last}` : "0";
			const ok = `${int}.${significant.padEnd(Math.min(18, significant.length + 2), "0")}`;
			expect(() => parseAmount(ok, decimals)).not.toThrow();
			const tooMany = `${int}.${"0".repeat(decimals)}${last}`;
			expect(thrown(() => parseAmount(tooMany, decimals))).toMatchObject({
				code: 422,
				type: "INVALID_AMOUNT",
				message: `amount has more than ${decimals} decimals allowed for this asset`,
				data: { field: "amount", decimals },
			});
		},
	);

	test.prop([
		fc.oneof(
			fc.constantFrom("", ".", "1.", ".5", "-1", "+1", " 1", "1 ", "1e3", "0x10", "1,5", "1.2.3", "NaN", "Infinity", "١"),
			digits(21, 30),
			digits(1, 20).map(i => `${i}.${"1".repeat(19)}`),
			fc.string().filter(s => !/^\d{1,20}(\.\d{1,18})?$/.test(s)),
		),
	])("anything but a plain decimal string is refused with INVALID_AMOUNT", s => {
		expect(thrown(() => parseAmount(s, 18, "price"))).toMatchObject({
			code: 422,
			type: "INVALID_AMOUNT",
			message: 'price must be a decimal string like "12.5"',
			data: { field: "price" },
		});
	});

	test.prop([fc.bigInt({ min: 1n, max: MAX_UNITS })])("every positive amount within NUMERIC(38,18) is accepted as itself", u => {
		expect(positiveAmount(formatAmount(u), 18)).toBe(u);
		expect(assertInRange(u)).toBe(u);
	});

	test.prop([fc.bigInt({ min: MAX_UNITS + 1n, max: MAX_UNITS * 10n })])("beyond NUMERIC(38,18) is AMOUNT_TOO_LARGE", u => {
		expect(thrown(() => assertInRange(u, "total"))).toMatchObject({
			code: 422,
			type: "AMOUNT_TOO_LARGE",
			message: "total exceeds the largest supported amount",
			data: { field: "total" },
		});
	});

	test.prop([fc.integer({ min: 0, max: 18 }), fc.constantFrom("0", "0.0", "00", "0.000000000000000000")])("zero is never a positive amount", (d, zero) => {
		expect(thrown(() => positiveAmount(zero, d, "unitPrice"))).toMatchObject({
			code: 422,
			type: "INVALID_AMOUNT",
			message: "unitPrice must be greater than zero",
			data: { field: "unitPrice" },
		});
		// Without a field name the error names the amount.
		expect(thrown(() => positiveAmount(zero, d))).toMatchObject({ message: "amount must be greater than zero", data: { field: "amount" } });
	});

	test.prop([fc.constant(SCALE)])("the scale is that of the NUMERIC(38,18) columns", scale => {
		expect(scale).toBe(18);
		expect(MAX_UNITS).toBe(10n ** 38n - 1n);
	});
});
