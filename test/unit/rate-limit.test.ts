// The gateway's rate limiter decides in memory and meets the other gateways' counts in Redis in batches.
import Redis from "ioredis";
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { RateLimiter, redisCounterStore, type CounterStore } from "../../src/lib/rate-limit";
import { REDIS_URL } from "../helpers/env";

/** A store that records every batch it is sent. */
function countingStore(fail = false) {
	const totals = new Map<string, number>();
	const calls: { key: string; delta: number }[][] = [];
	const store: CounterStore = {
		async add(batch) {
			calls.push(batch);
			if (fail) throw new Error("redis down");
			return batch.map(({ key, delta }) => {
				totals.set(key, (totals.get(key) ?? 0) + delta);
				return totals.get(key)!;
			});
		},
	};
	return { store, calls, totals };
}

const clock = (start = 1_000_000) => {
	const c = { t: start, now: () => c.t };
	return c;
};

describe("RateLimiter", () => {
	it("decides without touching the store; one batch carries a whole interval's counts", async () => {
		const { store, calls } = countingStore();
		const limiter = new RateLimiter({ points: 5000, windowSec: 60, keyPrefix: "t", store, syncMs: 60_000 });
		for (let i = 0; i < 1000; i++) expect(limiter.consume("user:a").error).toBeUndefined();
		limiter.consume("ip:1");
		expect(calls).toHaveLength(0);
		await limiter.sync();
		expect(calls).toHaveLength(1);
		expect(calls[0].map(b => b.delta).sort((a, b) => a - b)).toEqual([1, 1000]);
		await limiter.sync(); // nothing new: no call
		expect(calls).toHaveLength(1);
		await limiter.close();
	});

	it("refuses past the limit with 429, Retry-After and the X-RateLimit headers", () => {
		const c = clock(60_000 * 100 + 15_000);
		const limiter = new RateLimiter({ points: 3, windowSec: 60, keyPrefix: "t", now: c.now });
		const d = [1, 2, 3, 4].map(() => limiter.consume("user:a"));
		expect(d.map(x => x.headers["X-RateLimit-Remaining"])).toEqual(["2", "1", "0", "0"]);
		expect(d.slice(0, 3).every(x => !x.error)).toBe(true);
		expect(d[3].error).toMatchObject({ code: 429, type: "RATE_LIMITED" });
		expect(d[3].headers["Retry-After"]).toBe("45");
		expect(d[3].headers["X-RateLimit-Reset"]).toBe(String(60 * 101));
		expect(limiter.consume("user:b").error).toBeUndefined();
		c.t += 45_000; // the next window
		expect(limiter.consume("user:a").error).toBeUndefined();
	});

	it("keeps limiting on its own while the store fails, and sends the counts once it answers", async () => {
		const failing = countingStore(true);
		const limiter = new RateLimiter({ points: 2, windowSec: 60, keyPrefix: "t", store: failing.store, syncMs: 60_000 });
		limiter.consume("k");
		await limiter.sync();
		limiter.consume("k");
		await limiter.sync();
		expect(limiter.consume("k").error).toMatchObject({ code: 429 });
		// The two unsent counts are resent together.
		expect(failing.calls.at(-1)).toEqual([expect.objectContaining({ delta: 2 })]);
	});

	it("still counts what it is sending while the sync is in flight", async () => {
		let answer: (totals: number[]) => void = () => undefined;
		let held = true;
		const slow: CounterStore = {
			add: batch => (held ? new Promise(res => (answer = () => res(batch.map(b => b.delta)))) : Promise.resolve(batch.map(b => b.delta))),
		};
		const limiter = new RateLimiter({ points: 4, windowSec: 60, keyPrefix: "t", store: slow, syncMs: 60_000 });
		const remaining = () => limiter.consume("k").headers["X-RateLimit-Remaining"];
		expect([remaining(), remaining()]).toEqual(["3", "2"]);
		const syncing = limiter.sync();
		expect(remaining()).toBe("1");
		held = false;
		answer([]);
		await syncing;
		expect(remaining()).toBe("0");
		await limiter.close();
	});

	it("keeps memory bounded under many keys", () => {
		const limiter = new RateLimiter({ points: 10, windowSec: 60, keyPrefix: "t", maxKeys: 1000 });
		for (let i = 0; i < 50_000; i++) limiter.consume(`ip:${i}`);
		expect(limiter.size).toBeLessThanOrEqual(1000);
	});

	describe("shared through Redis by two gateways", () => {
		const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
		afterAll(() => redis.disconnect());

		it("each learns the other's counts at its next sync", async () => {
			const prefix = `test-rl-${randomBytes(4).toString("hex")}`;
			const opts = { points: 5, windowSec: 60, keyPrefix: prefix, store: redisCounterStore(redis), syncMs: 60_000 };
			const a = new RateLimiter(opts);
			const b = new RateLimiter(opts);
			for (let i = 0; i < 3; i++) expect(a.consume("user:x").error).toBeUndefined();
			await a.sync();
			expect(b.consume("user:x").error).toBeUndefined(); // B has not heard of A yet: 4 in all
			await b.sync(); // B sends 1, reads 4
			expect(b.consume("user:x").error).toBeUndefined(); // the 5th
			expect(b.consume("user:x").error).toMatchObject({ code: 429 });
			await b.sync();
			await a.sync(); // nothing to send: A learns at its next own count
			a.consume("user:x");
			await a.sync();
			expect(a.consume("user:x").error).toMatchObject({ code: 429 });
			const keys = await redis.keys(`${prefix}:*`);
			expect(keys).toHaveLength(1);
			expect(Number(await redis.get(keys[0]))).toBe(6);
			expect(await redis.pttl(keys[0])).toBeGreaterThan(60_000);
			await redis.del(...keys);
			await Promise.all([a.close(), b.close()]);
		});
	});
});
