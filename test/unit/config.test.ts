import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, DEV_JWT_SECRET, loadConfig, parseAssets } from "../../config";

const SECRET = "a-production-secret-of-at-least-32-chars";

/** The error loadConfig throws for `env`; fails the test if it returns. */
function configError(env: Record<string, string>): ConfigError {
	try {
		loadConfig(env);
	} catch (err) {
		expect(err).toBeInstanceOf(ConfigError);
		return err as ConfigError;
	}
	throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe("loadConfig defaults", () => {
	const cfg = loadConfig({});

	it("starts a development node in the first region", () => {
		expect(cfg).toMatchObject({
			env: "development",
			region: "us-central1",
			regions: ["us-central1", "europe-west1", "asia-east1"],
			namespace: "wallet",
			port: 3000,
			logFormat: "pretty",
			migrateOnStart: true,
		});
	});

	it("uses the dev JWT secret and the default audience and issuer", () => {
		expect(cfg.jwt).toEqual({
			secret: DEV_JWT_SECRET,
			jwksUrl: undefined,
			audience: "wallet-api",
			issuer: "wallet-dev",
			clockToleranceSec: 5,
		});
		expect(cfg.embedded).toBe(true);
	});

	it("knows the default assets and limits", () => {
		expect(cfg.assets).toMatchObject({ ETH: { decimals: 18 }, USDC: { decimals: 6 }, BTC: { decimals: 8 } });
		expect(cfg.orderTtlSec).toBe(86400);
		expect(cfg.rateLimit).toEqual({ points: 600, windowSec: 60, ipPoints: 6000, syncMs: 100 });
	});

	it("lingers the relay longer when no client waits for the publish (local durability) than when one does", () => {
		expect(cfg.replication.relayLingerMs).toBe(25);
		expect(loadConfig({ CLAIM_DURABILITY: "replicated" }).replication.relayLingerMs).toBe(10);
		expect(loadConfig({ CLAIM_DURABILITY: "replicated", RELAY_LINGER_MS: "0" }).replication.relayLingerMs).toBe(0);
		expect(loadConfig({ RELAY_LINGER_MS: "5" }).replication.relayLingerMs).toBe(5);
	});

	it("gzips a relay's publish from 16 KiB of events on, unless told otherwise", () => {
		expect(loadConfig({}).replication.kafka.compressFromBytes).toBe(16384);
		expect(loadConfig({ KAFKA_COMPRESS_FROM_BYTES: "0" }).replication.kafka.compressFromBytes).toBe(0);
		expect(() => loadConfig({ KAFKA_COMPRESS_FROM_BYTES: "-1" })).toThrow(/KAFKA_COMPRESS_FROM_BYTES/);
	});

	it("treats empty and blank variables as unset", () => {
		expect(loadConfig({ PORT: "", NAMESPACE: "   ", REGION: "" })).toMatchObject({ port: 3000, namespace: "wallet", region: "us-central1" });
	});
});

describe("loadConfig validation", () => {
	it("reads valid overrides", () => {
		const cfg = loadConfig({ PORT: "8080", MIGRATE_ON_START: "off", REGIONS: "eu, us", REGION: "us", LOG_FORMAT: "json" });
		expect(cfg).toMatchObject({ port: 8080, migrateOnStart: false, regions: ["eu", "us"], region: "us", logFormat: "json" });
	});

	it.each([
		["PORT", "abc"],
		["PORT", "3.5"],
		["PORT", "70000"],
		["PG_POOL_MAX", "0"],
		["CLAIM_HOLD_SEC", "-1"],
		["REQUEST_TIMEOUT_MS", "10"],
	])("rejects %s=%j with an error naming the variable", (name, value) => {
		expect(configError({ [name]: value }).message).toContain(name);
	});

	it("rejects ORDER_TTL_SEC above ORDER_MAX_TTL_SEC", () => {
		expect(configError({ ORDER_MAX_TTL_SEC: "3600", ORDER_TTL_SEC: "7200" }).message).toContain("ORDER_TTL_SEC");
	});

	it("rejects a boolean that is not one", () => {
		expect(configError({ MIGRATE_ON_START: "maybe" }).message).toContain("MIGRATE_ON_START");
	});

	it("requires REGION to be one of REGIONS", () => {
		expect(configError({ REGION: "mars-north1" }).message).toContain("mars-north1");
		expect(configError({ REGIONS: "eu,us", REGION: "asia" }).message).toContain("REGION");
	});

	it("rejects an unknown NODE_ENV and LOG_FORMAT", () => {
		expect(configError({ NODE_ENV: "staging" }).message).toContain("NODE_ENV");
		expect(configError({ LOG_FORMAT: "xml" }).message).toContain("LOG_FORMAT");
	});

	it("refuses production without JWT_SECRET or JWT_JWKS_URL", () => {
		expect(configError({ NODE_ENV: "production" }).message).toMatch(/JWT_SECRET|JWT_JWKS_URL/);
	});

	it("accepts production with either a secret or a JWKS URL, never falling back to the dev secret", () => {
		expect(loadConfig({ NODE_ENV: "production", JWT_SECRET: SECRET }).jwt.secret).toBe(SECRET);
		const jwks = loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: "https://auth.example.com/.well-known/jwks.json" });
		expect(jwks.jwt.secret).toBeUndefined();
		expect(jwks.logFormat).toBe("json");
	});

	it("rejects a JWT_SECRET shorter than 32 characters", () => {
		expect(configError({ JWT_SECRET: "too-short" }).message).toContain("JWT_SECRET");
		expect(configError({ NODE_ENV: "production", JWT_SECRET: "x".repeat(31) }).message).toContain("JWT_SECRET");
		expect(loadConfig({ JWT_SECRET: "x".repeat(32) }).jwt.secret).toBe("x".repeat(32));
	});

	it("rejects a bad ASSETS variable", () => {
		expect(configError({ ASSETS: "ETH:99" }).message).toContain("ASSETS");
	});
});

