import { describe, expect, it } from "vitest";
import { listKey, mergePlans, ownLists, publicOrders, writePlan } from "../../src/lib/cache-keys";

const order = { id: "o1", userId: "buyer", claimerId: "shopper" };
const supply = { id: "s1", userId: "shopper" };
const claim = { id: "c1", claimerId: "shopper" };

describe("writePlan", () => {
	it("a claim touches three exact keys, three stale copies and the owners' generations, nothing else", () => {
		const p = writePlan({ order, supply, claiming: claim });
		expect(p.del).toEqual(["order.find:o1", "supply.find:s1", "claiming.find:c1"]);
		expect(p.stale).toEqual(["order.stale:o1", "supply.stale:s1", "claiming.stale:c1"]);
		expect(p.bump.sort()).toEqual(["claiming:own:shopper", "order:own:buyer", "order:public", "supply:own:shopper"]);
	});

	it("a supply write bumps only its owner's lists", () => {
		expect(writePlan({ supply }).bump).toEqual(["supply:own:shopper"]);
	});

	it("a bare id, owner unknown, bumps every owner's lists of that kind", () => {
		const p = writePlan({ supply: "s1", order: "o1" });
		expect(p.bump).toEqual(["supply:own:*", "order:own:*", "order:public"]);
		// ...which every own list carries.
		expect(ownLists("supply", "u")).toContain("supply:own:*");
		expect(publicOrders()).toContain("order:public");
	});

	it("batches and merges without repeats, each plan with its own id", () => {
		const a = writePlan([{ order }, { order: { ...order, id: "o2" } }]);
		expect(a.del).toEqual(["order.find:o1", "order.find:o2"]);
		expect(a.bump.sort()).toEqual(["order:own:buyer", "order:public"]);
		const b = writePlan({ order });
		expect(b.id).not.toBe(a.id);
		expect(mergePlans([a, b]).del).toEqual(["order.find:o1", "order.find:o2"]);
	});
});

describe("listKey", () => {
	const keys = ["#user.id", "status", "page", "pageSize"];
	it("normalises paging as the query applies it", () => {
		const k = (page: unknown, pageSize: unknown) => listKey("supply.list", ["3", "4"], keys, ["u", undefined, page, pageSize]);
		expect(k(1, 20)).toBe(k(undefined, undefined));
		expect(k("01", 20)).toBe(k(1, 20));
		expect(k(1, 1000)).toBe(k(1, 100));
		expect(k(2, 20)).not.toBe(k(1, 20));
	});

	it("carries the generations", () => {
		expect(listKey("supply.list", ["3", "4"], keys, ["u"])).not.toBe(listKey("supply.list", ["3", "5"], keys, ["u"]));
	});
});
