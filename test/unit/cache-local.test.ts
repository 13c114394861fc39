import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { brokerOptions } from "../../moleculer.config";
import { writePlan } from "../../src/lib/cache-keys";
import { LocalCacher } from "../../src/lib/cache-local";

let broker: ServiceBroker;
let cacher: LocalCacher;

beforeAll(async () => {
	const cfg = loadConfig({ NODE_ENV: "test", CACHE_MAX_ENTRIES: "5", METRICS_ENABLED: "false", LOG_LEVEL: "error" });
	broker = new ServiceBroker(brokerOptions(cfg, { logger: false }));
	await broker.start();
	cacher = broker.cacher as unknown as LocalCacher;
});

afterAll(() => broker?.stop());

describe("the memory cache", () => {
	it("is bounded by CACHE_MAX_ENTRIES", async () => {
		for (let i = 0; i < 50; i++) await cacher.set(`x.find:${i}`, { i });
		expect((cacher as any).cache.size).toBe(5);
		expect(await cacher.get("x.find:49")).toEqual({ i: 49 });
		expect(await cacher.get("x.find:0")).toBeUndefined();
	});

	it("bumps generations, and a forgotten generation never comes back with an old value", async () => {
		const [g1] = (await cacher.readGenerations(["supply:own:a"]))!;
		expect((await cacher.readGenerations(["supply:own:a"]))![0]).toBe(g1);
		await cacher.applyWrite(writePlan({ supply: { id: "s", userId: "a" } }));
		const [g2] = (await cacher.readGenerations(["supply:own:a"]))!;
		expect(g2).not.toBe(g1);
		// More users than the bound: "a" is forgotten, and comes back above every value used.
		for (let i = 0; i < 10; i++) await cacher.readGenerations([`supply:own:u${i}`]);
		const [g3] = (await cacher.readGenerations(["supply:own:a"]))!;
		expect(Number(g3)).toBeGreaterThan(Number(g2));
	});

	it("applies a broadcast plan once", async () => {
		const plan = writePlan({ supply: { id: "s", userId: "once" } });
		const [g0] = (await cacher.readGenerations(["supply:own:once"]))!;
		await cacher.applyWrite(plan);
		const [g1] = (await cacher.readGenerations(["supply:own:once"]))!;
		await cacher.applyWrite(plan);
		expect((await cacher.readGenerations(["supply:own:once"]))![0]).toBe(g1);
		expect(g1).not.toBe(g0);
	});

	it("a read that raced a write stores neither the entity nor its stale copy", async () => {
		const find = { key: "order.find:r", ttl: 30 };
		const stale = { key: "order.stale:r", ttl: 60 };
		const before = await cacher.staleToken(stale.key);
		await cacher.applyWrite(writePlan({ order: "r" }));
		expect(await cacher.saveFound(find, stale, before, { status: "open" })).toBe(false);
		expect(await cacher.readStale(stale.key)).toBeUndefined();
		expect(await cacher.get(find.key)).toBeUndefined();
		const after = await cacher.staleToken(stale.key);
		expect(await cacher.saveFound(find, stale, after, { status: "claimed" })).toBe(true);
		expect(await cacher.readStale(stale.key)).toEqual({ status: "claimed" });
		expect(await cacher.get(find.key)).toEqual({ status: "claimed" });
		// The next write tombstones both.
		await cacher.applyWrite(writePlan({ order: "r" }));
		expect(await cacher.readStale(stale.key)).toBeUndefined();
		expect(await cacher.get(find.key)).toBeUndefined();
	});
});
