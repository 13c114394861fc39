// The ioredis options every Redis client of a node gets (src/lib/redis.ts), against the real Redis.
import Redis from "ioredis";
import { describe, expect, it } from "vitest";
import { redisOptions } from "../../src/lib/redis";
import { REDIS_URL } from "../helpers/env";

describe("redisOptions", () => {
	it("fails fast against the real Redis: no offline queue, so a command before the connection is refused at once", async () => {
		const early = new Redis(redisOptions(REDIS_URL));
		try {
			await expect(early.get("redis-options-test")).rejects.toThrow(/enableOfflineQueue/);
			if (early.status !== "ready") await new Promise(resolve => early.once("ready", resolve));
			expect(await early.get(`redis-options-test:${process.pid}:none`)).toBeNull();
		} finally {
			early.disconnect();
		}
	});

	it("reads the URL's credentials, database and TLS", () => {
		expect(redisOptions("rediss://u%40x:p%3Aw@cache.internal:6380/3")).toMatchObject({
			host: "cache.internal",
			port: 6380,
			username: "u@x",
			password: "p:w",
			db: 3,
			tls: {},
		});
		expect(redisOptions("redis://127.0.0.1")).toMatchObject({ port: 6379, db: 0, tls: undefined });
	});
});
