// The REST gateway (moleculer-web): routes of brief §3, bearer-token authentication, rate limiting
// (per client address before anything costly, per user after the token), the error body, health
// endpoints and the OpenAPI document.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { Errors, type Context, type Service } from "moleculer";
import type { WalletService } from "../mixins/schema";
import ApiGateway, { type ApiSettingsSchema } from "moleculer-web";
import Redis from "ioredis";
import { appConfig } from "../mixins/config";
import { RoleFollowerMixin } from "../mixins/role-follower.mixin";
import { methodTable, type MethodTable } from "../src/http/allow";
import { jsonBody } from "../src/http/body";
import { cachedAnswer, cachedReadOf, type CachedRead } from "../src/http/cached-read";
import { answerClientErrors } from "../src/http/client-error";
import { STATUS_PAGE } from "../src/http/status-page";
import { badRequest, unauthorized } from "../src/domain/errors";
import type { User } from "../src/domain/types";
import type { Entity } from "../src/lib/cache-keys";
import { isGenerational, type GenerationalCacher } from "../src/lib/cache-store";
import { errorBody } from "../src/lib/http-errors";
import { identityFor, type Identity } from "../src/lib/identity";
import { M } from "../src/lib/metrics";
import { RateLimiter, redisCounterStore } from "../src/lib/rate-limit";
import { redisOptions } from "../src/lib/redis";
import { serviceContext, TRACE_ID } from "../src/lib/request-context";
import { openApiDocument } from "../src/openapi";
import { regionLink } from "../src/regions/link";
import type { RegionsStatus } from "./regions.service";
import type { ReplicationStatus } from "./replication.service";
import { ROUTES } from "../src/routes";

type Req = IncomingMessage & {
	originalUrl?: string;
	$startedAt?: number;
	$ctx?: Context;
	$params?: Record<string, unknown>;
	$route?: unknown;
	$action?: { name: string };
	query?: Record<string, unknown>;
};
type Res = ServerResponse & { $ctx?: Context };
/** The meta of the gateway's contexts: its own (authenticate, authorize, onAfterCall) and its actions'. */
type Meta = { user?: User; assertion?: string; $statusCode?: number; $responseHeaders?: Record<string, string> };
type Ctx = Context<unknown, Meta>;

interface ApiThis extends Service<ApiSettingsSchema> {
	region: string;
	identity: Identity;
	tracing: boolean;
	/** The entities whose `find` entries httpHandler answers from the cache (cacheReadable, once started). */
	cachedReads: Set<Entity>;
	readyCacheMs: number;
	allowed: MethodTable;
	rateLimitRedis?: Redis;
	rateLimiter: RateLimiter;
	ipLimiter?: RateLimiter;
	replicaLagMs?: number;
	lagTimer?: NodeJS.Timeout;
	lastReadiness?: { ok: boolean; at: number };
	probing?: Promise<{ ok: boolean; at: number }>;
	lastRegions?: { view: unknown; at: number };
	askingRegions?: Promise<unknown>;
	/**
	 * moleculer-web's HTTP server (made in its created, which runs before this one's); missing from its typings.
	 * Node reads requireHostHeader from the server at each request; @types/node has it only as a createServer option.
	 */
	server: Server & { requireHostHeader: boolean };
	/** moleculer-web's method (the error answer); missing from its typings. */
	sendError(req: Req, res: Res, err: Error): void;
	httpHandler(req: Req, res: Res, next?: unknown): unknown;
	serveCached(req: Req, res: Res, read: CachedRead, next: unknown): Promise<unknown>;
	setRegionHeaders(res: Res): void;
	logAnswered(req: Req, status: number, userId: string | undefined): void;
	answerLive(req: Req, res: Res): void;
	clientRequestId(req: Req): string;
	answerEarly(req: Req, res: Res, err: Error): void;
	errorHandler(req: Req, res: Res, err: Error): void;
	authenticate(ctx: Ctx, route: unknown, req: Req): Promise<User>;
	authorize(ctx: Ctx, route: unknown, req: Req, res: Res): Promise<void>;
	limit(key: string, res: Res): void;
	readiness(): Promise<{ ok: boolean }>;
	cacheReadable(): Set<Entity>;
	checks(): Promise<Record<string, string>>;
}

