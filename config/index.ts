// Typed configuration from environment variables. Every variable is listed in the README;
// a bad value stops the process at start with a message that names it.
import { randomBytes } from "node:crypto";
import path from "node:path";
import { parseFailpoints, type Failpoints } from "../src/lib/failpoints";

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
	/** The database of this region in the embedded PostgreSQL (one per region when several run in one process). */
	embeddedDatabase: string;
	pgPoolMax: number;
	migrateOnStart: boolean;
	redisUrl?: string;
	natsUrl?: string;
	/** Credentials and TLS of the NATS connection (docs/security.md). */
	nats: {
		user?: string;
		password?: string;
		token?: string;
		nkeySeed?: string;
		tls?: { ca?: string; cert?: string; key?: string };
	};
	/** No DATABASE_URL, NATS_URL or REDIS_URL: the whole system in one process, with no peers. */
	embedded: boolean;
	logLevel: string;
	logFormat: "json" | "pretty";
	jwt: {
		secret?: string;
		jwksUrl?: string;
		audience: string;
		issuer: string;
		clockToleranceSec: number;
	};
	/** Signs the identity that travels between services (src/lib/identity.ts). */
	internal: { secret: string; assertionTtlSec: number };
	/** Verified bearer tokens and assertions kept per process (bounded LRU). */
	authCacheSize: number;
	assets: Record<string, AssetConfig>;
	claimHoldSec: number;
	/** A cross-region hold whose claim has not appeared for this long is checked with the order's region. */
	holdConfirmSec: number;
	orderTtlSec: number;
	orderMaxTtlSec: number;
	sweepIntervalMs: number;
	cacheTtl: { entity: number; list: number };
	cacheMaxEntries: number;
	rateLimit: { points: number; windowSec: number; ipPoints: number; syncMs: number };
	readyCacheMs: number;
	/** GET of one order, supply or claim answered from the cache in front of moleculer-web (docs/gateway.md). */
	cachedReads: boolean;
	requestTimeoutMs: number;
	trustedServices: string[];
	metrics: { enabled: boolean; port: number };
	tracing: { exporter: "none" | "console" | "zipkin"; endpoint?: string; sampleRate: number };
	breaker: { threshold: number; minRequestCount: number; windowSec: number; halfOpenMs: number };
	staleTtlSec: number;
	/** Group commit of the order actor's commands (src/lib/batcher.ts). */
	claimBatch: { concurrency: number; maxItems: number; windowMs: number };
	/** Group commit of supply and order creations (src/store/creates.ts): batches in flight per service and node, and their size. */
	createBatch: { concurrency: number; maxItems: number; windowMs: number };
	sweepBatch: number;
	outboxRetentionSec: number;
	/** Test and drill hooks (src/lib/failpoints.ts); never in production. */
	failpoints: Failpoints;
	/** Server-side limits of every pooled connection, so a stalled lock cannot hold connections without bound. */
	pgTimeouts: { statementMs: number; lockMs: number; idleInTxMs: number };
	/** Failover between regions (docs/multi-region.md, "Failover"; services/regions.service.ts). */
	failover: FailoverConfig;
	/** How events cross regions (docs/multi-region.md): Kafka, the in-process twin, or not at all (one region). */
	replication: {
		mode: "kafka" | "memory" | "off";
		kafkaBrokers: string[];
		topicPrefix: string;
		relayBatch: number;
		relayPollMs: number;
		relayLingerMs: number;
		/**
		 * How a region calls another (forwarded writes, holds): in-process (regions of one process), over
		 * Moleculer's Kafka transporter on a global namespace (the `link` service), or not at all.
		 */
		link: "memory" | "kafka" | "off";
		kafka: {
			sessionTimeoutMs: number;
			maxWaitMs: number;
			/** Publishes of at least this many bytes of events are gzipped. */
			compressFromBytes: number;
			ssl: boolean;
			sasl?: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string };
			/** "stretched": one cluster, every region reads `<prefix>.events.<source>`; "mirrored": MirrorMaker 2 copies, `<source>.<prefix>.events.<source>`. */
			topology: "stretched" | "mirrored";
		};
		/** The global broker of LINK=kafka (services/link.service.ts, src/regions/bridge.ts). */
		linkKafka: {
			/** `<NAMESPACE>-global` by default: the same in every region. */
			namespace: string;
			brokers: string[];
			/** How long an empty fetch waits: every forwarded call waits up to this for its request and its answer. */
			maxWaitMs: number;
			heartbeatIntervalSec: number;
			heartbeatTimeoutSec: number;
		};
	};
}

