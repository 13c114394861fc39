import { describe, expect, it } from "vitest";
import { parseAmount } from "../../src/domain/money";
import { decideAmountChange, decideSupplyTransition, type SupplyCommand } from "../../src/domain/supply";
import type { SupplyStatus } from "../../src/domain/types";
import { makeSupply, thrown } from "./fixtures";

const units = (s: string) => parseAmount(s, 18);

describe("decideSupplyTransition", () => {
	it.each<[SupplyStatus, SupplyCommand, SupplyStatus]>([
		["active", "pause", "paused"],
		["paused", "resume", "active"],
		["active", "close", "closed"],
		["paused", "close", "closed"],
	])("%s --%s--> %s", (from, cmd, to) => {
		expect(decideSupplyTransition(makeSupply({ status: from }), cmd)).toBe(to);
	});

	it.each<[SupplyStatus, SupplyCommand]>([
		["paused", "pause"],
		["active", "resume"],
		["closed", "pause"],
		["closed", "resume"],
		["closed", "close"],
	])("refuses %s --%s--> with 409 INVALID_TRANSITION", (from, cmd) => {
		const err = thrown(() => decideSupplyTransition(makeSupply({ id: "s-9", status: from }), cmd));
		expect(err).toMatchObject({ code: 409, type: "INVALID_TRANSITION", data: { id: "s-9", status: from } });
	});

	it("refuses to close a supply with reserved funds (409 SUPPLY_HAS_RESERVATIONS)", () => {
		const supply = makeSupply({ status: "paused", reserved: "0.000001" });
		expect(thrown(() => decideSupplyTransition(supply, "close"))).toMatchObject({
			code: 409,
			type: "SUPPLY_HAS_RESERVATIONS",
			data: { id: supply.id, reserved: "0.000001" },
		});
	});

	it("closes a supply whose reserved is zero written as a NUMERIC", () => {
		expect(decideSupplyTransition(makeSupply({ reserved: "0.000000000000000000", spent: "40" }), "close")).toBe("closed");
	});

	it("pausing is allowed while funds are reserved", () => {
		expect(decideSupplyTransition(makeSupply({ reserved: "5" }), "pause")).toBe("paused");
	});
});

describe("decideAmountChange", () => {
	const committed = makeSupply({ amount: "100", reserved: "30", spent: "20.5", available: "49.5" });

	it("allows raising the amount", () => {
		expect(decideAmountChange(committed, units("250"))).toBe(units("250"));
	});

	it("allows lowering exactly to reserved + spent", () => {
		expect(decideAmountChange(committed, units("50.5"))).toBe(units("50.5"));
	});

	it("refuses going below reserved + spent with 409 AMOUNT_BELOW_COMMITTED", () => {
		expect(thrown(() => decideAmountChange(committed, units("50.499999")))).toMatchObject({
			code: 409,
			type: "AMOUNT_BELOW_COMMITTED",
			data: { reserved: "30", spent: "20.5" },
		});
	});

	it("refuses a zero amount on an uncommitted supply with 422 INVALID_AMOUNT", () => {
		expect(thrown(() => decideAmountChange(makeSupply(), 0n))).toMatchObject({ code: 422, type: "INVALID_AMOUNT" });
	});

	it("refuses any change to a closed supply with 409", () => {
		const err = thrown(() => decideAmountChange(makeSupply({ status: "closed" }), units("500")));
		expect(err).toMatchObject({ code: 409, type: "INVALID_TRANSITION", data: { status: "closed" } });
	});

	it("allows changes on a paused supply", () => {
		expect(decideAmountChange(makeSupply({ status: "paused" }), units("1"))).toBe(units("1"));
	});
});
