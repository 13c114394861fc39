// Home region as single writer (brief §5). A write action that declares `home: true` runs here first: the
// SQL is fenced by ownership, so when this region does not write the entity's home region it refuses with
// NOT_OWNER before changing anything, and this middleware sends the same call to the region that does,
// returning its answer as if it were local (status, body, headers; X-Region names the region that served
// it). A same-region write costs nothing extra. A forwarded call is never forwarded again: if the owner
// refuses too (ownership is moving), the caller gets the retryable 503.
import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";
import type { Pool } from "pg";
import type { Config } from "../config";
import { M } from "../src/lib/metrics";
import { ownerOf } from "../src/store/commands";
import { identityFor } from "../src/lib/identity";
import { unreachable } from "../src/regions/bridge";
import { InProcessLink, registerLocalRegion, ServiceLink, setRegionLink, unregisterLocalRegion, type RegionLink } from "../src/regions/link";

type Meta = {
	assertion?: string;
	token?: string;
	$forwarded?: string;
	$statusCode?: number;
	$location?: string;
	$responseHeaders?: Record<string, string>;
};

export function HomeRegionMiddleware(cfg: Config, link?: RegionLink): Middleware {
	let broker: ServiceBroker;
	let theLink =
		link ?? (cfg.replication.link === "memory" ? new InProcessLink(cfg.namespace, cfg.region, identityFor(cfg).internal) : undefined);
	return {
		name: "HomeRegion",
		created(b: ServiceBroker) {
			broker = b;
			// Across processes: through this region's link service (services/link.service.ts).
			if (!theLink && cfg.replication.link === "kafka") theLink = new ServiceLink(b, cfg.region, identityFor(cfg).internal);
			if (theLink) setRegionLink(b, theLink);
		},
		async started() {
			if (cfg.replication.link === "memory") registerLocalRegion(cfg.namespace, cfg.region, broker);
		},
		async stopped() {
			unregisterLocalRegion(cfg.namespace, cfg.region, broker);
		},
		localAction(handler: (ctx: Context) => Promise<unknown>, action: { name: string; home?: boolean; timeout?: number }) {
			if (!action.home) return handler;
			return async function forwardToOwner(ctx: Context<unknown, Meta>) {
				try {
					return await handler(ctx);
				} catch (err) {
					const e = err as Errors.MoleculerError & { data?: { homeRegion?: string } };
					if (e?.type !== "NOT_OWNER" || ctx.meta.$forwarded || !theLink) throw err;
					const home = e.data?.homeRegion;
					const pool = (ctx.service as unknown as { pool?: Pool })?.pool;
					const owner = home && pool ? await ownerOf(pool, home) : undefined;
					// No lease here (cut off, or just started), or ownership on the move: fenced, nothing written.
					if (!owner || owner === cfg.region) {
						broker.metrics.increment(M.FENCED);
						throw err;
					}
					if (!theLink.reachable(owner)) throw unreachable(owner);
					// The caller's own credential travels: the owner verifies it as this region did.
					const meta: Meta = { $forwarded: cfg.region };
					if (ctx.meta.assertion !== undefined) meta.assertion = ctx.meta.assertion;
					else if (ctx.meta.token !== undefined) meta.token = ctx.meta.token;
					broker.metrics.increment(M.FORWARDED, { target: owner });
					const result = await theLink.call(owner, action.name, ctx.params, {
						meta,
						requestID: ctx.requestID ?? undefined,
						timeout: action.timeout ?? cfg.requestTimeoutMs,
						caller: ctx,
					});
					if (meta.$statusCode !== undefined) ctx.meta.$statusCode = meta.$statusCode;
					if (meta.$location !== undefined) ctx.meta.$location = meta.$location;
					ctx.meta.$responseHeaders = { ...ctx.meta.$responseHeaders, ...meta.$responseHeaders, "X-Region": owner };
					return result;
				}
			} as unknown as typeof handler;
		},
	} as Middleware;
}
