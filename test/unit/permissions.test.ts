import { describe, expect, it } from "vitest";
import { SCOPES, canViewOrder, hasScope } from "../../src/domain/permissions";
import type { OrderStatus } from "../../src/domain/types";
import { makeOrder, makeUser } from "./fixtures";

describe("hasScope", () => {
	it("grants exactly the scopes a user holds", () => {
		const user = makeUser("u", ["order:read", "claim:write"]);
		expect(hasScope(user, "order:read")).toBe(true);
		expect(hasScope(user, "claim:write")).toBe(true);
		expect(hasScope(user, "order:write")).toBe(false);
		expect(hasScope(user, "admin")).toBe(false);
	});

	it("admin implies every scope", () => {
		const admin = makeUser("a", ["admin"]);
		for (const scope of SCOPES) expect(hasScope(admin, scope)).toBe(true);
	});

	it("a user without scopes has none", () => {
		expect(hasScope(makeUser("u", []), "supply:read")).toBe(false);
	});
});

describe("canViewOrder", () => {
	const stranger = makeUser("stranger");
	const buyer = makeUser("buyer-1");
	const claimer = makeUser("claimer-1");
	const admin = makeUser("root", ["admin"]);

	it("open orders are visible to everyone", () => {
		expect(canViewOrder(stranger, makeOrder({ status: "open" }))).toBe(true);
	});

	it.each<OrderStatus>(["claimed", "completed", "cancelled", "expired"])("a %s order is visible only to buyer, claimer and admin", status => {
		const order = makeOrder({ status, claimerId: "claimer-1" });
		expect(canViewOrder(buyer, order)).toBe(true);
		expect(canViewOrder(claimer, order)).toBe(true);
		expect(canViewOrder(admin, order)).toBe(true);
		expect(canViewOrder(stranger, order)).toBe(false);
	});
});
