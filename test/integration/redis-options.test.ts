// The ioredis options every Redis client of a node gets (src/lib/redis.ts), against the real Redis.
import Redis from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { redisOptions } from "../../src/lib/redis";
import { REDIS_URL } from "../helpers/env";

const client = new Redis(redisOptions(REDIS_URL));
afterAll(() => client.disconnect());

describe("redisOptions", () => {
	it("sends the commands of one tick together (auto-pipelining), each still answered on its own", async () => {
		// Fail-fast clients keep no offline queue: wait until connected.
		if (client.status !== "ready") await new Promise(resolve => client.once("ready", resolve));
		const key = `redis-options-test:${process.pid}`;
		const replies = [client.set(key, "v", "EX", 60), ...Array.from({ length: 20 }, () => client.get(key)), client.get(`${key}:none`)];
		// Queued for one write, not written one by one.
		expect(client.autoPipelineQueueSize).toBe(replies.length);
		const answers = await Promise.all(replies);
		expect(answers[0]).toBe("OK");
		expect(answers.slice(1, 21)).toEqual(Array(20).fill("v"));
		expect(answers[21]).toBeNull();
		expect(client.autoPipelineQueueSize).toBe(0);
	});

	it("reads the URL's credentials, database and TLS", () => {
		expect(redisOptions("rediss://u%40x:p%3Aw@cache.internal:6380/3")).toMatchObject({
			host: "cache.internal",
			port: 6380,
			username: "u@x",
			password: "p:w",
			db: 3,
			tls: {},
			enableAutoPipelining: true,
		});
		expect(redisOptions("redis://127.0.0.1")).toMatchObject({ port: 6379, db: 0, tls: undefined });
	});
});