export interface FailoverConfig {
	/** Leases, the watcher, takeover and fail-back. Off: each region writes what its rows say it owns, without leases. */
	enabled: boolean;
	/** Who takes over a lost region: the next region after it in this order that is not down. */
	order: string[];
	/** How often each region pings every other (the watcher's signal; the pings carry lease renewals). */
	intervalMs: number;
	/** A ping not answered in this long has failed. */
	timeoutMs: number;
	failuresToDown: number;
	successesToUp: number;
	flapWindowMs: number;
	leaseMs: number;
	safetyMs: number;
	/** Ownership goes back to a home region that is up again and caught up, after it has been up this long. */
	failback: boolean;
	failbackAfterMs: number;
	/**
	 * `replicated`: a claim is acknowledged once its events are in the event log (durable outside its region), and a
	 * successor applies the lost region's log to its end before its first write. `local`: acknowledged at the home
	 * commit; what the lost region had not published is reconciled when it returns.
	 */
	durability: "local" | "replicated";
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

export interface LoadOptions {
	/** False for tools that neither verify nor sign (migrations): they need no keys. */
	keys?: boolean;
}

// One per process: the embedded default's regions share a process, and verify each other's assertions.
const PROCESS_SECRET = randomBytes(32).toString("base64url");

// Fail closed: a node that can be reached by peers (any real server configured) never falls back to a
// secret anyone can read in this file.
function authSecrets(env: Env, nodeEnv: Config["env"], embedded: boolean, keys: boolean) {
	const jwtSecret = str(env, "JWT_SECRET");
	const jwksUrl = str(env, "JWT_JWKS_URL");
	const internal = str(env, "INTERNAL_SECRET");
	if (jwtSecret && jwtSecret.length < 32) throw new ConfigError("JWT_SECRET must be at least 32 characters");
	if (internal && internal.length < 32) throw new ConfigError("INTERNAL_SECRET must be at least 32 characters");
	if (internal && internal === jwtSecret) throw new ConfigError("INTERNAL_SECRET must differ from JWT_SECRET");
	if (keys && nodeEnv === "production" && !jwtSecret && !jwksUrl)
		throw new ConfigError("JWT_SECRET or JWT_JWKS_URL must be set in production");
	if (keys && !embedded && !jwtSecret && !jwksUrl)
		throw new ConfigError(
			"JWT_SECRET or JWT_JWKS_URL must be set when DATABASE_URL, NATS_URL or REDIS_URL is: only the embedded default may use the development secret",
		);
	if (keys && !embedded && !internal)
		throw new ConfigError(
			"INTERNAL_SECRET must be set when DATABASE_URL, NATS_URL or REDIS_URL is: it signs the identity services pass to each other",
		);
	return {
		jwtSecret: jwtSecret ?? (jwksUrl ? undefined : DEV_JWT_SECRET),
		jwksUrl,
		// The embedded default has no peers: a secret of its own, never written down, is enough.
		internalSecret: internal ?? PROCESS_SECRET,
	};
}

function natsOptions(env: Env): Config["nats"] {
	const user = str(env, "NATS_USER");
	const password = str(env, "NATS_PASSWORD");
	const token = str(env, "NATS_TOKEN");
	const nkeySeed = str(env, "NATS_NKEY_SEED");
	if (!!user !== !!password) throw new ConfigError("NATS_USER and NATS_PASSWORD must be set together");
	if ([user, token, nkeySeed].filter(Boolean).length > 1)
		throw new ConfigError("Set only one of NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_NKEY_SEED");
	if (nkeySeed && !/^SU[A-Z2-7]{56}$/.test(nkeySeed))
		throw new ConfigError("NATS_NKEY_SEED must be a user seed (58 characters starting with SU)");
	const ca = str(env, "NATS_TLS_CA");
	const cert = str(env, "NATS_TLS_CERT");
	const key = str(env, "NATS_TLS_KEY");
	if (!!cert !== !!key) throw new ConfigError("NATS_TLS_CERT and NATS_TLS_KEY must be set together");
	return { user, password, token, nkeySeed, tls: ca || cert ? { ca, cert, key } : undefined };
}

function kafkaOptions(env: Env): Config["replication"]["kafka"] {
	const mechanism = str(env, "KAFKA_SASL_MECHANISM");
	const username = str(env, "KAFKA_SASL_USERNAME");
	const password = str(env, "KAFKA_SASL_PASSWORD");
	if (mechanism && !["plain", "scram-sha-256", "scram-sha-512"].includes(mechanism))
		throw new ConfigError(`KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512, got "${mechanism}"`);
	if (mechanism && !(username && password)) throw new ConfigError("KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD");
	if (!mechanism && (username || password)) throw new ConfigError("KAFKA_SASL_USERNAME/PASSWORD need KAFKA_SASL_MECHANISM");
	const topology = str(env, "KAFKA_TOPOLOGY") ?? "stretched";
	if (topology !== "stretched" && topology !== "mirrored") throw new ConfigError(`KAFKA_TOPOLOGY must be stretched or mirrored, got "${topology}"`);
	return {
		// A real Kafka refuses less than its group.min.session.timeout.ms (6 s by default); the test broker wants 3 s.
		sessionTimeoutMs: int(env, "KAFKA_SESSION_TIMEOUT_MS", 10_000, 1000, 300_000),
		maxWaitMs: int(env, "KAFKA_MAX_WAIT_MS", 100, 1, 10_000),
		// Publishes smaller than this leave uncompressed (src/replication/kafka-log.ts); 0: every publish gzipped.
		compressFromBytes: int(env, "KAFKA_COMPRESS_FROM_BYTES", 16 * 1024, 0, 100 * 1024 * 1024),
		ssl: bool(env, "KAFKA_SSL", false),
		sasl: mechanism ? { mechanism: mechanism as "plain", username: username!, password: password! } : undefined,
		topology,
	};
}

function linkKafkaOptions(env: Env, kafkaBrokers: string[]): Config["replication"]["linkKafka"] {
	const namespace = str(env, "LINK_NAMESPACE") ?? `${str(env, "NAMESPACE") ?? "wallet"}-global`;
	// Part of every Kafka topic name of the link (MOL-<namespace>.<CMD>), and Moleculer splits those names on dots.
	if (!/^[A-Za-z0-9_-]{1,100}$/.test(namespace)) throw new ConfigError(`LINK_NAMESPACE must be letters, digits, "_" or "-", got "${namespace}"`);
	const own = str(env, "LINK_KAFKA_BROKERS");
	const heartbeatIntervalSec = int(env, "LINK_HEARTBEAT_INTERVAL_SEC", 1, 1, 60);
	const heartbeatTimeoutSec = int(env, "LINK_HEARTBEAT_TIMEOUT_SEC", 3, 2, 600);
	if (heartbeatTimeoutSec <= heartbeatIntervalSec)
		throw new ConfigError("LINK_HEARTBEAT_TIMEOUT_SEC must be greater than LINK_HEARTBEAT_INTERVAL_SEC");
	return {
		namespace,
		brokers: own ? own.split(",").map(s => s.trim()).filter(Boolean) : kafkaBrokers,
		maxWaitMs: int(env, "LINK_MAX_WAIT_MS", 5, 1, 10_000),
		heartbeatIntervalSec,
		heartbeatTimeoutSec,
	};
}

function embeddedDatabase(env: Env): string {
	const name = str(env, "EMBEDDED_DATABASE") ?? "postgres";
	if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new ConfigError(`EMBEDDED_DATABASE must be a plain lower-case database name, got "${name}"`);
	return name;
}

export function loadConfig(env: Env = process.env, options: LoadOptions = {}): Config {
	const nodeEnv = (str(env, "NODE_ENV") ?? "development") as Config["env"];
	if (!["development", "production", "test"].includes(nodeEnv))
		throw new ConfigError(`NODE_ENV must be development, production or test, got "${nodeEnv}"`);
	const regions = (str(env, "REGIONS") ?? "us-central1,europe-west1,asia-east1")
		.split(",")
		.map(s => s.trim())
		.filter(Boolean);
	const region = str(env, "REGION") ?? regions[0];
	if (!regions.includes(region)) throw new ConfigError(`REGION "${region}" is not in REGIONS (${regions.join(",")})`);

	const embedded = !str(env, "DATABASE_URL") && !str(env, "NATS_URL") && !str(env, "REDIS_URL");
	const secrets = authSecrets(env, nodeEnv, embedded, options.keys ?? true);

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
	const kafkaBrokers = (str(env, "KAFKA_BROKERS") ?? "").split(",").map(s => s.trim()).filter(Boolean);
	const replication = str(env, "REPLICATION") ?? (kafkaBrokers.length ? "kafka" : embedded && regions.length > 1 ? "memory" : "off");
	if (!["kafka", "memory", "off"].includes(replication))
		throw new ConfigError(`REPLICATION must be kafka, memory or off, got "${replication}"`);
	if (replication === "kafka" && kafkaBrokers.length === 0) throw new ConfigError("REPLICATION=kafka needs KAFKA_BROKERS (host:port,...)");
	const kafka = kafkaOptions(env);
	// A hold is checked with the order's region only after every claim that could still write it has passed its
	// deadline: otherwise the check would void a claim in flight (safe, but an abandoned attempt).
	const holdConfirmSec = int(env, "HOLD_CONFIRM_SEC", 30, 1);
	const requestTimeoutMs = int(env, "REQUEST_TIMEOUT_MS", 10000, 100);
	if (holdConfirmSec * 1000 <= requestTimeoutMs)
		throw new ConfigError(`HOLD_CONFIRM_SEC (${holdConfirmSec} s) must be longer than REQUEST_TIMEOUT_MS (${requestTimeoutMs} ms)`);
	if (nodeEnv === "production" && str(env, "FAILPOINTS")) throw new ConfigError("FAILPOINTS is for tests and drills: refused in production");
	let failpoints: Failpoints;
	try {
		failpoints = parseFailpoints(str(env, "FAILPOINTS"));
	} catch (err) {
		throw new ConfigError((err as Error).message);
	}
	const link = str(env, "LINK") ?? (replication === "kafka" ? "kafka" : replication === "memory" ? "memory" : "off");
	if (link !== "memory" && link !== "kafka" && link !== "off") throw new ConfigError(`LINK must be memory, kafka or off, got "${link}"`);
	const linkKafka = linkKafkaOptions(env, kafkaBrokers);
	if (link === "kafka" && linkKafka.brokers.length === 0) throw new ConfigError("LINK=kafka needs LINK_KAFKA_BROKERS or KAFKA_BROKERS (host:port,...)");
	if (!(threshold > 0 && threshold <= 1)) throw new ConfigError("BREAKER_THRESHOLD must be a number in (0, 1]");
	const failover = failoverOptions(env, regions, link);
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
		embeddedDatabase: embeddedDatabase(env),
		pgPoolMax: int(env, "PG_POOL_MAX", 20, 1, 1000),
		// Production migrates as a step of its own (a Job before the roll-out); nodes only check the schema.
		migrateOnStart: bool(env, "MIGRATE_ON_START", nodeEnv !== "production"),
		redisUrl: str(env, "REDIS_URL"),
		natsUrl: str(env, "NATS_URL"),
		nats: natsOptions(env),
		embedded,
		logLevel: str(env, "LOG_LEVEL") ?? (nodeEnv === "test" ? "warn" : "info"),
		logFormat,
		jwt: {
			secret: secrets.jwtSecret,
			jwksUrl: secrets.jwksUrl,
			audience: str(env, "JWT_AUDIENCE") ?? "wallet-api",
			issuer: str(env, "JWT_ISSUER") ?? "wallet-dev",
			clockToleranceSec: int(env, "JWT_CLOCK_TOLERANCE_SEC", 5, 0, 300),
		},
		internal: {
			secret: secrets.internalSecret,
			assertionTtlSec: int(env, "INTERNAL_ASSERTION_TTL_SEC", 30, 1, 3600),
		},
		authCacheSize: int(env, "AUTH_CACHE_SIZE", 10000, 0, 10_000_000),
		assets: parseAssets(str(env, "ASSETS") ?? DEFAULT_ASSETS),
		claimHoldSec: int(env, "CLAIM_HOLD_SEC", 300, 1),
		holdConfirmSec,
		failover,
		orderTtlSec: int(env, "ORDER_TTL_SEC", 86400, 1, orderMaxTtlSec),
		orderMaxTtlSec,
		sweepIntervalMs: int(env, "SWEEP_INTERVAL_MS", 1000, 50),
		cacheTtl: { entity: int(env, "CACHE_TTL_SEC", 30, 1), list: int(env, "CACHE_LIST_TTL_SEC", 5, 1) },
		cacheMaxEntries: int(env, "CACHE_MAX_ENTRIES", 10000, 1),
		rateLimit: {
			points: int(env, "RATE_LIMIT", 600, 1),
			windowSec: int(env, "RATE_LIMIT_WINDOW_SEC", 60, 1),
			// Per client address, before any token is verified; 0 turns it off (behind a proxy that limits).
			ipPoints: int(env, "RATE_LIMIT_IP", 10 * int(env, "RATE_LIMIT", 600, 1), 0),
			syncMs: int(env, "RATE_LIMIT_SYNC_MS", 100, 10, 60_000),
		},
		readyCacheMs: int(env, "READY_CACHE_MS", 1000, 0, 60_000),
		cachedReads: bool(env, "CACHED_READS", true),
		requestTimeoutMs,
		trustedServices: (str(env, "TRUSTED_SERVICES") ?? "api,supply,order,claiming,regions").split(",").map(s => s.trim()),
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
		claimBatch: {
			concurrency: int(env, "CLAIM_BATCH_CONCURRENCY", 2, 1, 64),
			maxItems: int(env, "CLAIM_BATCH_MAX", 64, 1, 1000),
			windowMs: int(env, "CLAIM_BATCH_WINDOW_MS", 0, 0, 1000),
		},
		createBatch: {
			concurrency: int(env, "CREATE_BATCH_CONCURRENCY", 1, 1, 64),
			maxItems: int(env, "CREATE_BATCH_MAX", 64, 1, 1000),
			windowMs: 0,
		},
		sweepBatch: int(env, "SWEEP_BATCH", 1000, 1, 100_000),
		outboxRetentionSec: int(env, "OUTBOX_RETENTION_SEC", 7 * 86400, 60),
		failpoints,
		pgTimeouts: {
			statementMs: int(env, "PG_STATEMENT_TIMEOUT_MS", 5000, 0),
			lockMs: int(env, "PG_LOCK_TIMEOUT_MS", 2000, 0),
			idleInTxMs: int(env, "PG_IDLE_TX_TIMEOUT_MS", 10000, 0),
		},
		replication: {
			mode: replication as Config["replication"]["mode"],
			kafkaBrokers,
			topicPrefix: str(env, "KAFKA_TOPIC_PREFIX") ?? str(env, "NAMESPACE") ?? "wallet",
			relayBatch: int(env, "RELAY_BATCH", 500, 1, 10_000),
			relayPollMs: int(env, "RELAY_POLL_MS", 250, 1, 60_000),
			// A replicated claim waits for its publish, so its linger is on the client's clock; a local one is answered
			// at its commit, and a longer linger only makes fewer, larger batches (a reader of a backlog advances one
			// batch per partition and fetch on some brokers: the test broker; docs/multi-region.md).
			relayLingerMs: int(env, "RELAY_LINGER_MS", failover.durability === "replicated" ? 10 : 25, 0, 1000),
			link: link as Config["replication"]["link"],
			kafka,
			linkKafka,
		},
	};
}

