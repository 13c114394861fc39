import { describe, expect, it } from "vitest";
import { cacheChanges, listKey, mergePlans, ownLists, publicOrders, writePlan } from "../../src/lib/cache-keys";
import type { ReplEvent } from "../../src/replication/event-log";

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

describe("a created entity", () => {
	it("needs no tombstone, but its exact key and its owner's lists are still invalidated", () => {
		const p = writePlan({ supply: { ...supply, created: true } });
		expect(p.stale).toEqual([]);
		// A read before the write may have cached its absence.
		expect(p.del).toEqual(["supply.find:s1"]);
		expect(p.bump).toEqual(["supply:own:shopper"]);
	});

	it("only the created one of a batch goes without its tombstone", () => {
		const p = writePlan([{ order: { ...order, created: true } }, { supply }]);
		expect(p.stale).toEqual(["supply.stale:s1"]);
		expect(p.del).toEqual(["order.find:o1", "supply.find:s1"]);
	});
});

describe("cacheChanges", () => {
	const event = (aggregateId: string, version: number) => ({ aggregateId, version }) as ReplEvent;

	it("marks created what the delivery carries only in its first version", () => {
		const changes = cacheChanges(
			[
				{ aggregateType: "order", id: "o1", userId: "buyer" },
				{ aggregateType: "supply", id: "s1", userId: "shopper" },
				{ aggregateType: "claim", id: "c1", claimerId: "shopper" },
			],
			[event("o1", 1), event("s1", 3), event("c1", 1)],
		);
		expect(changes).toEqual([
			{ order: { id: "o1", userId: "buyer", created: true } },
			{ supply: { id: "s1", userId: "shopper", created: false } },
			{ claiming: { id: "c1", claimerId: "shopper", created: true } },
		]);
	});

	it("an entity created and changed again in one delivery, or changed without an event of its own, is not", () => {
		const changes = cacheChanges(
			[
				{ aggregateType: "order", id: "o1", userId: "buyer" },
				// A supply whose hold a claim event ended: no event of the supply in the delivery.
				{ aggregateType: "supply", id: "s9", userId: "shopper" },
			],
			[event("o1", 1), event("o1", 2)],
		);
		expect(writePlan(changes).stale).toEqual(["order.stale:o1", "supply.stale:s9"]);
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