describe("keys fail closed", () => {
	const INTERNAL = "an-internal-secret-of-at-least-32-chars!";
	const servers = {
		DATABASE_URL: "postgres://db.example/wallet",
		NATS_URL: "nats://nats.example:4222",
		REDIS_URL: "redis://redis.example:6379",
	};

	it.each([
		["all three servers", servers],
		["DATABASE_URL", { DATABASE_URL: servers.DATABASE_URL }],
		["NATS_URL", { NATS_URL: servers.NATS_URL }],
		["REDIS_URL", { REDIS_URL: servers.REDIS_URL }],
	])("refuses to start with %s but no JWT_SECRET or JWT_JWKS_URL, whatever NODE_ENV", (_, env) => {
		for (const NODE_ENV of ["development", "test"]) {
			const message = configError({ ...env, NODE_ENV, INTERNAL_SECRET: INTERNAL }).message;
			expect(message).toContain("JWT_SECRET");
			expect(message).toContain("JWT_JWKS_URL");
		}
	});

	it("gives the development secret to the embedded default only", () => {
		expect(loadConfig({}).jwt.secret).toBe(DEV_JWT_SECRET);
		expect(loadConfig({ NODE_ENV: "test" }).jwt.secret).toBe(DEV_JWT_SECRET);
		const real = loadConfig({ ...servers, JWT_SECRET: SECRET, INTERNAL_SECRET: INTERNAL });
		expect(real.jwt.secret).toBe(SECRET);
		expect(real.embedded).toBe(false);
		const jwks = loadConfig({ ...servers, JWT_JWKS_URL: "https://idp.example/jwks.json", INTERNAL_SECRET: INTERNAL });
		expect(jwks.jwt.secret).toBeUndefined();
	});

	it("refuses a non-embedded node without INTERNAL_SECRET, and a short or reused one", () => {
		expect(configError({ ...servers, JWT_SECRET: SECRET }).message).toContain("INTERNAL_SECRET");
		expect(configError({ NATS_URL: servers.NATS_URL, JWT_SECRET: SECRET }).message).toContain("INTERNAL_SECRET");
		expect(configError({ ...servers, JWT_SECRET: SECRET, INTERNAL_SECRET: "short" }).message).toContain("INTERNAL_SECRET");
		expect(configError({ ...servers, JWT_SECRET: SECRET, INTERNAL_SECRET: SECRET }).message).toContain("INTERNAL_SECRET");
		expect(loadConfig({ ...servers, JWT_SECRET: SECRET, INTERNAL_SECRET: INTERNAL }).internal.secret).toBe(INTERNAL);
	});

	it("gives the embedded default an internal secret of its own, never a written-down one", async () => {
		const a = loadConfig({}).internal.secret;
		// One per process: the embedded default's regions share the process and verify each other's calls.
		expect(loadConfig({ REGION: "europe-west1" }).internal.secret).toBe(a);
		expect(a.length).toBeGreaterThanOrEqual(32);
		expect(a).not.toBe(DEV_JWT_SECRET);
		expect(fs.readFileSync(path.join(__dirname, "..", "..", "config", "index.ts"), "utf8")).not.toContain(a);
		// Another process draws another.
		const { execFileSync } = await import("node:child_process");
		const other = execFileSync(process.execPath, ["--import", "tsx", "-e", "console.log(require('./config').loadConfig({}).internal.secret)"], {
			cwd: path.join(__dirname, "..", ".."),
			encoding: "utf8",
		}).trim();
		expect(other.length).toBeGreaterThanOrEqual(32);
		expect(other).not.toBe(a);
	});

	it("lets tools that hold no keys (migrations) load a real configuration", () => {
		expect(loadConfig({ DATABASE_URL: servers.DATABASE_URL }, { keys: false }).databaseUrl).toBe(servers.DATABASE_URL);
	});

	it("reads JWT_CLOCK_TOLERANCE_SEC and INTERNAL_ASSERTION_TTL_SEC within bounds", () => {
		const cfg = loadConfig({ JWT_CLOCK_TOLERANCE_SEC: "0", INTERNAL_ASSERTION_TTL_SEC: "10" });
		expect(cfg.jwt.clockToleranceSec).toBe(0);
		expect(cfg.internal.assertionTtlSec).toBe(10);
		expect(configError({ JWT_CLOCK_TOLERANCE_SEC: "3600" }).message).toContain("JWT_CLOCK_TOLERANCE_SEC");
		expect(configError({ INTERNAL_ASSERTION_TTL_SEC: "0" }).message).toContain("INTERNAL_ASSERTION_TTL_SEC");
	});
});

