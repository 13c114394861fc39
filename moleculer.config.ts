// The single broker configuration. moleculer-runner loads the default export; tests and scripts build
// brokers with brokerOptions(cfg) so every node of every test is configured the same way.
import { Errors, type BrokerOptions } from "moleculer";
import { nkeyAuthenticator, tokenAuthenticator, usernamePasswordAuthenticator } from "nats";
import pino from "pino";
import { config, type Config } from "./config";
import { DeadlineMiddleware } from "./middlewares/deadline";
import { HomeRegionMiddleware } from "./middlewares/home-region";
import { PermissionsMiddleware } from "./middlewares/permissions";
import { breakerCounts } from "./src/lib/breaker";
import { identityFor } from "./src/lib/identity";
import { HEALTHY_ROUND_ROBIN, OutlierMiddleware } from "./src/lib/outliers";
import { registerStrategies } from "./src/lib/strategies";
import { DomainMetricsMiddleware, SafePrometheusReporter } from "./src/lib/metrics";
import { logBindings, RequestContextMiddleware } from "./src/lib/request-context";
import { HashingZipkinExporter } from "./src/lib/zipkin";
import { redisOptions } from "./src/lib/redis";
import { SafeRedisCacher } from "./src/lib/safe-redis-cacher";
import { LocalCacher } from "./src/lib/cache-local";
import { CacheGenerationsMiddleware } from "./src/lib/cache-generations";

/** Broker options carry the app configuration so services of one process can differ (tests run many brokers). */
export interface WalletBrokerOptions extends BrokerOptions {
	appConfig: Config;
}

let stdout: ReturnType<typeof pino.destination> | undefined;
/**
 * stdout for every broker of this process, written asynchronously: the lines logged while a write is out leave
 * together in the next one, so a busy node makes one write(2) per burst of lines rather than one per request's
 * access-log line (docs/operations.md, "Logs"). Nothing waits for a quiet moment; pino flushes it at exit.
 */
const asyncStdout = () => (stdout ??= pino.destination({ dest: 1, sync: false }));

/** pino through Moleculer's Pino logger; `destination` is stdout unless a test captures the lines. */
export function loggerOptions(cfg: Config, destination?: { write(line: string): void }): BrokerOptions["logger"] {
	return {
		type: "Pino",
		options: {
			level: cfg.logLevel,
			pino: {
				options: {
					base: { region: cfg.region },
					// The request id (and action) of the request a line is logged for, on every node.
					mixin: logBindings,
					redact: {
						paths: ["*.authorization", "*.token", "*.assertion", "*.password", "*.secret", "req.headers.authorization", "meta.token", "meta.assertion"],
						censor: "[redacted]",
					},
					hooks: {
						// Moleculer logs (message, object); pino keeps objects only in first place.
						logMethod(args: unknown[], method: (...a: unknown[]) => void) {
							if (typeof args[0] === "string" && args.length > 1) {
								const objs = args.slice(1).filter(a => typeof a === "object" && a !== null);
								const rest = args.slice(1).filter(a => typeof a !== "object" || a === null);
								const merged = Object.assign(
									{},
									...objs.map(o => (o instanceof Error ? { err: o } : o)),
								);
								return method.apply(this, [merged, [args[0], ...rest].join(" ")]);
							}
							return method.apply(this, args);
						},
					},
					...(cfg.logFormat === "pretty"
						? {
								transport: {
									target: "pino-pretty",
									options: {
										colorize: true,
										translateTime: "SYS:HH:MM:ss.l",
										ignore: "pid,hostname,ns,region,nodeID,mod,svc,requestId,action",
										messageFormat: "{region}/{nodeID} {mod} {requestId}: {msg}",
									},
								},
							}
						: {}),
				},
				// pino-pretty (development) runs in a worker of its own and takes no destination.
				destination: destination ?? (cfg.logFormat === "pretty" ? undefined : asyncStdout()),
			},
		},
	} as BrokerOptions["logger"];
}

/**
 * NATS connection options: credentials and TLS from the configuration (docs/security.md). Credentials
 * go in as nats.js authenticators: Moleculer's transporter overwrites `user`/`pass` options with the
 * URL's (empty) user info.
 */
export function natsTransporter(cfg: Config): BrokerOptions["transporter"] {
	if (!cfg.natsUrl) return null;
	const { user, password, token, nkeySeed, tls } = cfg.nats;
	const authenticator = user
		? usernamePasswordAuthenticator(user, password)
		: token
			? tokenAuthenticator(token)
			: nkeySeed
				? nkeyAuthenticator(new TextEncoder().encode(nkeySeed))
				: undefined;
	return {
		type: "NATS",
		options: {
			url: cfg.natsUrl,
			...(authenticator ? { authenticator } : {}),
			...(tls ? { tls: { caFile: tls.ca, certFile: tls.cert, keyFile: tls.key } } : {}),
		},
	} as BrokerOptions["transporter"];
}

