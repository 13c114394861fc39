// Rate limiting counts every request before anything costly (a token's verification included), per
// client address and then per user; readiness is answered from a short-lived probe and says no more
// than ready or not.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client } from "../helpers/http";

let region: Region & { db: TestDatabase };
let api: any;

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nodes: [["api", "supply", "order", "claiming"]],
		// Windows are aligned to the clock: an hour-long one keeps a test's few requests inside one window.
		env: { RATE_LIMIT: "2", RATE_LIMIT_IP: "4", RATE_LIMIT_WINDOW_SEC: "3600", READY_CACHE_MS: "60000" },
	});
	api = region.brokers[0].getLocalService("api");
});

afterAll(async () => {
	await region?.stop();
});

describe("the rate limit", () => {
	it("counts a request with a bad token against its address, before verifying the token", async () => {
		let verified = 0;
		// The gateway verifies bearer tokens through its identity (src/lib/identity.ts): count those calls.
		const identity = api.identity;
		api.identity = {
			...identity,
			bearer: (token: string) => {
				verified++;
				return identity.bearer(token);
			},
		};
		const forger = new Client(region.apiUrl, "not.a.token");
		const replies = [];
		for (let i = 0; i < 6; i++) replies.push(await forger.get("/api/v1/supplies"));
		expect(replies.map(r => r.status)).toEqual([401, 401, 401, 401, 429, 429]);
		expect(replies.map(r => r.headers.get("x-ratelimit-remaining"))).toEqual(["3", "2", "1", "0", "0", "0"]);
		expect(replies[0].headers.get("x-ratelimit-limit")).toBe("4");
		expect(replies[4].body.error.code).toBe("RATE_LIMITED");
		expect(Number(replies[4].headers.get("retry-after"))).toBeGreaterThan(0);
		// The refused requests cost no verification.
		expect(verified).toBe(4);
		// A good token from the same address is refused too; health checks are not counted.
		const good = await Client.as(region.apiUrl, "limits-user");
		expect((await good.get("/api/v1/supplies")).status).toBe(429);
		expect((await fetch(`${region.apiUrl}/health/live`)).status).toBe(200);
		api.identity = identity;
	});
});

describe("readiness", () => {
	it("is probed once per READY_CACHE_MS however often it is asked, and says only ready or not", async () => {
		let probes = 0;
		const checks = api.checks;
		api.lastReadiness = undefined;
		api.checks = async () => {
			probes++;
			return checks.call(api);
		};
		const answers = await Promise.all(Array.from({ length: 5 }, () => fetch(`${region.apiUrl}/health/ready`)));
		for (let i = 0; i < 5; i++) answers.push(await fetch(`${region.apiUrl}/health/ready`));
		expect(answers.map(a => a.status)).toEqual(Array(10).fill(200));
		expect(await answers[0].json()).toEqual({ status: "ready" });
		expect(probes).toBe(1);

		// Down: a 503 without the dependencies' details, which operators get from api.health.
		api.lastReadiness = undefined;
		api.checks = async () => ({ postgres: "ok", redis: "down", transporter: "disabled" });
		const down = await fetch(`${region.apiUrl}/health/ready`);
		expect(down.status).toBe(503);
		const body: any = await down.json();
		expect(body.error.code).toBe("NOT_READY");
		expect(JSON.stringify(body)).not.toMatch(/redis|postgres|transporter/);
		api.checks = checks;
		api.lastReadiness = undefined;
		expect(await region.brokers[0].call("api.health")).toEqual({
			status: "ready",
			region: "us-central1",
			checks: { postgres: "ok", redis: "ok", transporter: "disabled" },
		});
	});
});