let cached: Config | undefined;
/** The process-wide configuration, read once. */
export function config(): Config {
	cached ??= loadConfig();
	return cached;
}

function failoverOptions(env: Env, regions: string[], link: string): FailoverConfig {
	const mode = str(env, "FAILOVER") ?? "off";
	if (mode !== "on" && mode !== "off") throw new ConfigError(`FAILOVER must be on or off, got "${mode}"`);
	const enabled = mode === "on";
	if (enabled && regions.length < 2) throw new ConfigError("FAILOVER=on needs two regions or more (REGIONS)");
	if (enabled && link === "off") throw new ConfigError("FAILOVER=on needs a link between regions (LINK=memory or kafka)");
	const order = (str(env, "FAILOVER_ORDER") ?? regions.join(",")).split(",").map(r => r.trim());
	if (order.length !== regions.length || !regions.every(r => order.includes(r)))
		throw new ConfigError(`FAILOVER_ORDER must list every region of REGIONS once (${regions.join(",")}), got "${order.join(",")}"`);
	const intervalMs = int(env, "WATCH_INTERVAL_MS", 500, 50, 60_000);
	const timeoutMs = int(env, "WATCH_TIMEOUT_MS", 450, 10, 60_000);
	const leaseMs = int(env, "LEASE_MS", 2000, 100, 600_000);
	// A lease must survive a missed renewal or two, and a ping must be able to renew before the lease is over.
	if (leaseMs < 3 * intervalMs) throw new ConfigError(`LEASE_MS (${leaseMs}) must be at least 3 × WATCH_INTERVAL_MS (${intervalMs})`);
	if (timeoutMs >= leaseMs) throw new ConfigError(`WATCH_TIMEOUT_MS (${timeoutMs}) must be shorter than LEASE_MS (${leaseMs})`);
	const durability = str(env, "CLAIM_DURABILITY") ?? "local";
	if (durability !== "local" && durability !== "replicated") throw new ConfigError(`CLAIM_DURABILITY must be local or replicated, got "${durability}"`);
	return {
		enabled,
		order,
		intervalMs,
		timeoutMs,
		failuresToDown: int(env, "WATCH_FAILURES", 3, 1, 100),
		successesToUp: int(env, "WATCH_SUCCESSES", 3, 1, 100),
		flapWindowMs: int(env, "WATCH_FLAP_WINDOW_MS", 30_000, 0, 3_600_000),
		leaseMs,
		safetyMs: int(env, "LEASE_SAFETY_MS", 250, 0, 60_000),
		failback: bool(env, "FAILBACK", true),
		failbackAfterMs: int(env, "FAILBACK_AFTER_MS", 3000, 0, 3_600_000),
		durability,
	};
}
