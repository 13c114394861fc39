// Typed configuration from environment variables. Every variable is listed in the README;
// a bad value stops the process at start with a message that names it.
import path from "node:path";

export interface AssetConfig {
	decimals: number;
}

export interface Config {
	env: "development" | "production" | "test";
	region: string;
	regions: string[];
	namespace: string;
	nodeID?: string;
	port: number;
	/** The gateway's listen address: loopback for the embedded default, all interfaces otherwise. */
	host: string;
	databaseUrl?: string;
	dataDir: string;
	embeddedPgPort: number;
	pgPoolMax: number;
	migrateOnStart: boolean;
	redisUrl?: string;
	natsUrl?: string;
	logLevel: string;
	logFormat: "json" | "pretty";
	jwt: {
		secret?: string;
		jwksUrl?: string;
		audience: string;
		issuer: string;
	};
	assets: Record<string, AssetConfig>;
	claimHoldSec: number;
	orderTtlSec: number;
	orderMaxTtlSec: number;
	sweepIntervalMs: number;
	cacheTtl: { entity: number; list: number };
	rateLimit: { points: number; windowSec: number; ipPoints: number; syncMs: number };
	readyCacheMs: number;
	requestTimeoutMs: number;
	trustedServices: string[];
	metrics: { enabled: boolean; port: number };
	tracing: { exporter: "none" | "console" | "zipkin"; endpoint?: string; sampleRate: number };
	breaker: { threshold: number; minRequestCount: number; windowSec: number; halfOpenMs: number };
	staleTtlSec: number;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
	const raw = env[name];
	if (raw === undefined || raw === "") return def;
	const n = Number(raw);
	if (!Number.isInteger(n) || n < min || n > max)
		throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
	return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
	const raw = env[name];
	if (raw === undefined || raw === "") return def;
	if (/^(1|true|yes|on)$/i.test(raw)) return true;
	if (/^(0|false|no|off)$/i.test(raw)) return false;
	throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function str(env: Env, name: string): string | undefined {
	const raw = env[name];
	return raw === undefined || raw.trim() === "" ? undefined : raw.trim();
}

// "ETH:18,USDC:6" -> { ETH: {decimals: 18}, USDC: {decimals: 6} }
export function parseAssets(raw: string): Record<string, AssetConfig> {
	const assets: Record<string, AssetConfig> = {};
	for (const part of raw.split(",").map(s => s.trim()).filter(Boolean)) {
		const m = /^([A-Z][A-Z0-9]{1,15}):(\d{1,2})$/.exec(part);
		if (!m || Number(m[2]) > 18)
			throw new ConfigError(`ASSETS entry "${part}" must look like SYMBOL:DECIMALS with decimals 0..18`);
		if (assets[m[1]]) throw new ConfigError(`ASSETS names ${m[1]} twice`);
		assets[m[1]] = { decimals: Number(m[2]) };
	}
	if (Object.keys(assets).length === 0) throw new ConfigError("ASSETS must name at least one asset");
	return assets;
}

export const DEFAULT_ASSETS = "ETH:18,USDC:6,USDT:6,BTC:8,SOL:9,DAI:18";
export const DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef";

export function loadConfig(env: Env = process.env): Config {
	const nodeEnv = (str(env, "NODE_ENV") ?? "development") as Config["env"];
	if (!["development", "production", "test"].includes(nodeEnv))
		throw new ConfigError(`NODE_ENV must be development, production or test, got "${nodeEnv}"`);
	const regions = (str(env, "REGIONS") ?? "us-central1,europe-west1,asia-east1")
		.split(",")
		.map(s => s.trim())
		.filter(Boolean);
	const region = str(env, "REGION") ?? regions[0];
	if (!regions.includes(region)) throw new ConfigError(`REGION "${region}" is not in REGIONS (${regions.join(",")})`);

	const jwtSecret = str(env, "JWT_SECRET");
	const jwksUrl = str(env, "JWT_JWKS_URL");
	if (nodeEnv === "production" && !jwtSecret && !jwksUrl)
		throw new ConfigError("JWT_SECRET or JWT_JWKS_URL must be set in production");
	if (jwtSecret && jwtSecret.length < 32) throw new ConfigError("JWT_SECRET must be at least 32 characters");

	const logFormat = str(env, "LOG_FORMAT") ?? (nodeEnv === "development" ? "pretty" : "json");
	if (logFormat !== "json" && logFormat !== "pretty")
		throw new ConfigError(`LOG_FORMAT must be json or pretty, got "${logFormat}"`);

	const orderMaxTtlSec = int(env, "ORDER_MAX_TTL_SEC", 30 * 86400, 60);
	const exporter = str(env, "TRACING_EXPORTER") ?? "none";
	if (!["none", "console", "zipkin"].includes(exporter))
		throw new ConfigError(`TRACING_EXPORTER must be none, console or zipkin, got "${exporter}"`);
	const sampleRate = Number(str(env, "TRACING_SAMPLE_RATE") ?? "1");
	if (!(sampleRate >= 0 && sampleRate <= 1)) throw new ConfigError("TRACING_SAMPLE_RATE must be a number in [0, 1]");
	const threshold = Number(str(env, "BREAKER_THRESHOLD") ?? "0.5");
	if (!(threshold > 0 && threshold <= 1)) throw new ConfigError("BREAKER_THRESHOLD must be a number in (0, 1]");
	return {
		env: nodeEnv,
		region,
		regions,
		namespace: str(env, "NAMESPACE") ?? "wallet",
		nodeID: str(env, "NODE_ID"),
		port: int(env, "PORT", 3000, 0, 65535),
		host: str(env, "HOST") ?? (str(env, "DATABASE_URL") ? "0.0.0.0" : "127.0.0.1"),
		databaseUrl: str(env, "DATABASE_URL"),
		dataDir: path.resolve(str(env, "DATA_DIR") ?? "data"),
		embeddedPgPort: int(env, "EMBEDDED_PG_PORT", 54329, 1, 65535),
		pgPoolMax: int(env, "PG_POOL_MAX", 20, 1, 1000),
		migrateOnStart: bool(env, "MIGRATE_ON_START", true),
		redisUrl: str(env, "REDIS_URL"),
		natsUrl: str(env, "NATS_URL"),
		logLevel: str(env, "LOG_LEVEL") ?? (nodeEnv === "test" ? "warn" : "info"),
		logFormat,
		jwt: {
			secret: jwtSecret ?? (jwksUrl ? undefined : DEV_JWT_SECRET),
			jwksUrl,
			audience: str(env, "JWT_AUDIENCE") ?? "wallet-api",
			issuer: str(env, "JWT_ISSUER") ?? "wallet-dev",
		},
		assets: parseAssets(str(env, "ASSETS") ?? DEFAULT_ASSETS),
		claimHoldSec: int(env, "CLAIM_HOLD_SEC", 300, 1),
		orderTtlSec: int(env, "ORDER_TTL_SEC", 86400, 1, orderMaxTtlSec),
		orderMaxTtlSec,
		sweepIntervalMs: int(env, "SWEEP_INTERVAL_MS", 1000, 50),
		cacheTtl: { entity: int(env, "CACHE_TTL_SEC", 30, 1), list: int(env, "CACHE_LIST_TTL_SEC", 5, 1) },
		rateLimit: {
			points: int(env, "RATE_LIMIT", 600, 1),
			windowSec: int(env, "RATE_LIMIT_WINDOW_SEC", 60, 1),
			// Per client address, before any token is verified; 0 turns it off (behind a proxy that limits).
			ipPoints: int(env, "RATE_LIMIT_IP", 10 * int(env, "RATE_LIMIT", 600, 1), 0),
			syncMs: int(env, "RATE_LIMIT_SYNC_MS", 100, 10, 60_000),
		},
		readyCacheMs: int(env, "READY_CACHE_MS", 1000, 0, 60_000),
		requestTimeoutMs: int(env, "REQUEST_TIMEOUT_MS", 10000, 100),
		trustedServices: (str(env, "TRUSTED_SERVICES") ?? "api,supply,order,claiming").split(",").map(s => s.trim()),
		metrics: { enabled: bool(env, "METRICS_ENABLED", true), port: int(env, "METRICS_PORT", 3030, 0, 65535) },
		tracing: {
			exporter: exporter as Config["tracing"]["exporter"],
			endpoint: str(env, "TRACING_ENDPOINT"),
			sampleRate,
		},
		breaker: {
			threshold,
			minRequestCount: int(env, "BREAKER_MIN_REQUESTS", 20, 1),
			windowSec: int(env, "BREAKER_WINDOW_SEC", 60, 1),
			halfOpenMs: int(env, "BREAKER_HALF_OPEN_MS", 10000, 10),
		},
		staleTtlSec: int(env, "STALE_CACHE_TTL_SEC", 3600, 1),
	};
}

let cached: Config | undefined;
/** The process-wide configuration, read once. */
export function config(): Config {
	cached ??= loadConfig();
	return cached;
}