export function brokerOptions(cfg: Config, overrides: Partial<BrokerOptions> = {}): WalletBrokerOptions {
	registerStrategies();
	return {
		namespace: cfg.namespace,
		nodeID: cfg.nodeID,
		metadata: { region: cfg.region },
		logger: loggerOptions(cfg),
		transporter: natsTransporter(cfg),
		serializer: "JSON",
		cacher: cfg.redisUrl
			? new SafeRedisCacher({ redis: redisOptions(cfg.redisUrl), prefix: `${cfg.namespace}-${cfg.region}:` })
			: new LocalCacher({ max: cfg.cacheMaxEntries, clone: true }),
		requestTimeout: cfg.requestTimeoutMs,
		heartbeatInterval: 2,
		heartbeatTimeout: 6,
		registry: {
			// The order actor routes by order id (Shard strategy); preferLocal would bypass that.
			strategy: HEALTHY_ROUND_ROBIN,
			preferLocal: false,
			stopDelay: 200,
		},
		// Enabled at broker level: Moleculer 0.15 gives per-action-only breakers no reset timer and no
		// metrics. Actions tune their threshold (src/lib/fault-tolerance.ts). Only an unhealthy node or
		// dependency counts (src/lib/breaker.ts), never one caller's input.
		circuitBreaker: {
			enabled: true,
			threshold: cfg.breaker.threshold,
			minRequestCount: cfg.breaker.minRequestCount,
			windowTime: cfg.breaker.windowSec,
			halfOpenTime: cfg.breaker.halfOpenMs,
			check: breakerCounts,
		},
		// Retries and bulkheads are per action (src/lib/fault-tolerance.ts): only idempotent actions retry.
		retryPolicy: { enabled: false, retries: 2, delay: 50, maxDelay: 500, factor: 2 },
		bulkhead: { enabled: false, concurrency: 16, maxQueueSize: 128 },
		metrics: {
			enabled: cfg.metrics.enabled,
			collectProcessMetrics: true,
			reporter: [
				new SafePrometheusReporter({
					port: cfg.metrics.port,
					path: "/metrics",
					// Command lines, user and network details do not belong on an unauthenticated endpoint.
					excludes: ["process.arguments", "os.user.*", "os.network.*", "os.hostname"],
					defaultLabels: (registry: any) => ({ namespace: registry.broker.namespace, nodeID: registry.broker.nodeID, region: cfg.region }),
				}),
			],
		},
		tracing: {
			enabled: cfg.tracing.exporter !== "none",
			sampling: { rate: cfg.tracing.sampleRate },
			actions: true,
			events: false,
			errorFields: ["name", "message", "code", "type"],
			// Params and meta stay out of spans: they can hold tokens and amounts of other users.
			tags: { action: { params: false, meta: false } },
			exporter:
				cfg.tracing.exporter === "zipkin"
					? new HashingZipkinExporter({ baseURL: cfg.tracing.endpoint ?? "http://127.0.0.1:9411", interval: 1, payloadOptions: { debug: false, shared: false } })
					: cfg.tracing.exporter === "console"
						? { type: "Console", options: { width: 100, colors: cfg.logFormat === "pretty" } }
						: undefined,
		},
		validator: true,
		errorHandler(err, info) {
			// Expected refusals (4xx, 503s) travel as they are; a plain Error is a bug: log it where it happened.
			// Logged once, by the innermost action it passes through.
			if (!(err instanceof Errors.MoleculerError) && !(err as any).$logged) {
				(err as any).$logged = true;
				this.logger.error("Unexpected error", err, (info as any)?.action?.name);
			}
			throw err;
		},
		// Permissions sit outside the cacher and the fallback, so neither a cached nor a stale answer is
		// ever served before the check (a refusal must not trigger the stale fallback). The Validator sits
		// just outside the Cacher: cache keys are built from converted parameters, and the list
		// generations are read (CacheGenerations) just before the Cacher builds a list's key.
		internalMiddlewares: false,
		middlewares: [
			// Innermost: the action ran here and was refused as not this region's to write; the owner runs it.
			HomeRegionMiddleware(cfg),
			RequestContextMiddleware,
			"ActionHook",
			"Bulkhead",
			"Cacher",
			CacheGenerationsMiddleware,
			"Validator",
			"CircuitBreaker",
			"Timeout",
			DeadlineMiddleware,
			OutlierMiddleware,
			// Outside Timeout: a call that timed out is settled for the tracker too (else it leaks and
			// a graceful stop waits for it in vain).
			"ContextTracker",
			"Retry",
			"Fallback",
			PermissionsMiddleware(identityFor(cfg)),
			"ErrorHandler",
			"Tracing",
			"Metrics",
			"Debounce",
			"Throttle",
			DomainMetricsMiddleware(),
		],
		// Graceful stop: the node first tells its peers it has no services (registry.stopDelay), then waits
		// for its in-flight requests (tracking) before its services stop.
		tracking: { enabled: true, shutdownTimeout: 5000 },
		...overrides,
		appConfig: cfg,
	} as WalletBrokerOptions;
}

export default brokerOptions(config());