const REQUEST_ID = /^[\w.:@-]{1,128}$/;
const BEARER = /^Bearer\s+(\S+)$/i;
const LIVE = Buffer.from(JSON.stringify({ status: "live" }));
/** A body announced (even an empty one with an encoding): such a request is read and checked like any other. */
const carriesBody = (req: Req) =>
	req.headers["transfer-encoding"] !== undefined || req.headers["content-encoding"] !== undefined || (req.headers["content-length"] ?? "0") !== "0";
const WRITES = new Set(["POST", "PATCH", "PUT", "DELETE"]);
// /health/regions is the status page's data (below); like every /health/* path, it is not counted by the
// per-address limit.
const HEALTH_ALIASES = { "GET live": "api.live", "GET ready": "api.ready", "GET regions": "api.publicRegions" };
const STATUS_ALIASES = { "GET /": "api.statusPage" };
/** How long one answer of api.regions is shared by every caller of /health/regions. */
const PUBLIC_REGIONS_CACHE_MS = 250;
const OPENAPI_ALIASES = { "GET openapi.json": "api.openapi" };
const BODY = jsonBody({ limit: "64kb" });

/** "ok" if the dependency answers within a second, else "down". */
function probe(p: Promise<unknown>): Promise<string> {
	const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 1000).unref());
	return Promise.race([p, timeout]).then(
		() => "ok",
		() => "down",
	);
}

