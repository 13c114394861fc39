// Which GETs the gateway may answer from the cache, and what it answers (src/http/cached-read.ts).
import { describe, expect, it } from "vitest";
import { cachedAnswer, cachedReadOf } from "../../src/http/cached-read";
import type { Order } from "../../src/domain/types";

const ID = "0b6f2c1e-6a4b-4c1e-9d2a-3f5e8c7b9a10";
const reader = { id: "alice", scopes: ["order:read", "supply:read", "claim:read"] };
const order = { id: ID, userId: "bob", claimerId: null, status: "open", amount: "1" } as unknown as Order;

describe("cachedReadOf", () => {
	it("names the find entry of /orders, /supplies and /claims by id", () => {
		expect(cachedReadOf(`/api/v1/orders/${ID}`)).toMatchObject({ entity: "order", scope: "order:read", key: `order.find:${ID}` });
		expect(cachedReadOf(`/api/v1/supplies/${ID}`)).toMatchObject({ entity: "supply", scope: "supply:read", key: `supply.find:${ID}` });
		expect(cachedReadOf(`/api/v1/claims/${ID}`)).toMatchObject({ entity: "claiming", scope: "claim:read", key: `claiming.find:${ID}` });
	});

	it("leaves every other spelling to moleculer-web", () => {
		for (const url of [
			`/api/v1/orders/${ID}/`,
			`/api/v1/orders/${ID}?x=1`,
			`/api/v1/orders/${ID}/complete`,
			`/api/v1//orders/${ID}`,
			`/api/v1/orders/${ID.slice(1)}`,
			`/api/v1/orders/${ID}:x`,
			`/api/v1/regions/${ID}`,
			"/api/v1/orders",
			`/api/v2/orders/${ID}`,
		])
			expect(cachedReadOf(url), url).toBeUndefined();
	});
});

describe("cachedAnswer", () => {
	const read = cachedReadOf(`/api/v1/orders/${ID}`)!;

	it("answers the action's view of a visible entity", () => {
		expect(cachedAnswer(read, reader, order)).toEqual({ id: ID, status: "open", amount: "1" });
		expect(cachedAnswer(read, { id: "bob", scopes: ["order:read"] }, order)).toEqual({ id: ID, status: "open", amount: "1", userId: "bob" });
	});

	it("leaves a miss, a cached not-found, a missing scope and a hidden entity to the action", () => {
		expect(cachedAnswer(read, reader, undefined)).toBeUndefined();
		expect(cachedAnswer(read, reader, null)).toBeUndefined();
		expect(cachedAnswer(read, { id: "alice", scopes: ["supply:read"] }, order)).toBeUndefined();
		expect(cachedAnswer(read, reader, { ...order, status: "claimed", claimerId: "carol" })).toBeUndefined();
		expect(cachedAnswer(read, { id: "carol", scopes: ["order:read"] }, { ...order, status: "claimed", claimerId: "carol" })).toBeDefined();
	});
});
