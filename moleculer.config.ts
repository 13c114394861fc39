// The single broker configuration. moleculer-runner loads the default export; tests and scripts build
// brokers with brokerOptions(cfg) so every node of every test is configured the same way.
import { Errors, type BrokerOptions } from "moleculer";
import { config, type Config } from "./config";
import { PermissionsMiddleware } from "./middlewares/permissions";
import { createVerifier } from "./src/lib/jwt";
import { redisOptions } from "./src/lib/redis";
import { SafeRedisCacher } from "./src/lib/safe-redis-cacher";

/** Broker options carry the app configuration so services of one process can differ (tests run many brokers). */
export interface WalletBrokerOptions extends BrokerOptions {
	appConfig: Config;
}

function logger(cfg: Config): BrokerOptions["logger"] {
	return {
		type: "Pino",
		options: {
			level: cfg.logLevel,
			pino: {
				options: {
					base: { region: cfg.region },
					redact: {
						paths: ["*.authorization", "*.token", "*.password", "*.secret", "req.headers.authorization", "meta.token"],
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
						? { transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,ns,region,nodeID,mod,svc", messageFormat: "{region}/{nodeID} {mod}: {msg}" } } }
						: {}),
				},
			},
		},
	} as BrokerOptions["logger"];
}

export function brokerOptions(cfg: Config, overrides: Partial<BrokerOptions> = {}): WalletBrokerOptions {
	return {
		namespace: cfg.namespace,
		nodeID: cfg.nodeID,
		metadata: { region: cfg.region },
		logger: logger(cfg),
		transporter: cfg.natsUrl ? { type: "NATS", options: { url: cfg.natsUrl } } : null,
		serializer: "JSON",
		cacher: cfg.redisUrl
			? new SafeRedisCacher({ redis: redisOptions(cfg.redisUrl), prefix: `${cfg.namespace}-${cfg.region}:` })
			: { type: "Memory", options: { clone: true } },
		requestTimeout: cfg.requestTimeoutMs,
		heartbeatInterval: 2,
		heartbeatTimeout: 6,
		registry: {
			// The order actor routes by order id (Shard strategy); preferLocal would bypass that.
			strategy: "RoundRobin",
			preferLocal: false,
		},
		circuitBreaker: {
			enabled: true,
			threshold: 0.5,
			minRequestCount: 20,
			windowTime: 60,
			halfOpenTime: 10000,
			check: (err: any) => err && err.code >= 500,
		},
		retryPolicy: { enabled: false },
		bulkhead: { enabled: false },
		validator: true,
		errorHandler(err, info) {
			// Expected refusals (4xx, 503s) travel as they are; a plain Error is a bug: log it where it happened.
			if (!(err instanceof Errors.MoleculerError)) this.logger.error("Unexpected error", err, (info as any)?.action?.name);
			throw err;
		},
		// Permissions sit outside the cacher so a cached answer is never served before the check.
		internalMiddlewares: false,
		middlewares: [
			"ActionHook",
			"Validator",
			"Bulkhead",
			"Cacher",
			PermissionsMiddleware(createVerifier(cfg.jwt), cfg.trustedServices),
			"ContextTracker",
			"CircuitBreaker",
			"Timeout",
			"Retry",
			"Fallback",
			"ErrorHandler",
			"Tracing",
			"Metrics",
			"Debounce",
			"Throttle",
		],
		tracking: { enabled: true, shutdownTimeout: 5000 },
		...overrides,
		appConfig: cfg,
	} as WalletBrokerOptions;
}

export default brokerOptions(config());