const ApiService: WalletService<ApiThis> = {
	name: "api",
	// No database pool of its own: a gateway holds no connections, and a node that runs only the gateway
	// checks the database only through the services it hosts (readiness below).
	mixins: [ApiGateway, RoleFollowerMixin],
	settings: {
		port: 3000,
		ip: "127.0.0.1",
		logRequest: "debug",
		logResponse: "debug",
		// X-Region on every response; a client's X-Request-ID is kept when sane, else one is made. A
		// client's id names the request in logs and answers but never a trace: traces get an id made here.
		rootCallOptions(this: ApiThis, options: { requestID?: string; meta?: Record<string, unknown> }, req: Req, res: Res) {
			if (!options.requestID || !REQUEST_ID.test(options.requestID)) options.requestID = randomUUID();
			else if (this.tracing) options.meta = { [TRACE_ID]: randomUUID() };
			req.$startedAt = performance.now();
			this.setRegionHeaders(res);
		},
		routes: [
			{
				path: "/api/v1",
				mappingPolicy: "restrict",
				authentication: true,
				authorization: true,
				bodyParsers: false,
				use: [BODY],
				// The budget of a whole request, retries included; each attempt is also bounded by its
				// action's timeout, and nested calls get what is left (middlewares/deadline.ts).
				callOptions: { timeout: 8000 },
				aliases: ROUTES,
				onAfterCall(this: ApiThis, ctx: Ctx, _route: unknown, req: Req, _res: Res, data: unknown) {
					this.logAnswered(req, ctx.meta.$statusCode ?? 200, ctx.meta.user?.id);
					return data;
				},
			},
			{
				path: "/health",
				mappingPolicy: "restrict",
				bodyParsers: false,
				use: [BODY],
				aliases: HEALTH_ALIASES,
			},
			{
				path: "/api",
				mappingPolicy: "restrict",
				bodyParsers: false,
				use: [BODY],
				aliases: OPENAPI_ALIASES,
			},
			{
				path: "/status",
				mappingPolicy: "restrict",
				bodyParsers: false,
				use: [BODY],
				aliases: STATUS_ALIASES,
			},
		],
		onError(this: ApiThis, req: Req, res: Res, err: Error) {
			const requestId = req.$ctx?.requestID ?? String(res.getHeader("X-Request-ID") ?? "");
			const { status, body, headers } = errorBody(err, requestId);
			if (status === 409) this.broker.metrics.increment(M.CONFLICTS, { code: body.error.code });
			const line = `${req.method} ${req.originalUrl ?? req.url} ${status}`;
			if (status === 500) this.logger.error(`${line} failed`, { requestId, err });
			else if (status === 503) this.logger.warn(`${line}: ${err.message}`, { requestId });
			else this.logger.info(`${line} ${body.error.code}`, { requestId });
			if (res.headersSent) return;
			res.setHeader("X-Region", this.region);
			for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
			res.setHeader("Content-Type", "application/json; charset=utf-8");
			res.writeHead(status);
			res.end(JSON.stringify(body));
		},
	},
	actions: {
		live: {
			handler() {
				return { status: "live" };
			},
		},
		// Public and unauthenticated: answered from a probe at most READY_CACHE_MS old, and without the
		// dependencies' details (those are logged, and given by api.health to operators).
		ready: {
			async handler(this: ApiThis, ctx: Ctx) {
				// Not before every service of this node has started (the embedded default's services wait for
				// its PostgreSQL; the gateway alone does not).
				const { ok } = this.broker.started ? await this.readiness() : { ok: false };
				if (!ok) throw new Errors.MoleculerError("Not ready", 503, "NOT_READY");
				ctx.meta.$statusCode = 200;
				return { status: "ready" };
			},
		},
		// The details, for operators: callable through the broker (REPL, other nodes), not over HTTP.
		health: {
			visibility: "public",
			async handler(this: ApiThis) {
				const checks = await this.checks();
				const ok = Object.values(checks).every(v => v !== "down");
				return { status: ok ? "ready" : "not ready", region: this.region, checks };
			},
		},
		regions: {
			async handler(this: ApiThis, ctx: Context) {
				const cfg = appConfig(this.broker);
				const status: ReplicationStatus | undefined =
					cfg.replication.mode === "off" ? undefined : await ctx.call<ReplicationStatus>("replication.status").catch(() => undefined);
				const link = regionLink(this.broker);
				const watched: RegionsStatus | undefined = cfg.failover.enabled
					? await ctx.call<RegionsStatus, undefined>("regions.status", undefined, { timeout: 2000 }).catch(() => undefined)
					: undefined;
				return {
					servedBy: cfg.region,
					replication: cfg.replication.mode,
					failover: cfg.failover.enabled,
					durability: cfg.failover.durability,
					regions: cfg.regions.map(name => {
						const own = watched?.ownership.find(o => o.homeRegion === name) ?? status?.ownership.find(o => o.homeRegion === name);
						const source = status?.sources.find(x => x.source === name);
						const self = name === cfg.region;
						return {
							name,
							// With failover: the watcher's view (up, suspect, down); without: another region is up if the link reaches it.
							health: self ? "up" : watched ? (watched.health[name]?.health ?? "unknown") : link ? (link.reachable(name) ? "up" : "down") : "unknown",
							owner: own?.owner ?? (self ? cfg.region : null),
							epoch: own?.epoch ?? null,
							// What is left of the owner's lease, as this region knows it (its own leases only).
							leaseRemainingMs: watched?.ownership.find(o => o.homeRegion === name)?.leaseRemainingMs ?? null,
							replicationLagMs: self ? 0 : (source?.lastLagMs ?? null),
							backlog: self ? (status?.unpublished ?? null) : (source?.backlog ?? null),
							lastEventAt: self ? null : (source?.lastEventAt ?? null),
							eventsApplied: self ? null : (source?.applied ?? null),
						};
					}),
				};
			},
		},
		// api.regions without a token (region names, health, owners, epochs, leases and lag: no user's data), for the
		// status page. Nothing limits it, so one answer serves every caller for PUBLIC_REGIONS_CACHE_MS: a flood costs
		// the database no more than a few queries a second, as /health/ready's cache does.
		publicRegions: {
			handler(this: ApiThis, ctx: Context) {
				const last = this.lastRegions;
				if (last && performance.now() - last.at < PUBLIC_REGIONS_CACHE_MS) return last.view;
				this.askingRegions ??= ctx
					.call("api.regions")
					.then(view => (this.lastRegions = { view, at: performance.now() }).view)
					.finally(() => (this.askingRegions = undefined));
				return this.askingRegions;
			},
		},
		// The operators' page (src/http/status.html), which polls /health/regions.
		statusPage: {
			handler(ctx: Ctx) {
				ctx.meta.$responseHeaders = STATUS_PAGE.headers;
				return STATUS_PAGE.html;
			},
		},
		openapi: {
			handler(this: ApiThis) {
				return openApiDocument(appConfig(this.broker));
			},
		},
	},
	methods: {
		// In front of moleculer-web: what must happen before routing, body parsing or any token check.
		httpHandler(this: ApiThis, req: Req, res: Res, next?: unknown) {
			// No ETag is ever issued, so a conditional request is answered in full (never a 304 for "*").
			delete req.headers["if-none-match"];
			delete req.headers["if-modified-since"];
			// HTTP/1.1 requires Host (Node's own check, turned off in created(), answers without a body).
			if (!req.headers.host && req.httpVersion === "1.1")
				return this.answerEarly(req, res, badRequest("BAD_REQUEST", "An HTTP/1.1 request needs a Host header"));
			const url = req.url ?? "/";
			// Liveness is this process answering, nothing more: answered here, not through the broker's bulkheads,
			// breakers and timeouts, where an overloaded node would fail its own probe and be restarted for being
			// busy. A request with a body goes the whole way (a body that does not decompress is a 400 everywhere).
			if (url === "/health/live" && req.method === "GET" && !carriesBody(req)) return this.answerLive(req, res);
			if (this.ipLimiter && !url.startsWith("/health/")) {
				const decision = this.ipLimiter.consume(`ip:${req.socket.remoteAddress}`);
				for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
				if (decision.error) {
					this.broker.metrics.increment(M.RATE_LIMITED, { by: "ip" });
					return this.answerEarly(req, res, decision.error);
				}
			}
			if (req.method === "OPTIONS") {
				const allow = this.allowed(url);
				if (!allow) return this.answerEarly(req, res, new Errors.MoleculerClientError("Not found", 404, "NOT_FOUND"));
				res.setHeader("X-Region", this.region);
				res.writeHead(204, { Allow: allow.join(", "), "X-Request-ID": this.clientRequestId(req) });
				return res.end();
			}
			if (req.method === "GET" && this.cachedReads.size > 0 && !carriesBody(req)) {
				const cached = cachedReadOf(url);
				if (cached && this.cachedReads.has(cached.entity)) return this.serveCached(req, res, cached, next);
			}
			return ApiGateway.methods!.httpHandler.call(this, req, res, next);
		},
		/**
		 * A GET of one entity whose cache entry this node can read: answered here when the entry is there and the
		 * caller may see it, with the headers the action's answer has; otherwise the whole way, as any request.
		 */
		async serveCached(this: ApiThis, req: Req, res: Res, read: CachedRead, next: unknown) {
			req.$startedAt = performance.now();
			let hit: { user: User; body: object } | undefined;
			try {
				const m = BEARER.exec(req.headers.authorization ?? "");
				if (m) {
					const { user } = await this.identity.bearer(m[1]);
					// Reached only with a generational cacher (cacheReadable), which Moleculer's typings know only as its base Cacher.
					const body = cachedAnswer(read, user, await (this.broker.cacher as unknown as GenerationalCacher).peek(read.key));
					if (body) hit = { user, body };
				}
			} catch {
				// A bad token, or the cache unavailable: the whole way answers it (its 401, or a read of the database).
			}
			if (!hit) return ApiGateway.methods!.httpHandler.call(this, req, res, next);
			try {
				this.limit(`user:${hit.user.id}`, res);
			} catch (err) {
				return this.answerEarly(req, res, err as Error);
			}
			const json = Buffer.from(JSON.stringify(hit.body));
			this.setRegionHeaders(res);
			res.writeHead(200, { "X-Request-ID": this.clientRequestId(req), "Content-Type": "application/json; charset=utf-8", "Content-Length": json.length });
			res.end(json);
			this.broker.metrics.increment(M.CACHED_READS, { entity: read.entity });
			this.logAnswered(req, 200, hit.user.id);
		},
		/** Who served an answer, and how far behind the other regions its copies may be (reads come from them). */
		setRegionHeaders(this: ApiThis, res: Res) {
			res.setHeader("X-Region", this.region);
			if (this.replicaLagMs !== undefined) res.setHeader("X-Replica-Lag-Ms", String(this.replicaLagMs));
		},
		/** The access log: one line per answered request, with its request id (errors: onError). */
		logAnswered(this: ApiThis, req: Req, status: number, userId: string | undefined) {
			this.logger.info(`${req.method} ${req.originalUrl ?? req.url} ${status}`, {
				user: userId,
				ms: Math.round(performance.now() - (req.$startedAt ?? performance.now())),
			});
		},
		answerLive(this: ApiThis, req: Req, res: Res) {
			res.writeHead(200, { "X-Region": this.region, "X-Request-ID": this.clientRequestId(req), "Content-Type": "application/json; charset=utf-8", "Content-Length": LIVE.length });
			res.end(LIVE);
		},
		/** For an answer given before moleculer-web makes the request's context. */
		clientRequestId(req: Req): string {
			const id = req.headers["x-request-id"];
			return typeof id === "string" && REQUEST_ID.test(id) ? id : randomUUID();
		},
		answerEarly(this: ApiThis, req: Req, res: Res, err: Error) {
			res.setHeader("X-Request-ID", this.clientRequestId(req));
			this.sendError(req, res, err);
		},
		// onError logs what deserves it, once, with the request id; moleculer-web's own log is skipped.
		errorHandler(this: ApiThis, req: Req, res: Res, err: Error) {
			this.sendError(req, res, err);
		},
		// The actions never see the bearer token: they get a short-lived assertion of this request's user,
		// signed with INTERNAL_SECRET, which every service verifies (docs/security.md).
		async authenticate(this: ApiThis, ctx: Ctx, _route: unknown, req: Req): Promise<User> {
			const header = req.headers.authorization;
			if (!header) throw unauthorized("Missing Authorization header");
			const m = BEARER.exec(header);
			if (!m) throw unauthorized("The Authorization header must be 'Bearer <token>'", "INVALID_TOKEN");
			const identity = this.identity;
			const { user, exp } = await identity.bearer(m[1]);
			ctx.meta.assertion = await identity.internal.signUser(user, ctx.requestID!, exp);
			return user;
		},
		// Runs after authentication, so an anonymous request is a 401 before anything else.
		async authorize(this: ApiThis, ctx: Ctx, _route: unknown, req: Req, res: Res) {
			if (ctx.meta.user) this.limit(`user:${ctx.meta.user.id}`, res);
			if (!req.$params) return;
			// moleculer-web merges the query over the body: on a write, a query parameter could replace a
			// checked body field (or the idempotency key), so a write with a query string is refused.
			if (WRITES.has(req.method ?? "") && req.query && Object.keys(req.query).length > 0)
				throw badRequest("QUERY_NOT_ALLOWED", `${req.method} takes its parameters from the body only, not the query string`);
			// Decided by the action the route resolved to, whatever the URL's spelling (/claims/, ?x=1).
			if (req.$action?.name === "claiming.claim") {
				const key = req.headers["idempotency-key"];
				if (typeof key !== "string" || key.length === 0)
					throw badRequest("IDEMPOTENCY_KEY_REQUIRED", "POST /claims needs an Idempotency-Key header");
				// The key comes from the header only; a body field of that name is replaced.
				req.$params.idempotencyKey = key;
			}
		},
		limit(this: ApiThis, key: string, res: Res) {
			const decision = this.rateLimiter.consume(key);
			for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
			if (decision.error) {
				this.broker.metrics.increment(M.RATE_LIMITED, { by: key.startsWith("user:") ? "user" : "ip" });
				throw decision.error;
			}
		},
		/** The last probe's verdict if fresh, else one probe shared by every caller waiting for it. */
		readiness(this: ApiThis): Promise<{ ok: boolean }> {
			const last = this.lastReadiness;
			if (last && performance.now() - last.at < this.readyCacheMs) return Promise.resolve(last);
			this.probing ??= this.checks()
				.then(checks => {
					const ok = Object.values(checks).every(v => v !== "down");
					if (!ok) this.logger.warn("Not ready", { checks });
					this.lastReadiness = { ok, at: performance.now() };
					return this.lastReadiness;
				})
				.finally(() => (this.probing = undefined));
			return this.probing;
		},
		/**
		 * The entities whose `find` entries this node can read: all of them from a shared cache (Redis); from a
		 * node's memory cache, those of the services it runs (no other service stores there, or hears of writes).
		 * None while tracing: each request then gets its spans the whole way.
		 */
		cacheReadable(this: ApiThis): Set<Entity> {
			const cacher = this.broker.cacher;
			if (!appConfig(this.broker).cachedReads || this.tracing || !isGenerational(cacher)) return new Set();
			const all: Entity[] = ["order", "supply", "claiming"];
			return new Set(cacher.shared ? all : all.filter(e => this.broker.getLocalService(e)));
		},
		async checks(this: ApiThis): Promise<Record<string, string>> {
			// The clients of the Redis cacher and the NATS transporter: Moleculer's typings have them on those classes
			// only, not on the base classes the broker is typed with.
			const cacher = this.broker.cacher as { client?: { ping?(): Promise<unknown> } } | undefined;
			// transit.connected stays true while NATS reconnects: ask the client for a round trip instead.
			const transit = this.broker.transit;
			const client = (transit?.tx as { client?: { flush?(): Promise<void> } } | undefined)?.client;
			// PostgreSQL through a pool of a service on this node (supply, order, claiming), if it runs one.
			const pool = (this.broker.services as { pool?: { query(q: string): Promise<unknown> } }[]).map(svc => svc.pool).find(Boolean);
			const [postgres, redis, transporter] = await Promise.all([
				pool ? probe(pool.query("SELECT 1")) : "not used",
				cacher?.client?.ping ? probe(cacher.client.ping()) : "disabled",
				!transit ? "disabled" : !transit.connected ? "down" : typeof client?.flush === "function" ? probe(client.flush()) : "ok",
			]);
			return { postgres, redis, transporter };
		},

	},
	created(this: ApiThis) {
		const cfg = appConfig(this.broker);
		this.region = cfg.region;
		this.settings.port = cfg.port;
		this.identity = identityFor(cfg);
		this.settings.ip = cfg.host;
		this.tracing = this.broker.isTracingEnabled();
		this.cachedReads = new Set<Entity>(); // known once every service of the node is loaded (started)
		this.readyCacheMs = cfg.readyCacheMs;
		this.allowed = methodTable([
			{ prefix: "/api/v1", aliases: ROUTES },
			{ prefix: "/health", aliases: HEALTH_ALIASES },
			{ prefix: "/api", aliases: OPENAPI_ALIASES },
			{ prefix: "/status", aliases: STATUS_ALIASES },
		]);
		// One connection for both limiters' batched syncs; a request never waits for it.
		if (cfg.redisUrl) {
			this.rateLimitRedis = new Redis(redisOptions(cfg.redisUrl));
			this.rateLimitRedis.on("error", () => undefined); // readiness reports Redis; the limiters count locally meanwhile
		}
		const store = this.rateLimitRedis ? redisCounterStore(this.rateLimitRedis) : undefined;
		const { points, windowSec, ipPoints, syncMs } = cfg.rateLimit;
		this.rateLimiter = new RateLimiter({ points, windowSec, keyPrefix: `${cfg.namespace}:rl:user`, store, syncMs });
		if (ipPoints > 0)
			this.ipLimiter = new RateLimiter({ points: ipPoints, windowSec, keyPrefix: `${cfg.namespace}:rl:ip`, store, syncMs });
		answerClientErrors(this.server, { "X-Region": this.region });
		this.server.requireHostHeader = false; // checked in httpHandler, answered with the JSON body
	},
	started(this: ApiThis) {
		this.cachedReads = this.cacheReadable();
		if (appConfig(this.broker).replication.mode === "off") return;
		// Refreshed in the background, never on a request's path. Unknown (no header) while it cannot be read.
		const refresh = async () => {
			try {
				// Not yet (or no longer) registered: unknown, without asking (and without a warning per second).
				// Without a node ID the registry looks on every node; Moleculer's typings make the node ID required.
				if (!(this.broker.registry as { hasService(fullName: string, nodeID?: string): boolean }).hasService("replication"))
					throw new Error("no replication service");
				const s = (await serviceContext(this).call("replication.status", undefined, { timeout: 2000 })) as ReplicationStatus;
				this.replicaLagMs = Math.max(0, ...s.sources.map(x => (x.backlog ? (x.lastLagMs ?? 0) + Date.now() - Date.parse(x.lastAppliedAt ?? "") || 0 : (x.lastLagMs ?? 0))));
			} catch {
				this.replicaLagMs = undefined;
			}
		};
		this.lagTimer = setInterval(refresh, 1000);
		void refresh();
	},
	async stopped(this: ApiThis) {
		clearInterval(this.lagTimer);
		await Promise.all([this.rateLimiter?.close(), this.ipLimiter?.close()]);
		this.rateLimitRedis?.disconnect();
	},
};

export default ApiService;
