// The REST gateway (moleculer-web): routes of brief §3, bearer-token authentication, per-user rate
// limiting, the error body, health endpoints and the OpenAPI document.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Errors, type Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import ApiGateway from "moleculer-web";
import { appConfig } from "../mixins/config";
import { DbMixin } from "../mixins/db.mixin";
import { badRequest, unauthorized } from "../src/domain/errors";
import type { User } from "../src/domain/types";
import { errorBody } from "../src/lib/http-errors";
import { identityFor, type Identity } from "../src/lib/identity";
import { M } from "../src/lib/metrics";
import { RateLimiter } from "../src/lib/rate-limit";
import { openApiDocument } from "../src/openapi";
import { ROUTES } from "../src/routes";

type Req = IncomingMessage & { originalUrl?: string; $startedAt?: number; $ctx?: Context; $params?: Record<string, unknown>; $route?: unknown };
type Res = ServerResponse & { $ctx?: Context };

const REQUEST_ID = /^[\w.:@-]{1,128}$/;


/** "ok" if the dependency answers within a second, else "down". */
function probe(p: Promise<unknown>): Promise<string> {
	const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 1000).unref());
	return Promise.race([p, timeout]).then(
		() => "ok",
		() => "down",
	);
}

const ApiService: WalletService = {
	name: "api",
	mixins: [ApiGateway, DbMixin],
	settings: {
		port: 3000,
		ip: "0.0.0.0",
		logRequest: "debug",
		logResponse: "debug",
		// X-Region on every response; a client's X-Request-ID is kept when sane, else one is made.
		rootCallOptions(this: any, options: { requestID?: string }, req: Req, res: Res) {
			if (!options.requestID || !REQUEST_ID.test(options.requestID)) options.requestID = randomUUID();
			req.$startedAt = performance.now();
			res.setHeader("X-Region", this.region);
		},
		routes: [
			{
				path: "/api/v1",
				mappingPolicy: "restrict",
				authentication: true,
				authorization: true,
				bodyParsers: { json: { strict: true, limit: "64kb" }, urlencoded: false },
				// The budget of a whole request, retries included; each attempt is also bounded by its
				// action's timeout, and nested calls get what is left (middlewares/deadline.ts).
				callOptions: { timeout: 8000 },
				aliases: ROUTES,
				async onBeforeCall(this: any, _ctx: Context, _route: unknown, req: Req, res: Res) {
					if (!req.headers.authorization) await this.limit(`ip:${req.socket.remoteAddress}`, res);
				},
				// The access log: one line per answered request, with its request id (errors: onError).
				onAfterCall(this: any, ctx: Context<unknown, any>, _route: unknown, req: Req, _res: Res, data: unknown) {
					this.logger.info(`${req.method} ${req.originalUrl ?? req.url} ${ctx.meta.$statusCode ?? 200}`, {
						user: ctx.meta.user?.id,
						ms: Math.round(performance.now() - (req.$startedAt ?? performance.now())),
					});
					return data;
				},
			},
			{
				path: "/health",
				mappingPolicy: "restrict",
				aliases: { "GET live": "api.live", "GET ready": "api.ready" },
			},
			{
				path: "/api",
				mappingPolicy: "restrict",
				aliases: { "GET openapi.json": "api.openapi" },
			},
		],
		onError(this: any, req: Req, res: Res, err: Error) {
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
		ready: {
			async handler(this: any, ctx: Context<unknown, any>) {
				const checks = await this.checks();
				const ok = Object.values(checks).every(v => v !== "down");
				if (!ok) throw new Errors.MoleculerError("Not ready", 503, "NOT_READY", { checks });
				ctx.meta.$statusCode = 200;
				return { status: "ready", region: this.region, checks };
			},
		},
		regions: {
			handler(this: any) {
				const cfg = appConfig(this.broker);
				return {
					servedBy: cfg.region,
					regions: cfg.regions.map(name => ({
						name,
						// One region is built so far; the others are reported as unknown until §5 lands.
						health: name === cfg.region ? "up" : "unknown",
						epoch: 0,
						replicationLagMs: name === cfg.region ? 0 : null,
						owner: name === cfg.region ? cfg.region : null,
					})),
				};
			},
		},
		openapi: {
			handler(this: any) {
				return openApiDocument(appConfig(this.broker));
			},
		},
	},
	methods: {
		// onError logs what deserves it, once, with the request id; moleculer-web's own log is skipped.
		errorHandler(this: any, req: Req, res: Res, err: Error) {
			this.sendError(req, res, err);
		},
		// The actions never see the bearer token: they get a short-lived assertion of this request's user,
		// signed with INTERNAL_SECRET, which every service verifies (docs/security.md).
		async authenticate(this: any, ctx: Context<unknown, { assertion?: string }>, _route: unknown, req: Req): Promise<User> {
			const header = req.headers.authorization;
			if (!header) throw unauthorized("Missing Authorization header");
			const m = /^Bearer\s+(\S+)$/i.exec(header);
			if (!m) throw unauthorized("The Authorization header must be 'Bearer <token>'", "INVALID_TOKEN");
			const identity = this.identity as Identity;
			const { user, exp } = await identity.bearer(m[1]);
			ctx.meta.assertion = await identity.internal.signUser(user, ctx.requestID!, exp);
			return user;
		},
		// Runs after authentication, so an anonymous request is a 401 before anything else.
		async authorize(this: any, ctx: Context<unknown, { user?: User }>, _route: unknown, req: Req, res: Res) {
			if (ctx.meta.user) await this.limit(`user:${ctx.meta.user.id}`, res);
			if (req.$params && req.method === "POST" && req.url === "/claims") {
				const key = req.headers["idempotency-key"];
				if (typeof key !== "string" || key.length === 0)
					throw badRequest("IDEMPOTENCY_KEY_REQUIRED", "POST /claims needs an Idempotency-Key header");
				// The key comes from the header only; a body field of that name is ignored.
				req.$params.idempotencyKey = key;
			}
		},
		async limit(this: any, key: string, res: Res) {
			const decision = await (this.rateLimiter as RateLimiter).consume(key);
			for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
			if (decision.error) {
				this.broker.metrics.increment(M.RATE_LIMITED, { by: key.startsWith("user:") ? "user" : "ip" });
				throw decision.error;
			}
		},
		async checks(this: any): Promise<Record<string, string>> {
			const cacher = this.broker.cacher;
			// transit.connected stays true while NATS reconnects: ask the client for a round trip instead.
			const transit = this.broker.transit;
			const client = transit?.tx?.client;
			const [postgres, redis, transporter] = await Promise.all([
				probe(this.pool.query("SELECT 1")),
				cacher?.client?.ping ? probe(cacher.client.ping()) : "disabled",
				!transit ? "disabled" : !transit.connected ? "down" : typeof client?.flush === "function" ? probe(client.flush()) : "ok",
			]);
			return { postgres, redis, transporter };
		},

	},
	created(this: any) {
		const cfg = appConfig(this.broker);
		this.region = cfg.region;
		this.settings.port = cfg.port;
		this.identity = identityFor(cfg);
		this.rateLimiter = new RateLimiter(
			cfg.rateLimit.points,
			cfg.rateLimit.windowSec,
			cfg.redisUrl,
			`${cfg.namespace}:ratelimit`,
		);
	},
	async stopped(this: any) {
		await this.rateLimiter?.close();
	},
};

export default ApiService;
