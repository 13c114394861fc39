import { describe, expect, it } from "vitest";
import {
	MAX_UNITS,
	assertInRange,
	formatAmount,
	fromNumeric,
	normalize,
	parseAmount,
	positiveAmount,
	toNumeric,
} from "../../src/domain/money";
import { thrown } from "./fixtures";

const ONE = 10n ** 18n;

describe("parseAmount", () => {
	it("parses integers and decimals into units of 10^-18", () => {
		expect(parseAmount("12", 6)).toBe(12n * ONE);
		expect(parseAmount("12.5", 6)).toBe(125n * 10n ** 17n);
		expect(parseAmount("0.000001", 6)).toBe(10n ** 12n);
		expect(parseAmount("0.000000000000000001", 18)).toBe(1n);
	});

	it("accepts trailing zeros beyond the asset's decimals", () => {
		expect(parseAmount("1.500000000", 6)).toBe(parseAmount("1.5", 6));
	});

	it("rejects more decimals than the asset allows with 422 INVALID_AMOUNT naming the field", () => {
		const err = thrown(() => parseAmount("1.0000001", 6, "price"));
		expect(err).toMatchObject({ code: 422, type: "INVALID_AMOUNT", data: { field: "price", decimals: 6 } });
		expect(err.message).toContain("price");
	});

	it.each(["", "abc", "-1", "1.", ".5", "1e5", " 1", "1,5", "1.2.3", "123456789012345678901", "1.0000000000000000001"])(
		"rejects malformed %j with 422 INVALID_AMOUNT",
		value => {
			expect(thrown(() => parseAmount(value, 18))).toMatchObject({ code: 422, type: "INVALID_AMOUNT", data: { field: "amount" } });
		},
	);
});

describe("formatAmount", () => {
	it("prints the shortest exact decimal", () => {
		expect(formatAmount(0n)).toBe("0");
		expect(formatAmount(100n * ONE)).toBe("100");
		expect(formatAmount(25n * 10n ** 17n)).toBe("2.5");
		expect(formatAmount(1n)).toBe("0.000000000000000001");
		expect(formatAmount(-15n * 10n ** 17n)).toBe("-1.5");
		expect(formatAmount(MAX_UNITS)).toBe("99999999999999999999.999999999999999999");
	});

	it("round-trips through parseAmount", () => {
		for (const s of ["0", "1", "0.1", "123.456", "99999999999999999999.999999999999999999"])
			expect(formatAmount(parseAmount(s, 18))).toBe(s);
	});
});

describe("NUMERIC conversion", () => {
	it("normalizes PostgreSQL NUMERIC(38,18) text to the API form", () => {
		expect(normalize("2.500000000000000000")).toBe("2.5");
		expect(normalize("0.000000000000000000")).toBe("0");
		expect(normalize("100")).toBe("100");
		expect(normalize("-3.250000000000000000")).toBe("-3.25");
	});

	it("fromNumeric and toNumeric are inverses", () => {
		expect(fromNumeric("1.000000000000000001")).toBe(ONE + 1n);
		expect(toNumeric(ONE + 1n)).toBe("1.000000000000000001");
		expect(fromNumeric(toNumeric(-7n))).toBe(-7n);
	});
});

describe("assertInRange", () => {
	it("accepts the largest NUMERIC(38,18) value and rejects one unit more with 422 AMOUNT_TOO_LARGE", () => {
		expect(assertInRange(MAX_UNITS)).toBe(MAX_UNITS);
		expect(thrown(() => assertInRange(MAX_UNITS + 1n, "total"))).toMatchObject({
			code: 422,
			type: "AMOUNT_TOO_LARGE",
			data: { field: "total" },
		});
	});
});

describe("positiveAmount", () => {
	it("returns units for a positive amount", () => {
		expect(positiveAmount("0.5", 6)).toBe(5n * 10n ** 17n);
	});

	it.each(["0", "0.000", "0.000000"])("rejects zero (%j) with 422 INVALID_AMOUNT", value => {
		expect(thrown(() => positiveAmount(value, 6, "amount"))).toMatchObject({ code: 422, type: "INVALID_AMOUNT" });
	});

	it("still enforces the asset's decimals", () => {
		expect(thrown(() => positiveAmount("0.1234567", 6))).toMatchObject({ code: 422, type: "INVALID_AMOUNT" });
	});
});