describe("NATS credentials", () => {
	const SEED = "SUAM" + "A".repeat(54);

	it("reads user/password, token, NKey seed and TLS files", () => {
		expect(loadConfig({ NATS_USER: "wallet", NATS_PASSWORD: "pw" }).nats).toMatchObject({ user: "wallet", password: "pw" });
		expect(loadConfig({ NATS_TOKEN: "t0ken" }).nats).toMatchObject({ token: "t0ken" });
		expect(loadConfig({ NATS_NKEY_SEED: SEED }).nats).toMatchObject({ nkeySeed: SEED });
		expect(loadConfig({ NATS_TLS_CA: "/ca.pem", NATS_TLS_CERT: "/c.pem", NATS_TLS_KEY: "/k.pem" }).nats.tls).toEqual({
			ca: "/ca.pem",
			cert: "/c.pem",
			key: "/k.pem",
		});
		expect(loadConfig({}).nats).toEqual({ tls: undefined });
	});

	it.each([
		[{ NATS_USER: "wallet" }, "NATS_PASSWORD"],
		[{ NATS_PASSWORD: "pw" }, "NATS_USER"],
		[{ NATS_USER: "wallet", NATS_PASSWORD: "pw", NATS_TOKEN: "t" }, "NATS_TOKEN"],
		[{ NATS_TOKEN: "t", NATS_NKEY_SEED: SEED }, "NATS_NKEY_SEED"],
		[{ NATS_NKEY_SEED: "not-a-seed" }, "NATS_NKEY_SEED"],
		[{ NATS_TLS_CERT: "/c.pem" }, "NATS_TLS_KEY"],
	])("rejects %j naming %s", (env, name) => {
		expect(configError(env).message).toContain(name);
	});
});

describe("parseAssets", () => {
	it("parses SYMBOL:DECIMALS lists, ignoring spaces and empty entries", () => {
		expect(parseAssets(" ETH:18 , USDC:6,,BTC:8, ")).toEqual({
			ETH: { decimals: 18 },
			USDC: { decimals: 6 },
			BTC: { decimals: 8 },
		});
		expect(parseAssets("JPYC:0")).toEqual({ JPYC: { decimals: 0 } });
	});

	it.each(["eth:18", "ETH", "ETH:", "ETH:19", "ETH:-1", "ETH:1.5", "E:2", "ETH:18:1", "ETH=18"])("rejects %j", entry => {
		expect(() => parseAssets(`USDC:6,${entry}`)).toThrow(ConfigError);
	});

	it("requires at least one asset", () => {
		expect(() => parseAssets("")).toThrow(ConfigError);
		expect(() => parseAssets(" , ")).toThrow(/at least one/);
	});
});

describe("list variables", () => {
	it("ignores empty entries in REGIONS and rejects an asset named twice", () => {
		expect(loadConfig({ REGIONS: "eu,us,", REGION: "eu" }).regions).toEqual(["eu", "us"]);
		expect(() => parseAssets("ETH:18,ETH:6")).toThrow(/ETH twice/);
	});
});

describe("claims across regions and failpoints", () => {
	it("wants HOLD_CONFIRM_SEC longer than a claim's deadline, so no check voids a claim in flight", () => {
		expect(loadConfig({ HOLD_CONFIRM_SEC: "11", REQUEST_TIMEOUT_MS: "10000" }).holdConfirmSec).toBe(11);
		expect(() => loadConfig({ HOLD_CONFIRM_SEC: "10", REQUEST_TIMEOUT_MS: "10000" })).toThrow(/HOLD_CONFIRM_SEC \(10 s\) must be longer than REQUEST_TIMEOUT_MS/);
	});

	it("reads FAILPOINTS for tests and drills, and refuses them in production", () => {
		expect(loadConfig({ FAILPOINTS: "after-hold=pause:1500" }).failpoints).toEqual({ "after-hold": { pauseMs: 1500 } });
		expect(loadConfig({}).failpoints).toEqual({});
		expect(() => loadConfig({ FAILPOINTS: "after-hold=crash" })).toThrow(/FAILPOINTS entry "after-hold=crash"/);
		expect(() => loadConfig({ FAILPOINTS: "nowhere=pause:1" })).toThrow(/NAME one of after-hold/);
		expect(() => loadConfig({ NODE_ENV: "production", JWT_SECRET: "x".repeat(32), FAILPOINTS: "after-hold=pause:1" })).toThrow(/refused in production/);
	});
});
