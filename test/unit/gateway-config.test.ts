// The gateway's own settings: listen address, the per-address limit, the readiness cache.
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { TEST_INTERNAL_SECRET, TEST_JWT_SECRET } from "../helpers/env";

// A configuration with a database must name its keys (only the embedded default may run without them).
const KEYS = { JWT_SECRET: TEST_JWT_SECRET, INTERNAL_SECRET: TEST_INTERNAL_SECRET };

describe("gateway configuration", () => {
	it("listens on loopback for the embedded default and on all interfaces once a database is configured", () => {
		expect(loadConfig({}).host).toBe("127.0.0.1");
		expect(loadConfig({ ...KEYS, DATABASE_URL: "postgres://db/wallet" }).host).toBe("0.0.0.0");
		expect(loadConfig({ HOST: "10.0.0.5" }).host).toBe("10.0.0.5");
		expect(loadConfig({ ...KEYS, DATABASE_URL: "postgres://db/wallet", HOST: "127.0.0.1" }).host).toBe("127.0.0.1");
	});

	it("limits each address to 10x the user limit unless told, 0 turning it off", () => {
		expect(loadConfig({}).rateLimit).toMatchObject({ points: 600, ipPoints: 6000, syncMs: 100 });
		expect(loadConfig({ RATE_LIMIT: "50" }).rateLimit.ipPoints).toBe(500);
		expect(loadConfig({ RATE_LIMIT_IP: "0" }).rateLimit.ipPoints).toBe(0);
		expect(() => loadConfig({ RATE_LIMIT_IP: "-1" })).toThrow(/RATE_LIMIT_IP/);
		expect(loadConfig({}).readyCacheMs).toBe(1000);
		expect(loadConfig({ READY_CACHE_MS: "0" }).readyCacheMs).toBe(0);
	});

	it("answers cached reads in front of moleculer-web unless CACHED_READS is off", () => {
		expect(loadConfig({}).cachedReads).toBe(true);
		expect(loadConfig({ CACHED_READS: "false" }).cachedReads).toBe(false);
		expect(() => loadConfig({ CACHED_READS: "sometimes" })).toThrow(/CACHED_READS/);
	});
});
