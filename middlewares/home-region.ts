// Home region as single writer (brief §5). A write action that declares `home: true` runs here first: the
// SQL is fenced by ownership, so when this region does not write the entity's home region it refuses with
// NOT_OWNER before changing anything, and this middleware sends the same call to the region that does,
// returning its answer as if it were local (status, body, headers; X-Region names the region that served
// it). A same-region write costs nothing extra. A forwarded call is never forwarded again: if the owner
// refuses too (ownership is moving), the caller gets the retryable 503.
// A call to a service of the wallet that has no live node in this region (all its nodes lost) is sent whole to a
// healthy region the same way (the next reachable one in FAILOVER_ORDER after this one), once: a rerouted call is
// not rerouted again; there, a write of an entity homed elsewhere is forwarded to its owner as usual.
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
	/** The region that sent this call here because it had no live node for the service. */
	$rerouted?: string;
	$statusCode?: number;
	$location?: string;
	$responseHeaders?: Record<string, string>;
};

/** The services users reach through the gateway: what a region without a live node of them sends elsewhere. */
const REROUTED_SERVICES = new Set(["supply", "order", "claiming"]);
const NO_NODE = new Set(["SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE"]);

/** The caller's own credential travels: the other region verifies it as this one did. */
function credentials(from: Meta | undefined, to: Meta) {
	if (from?.assertion !== undefined) to.assertion = from.assertion;
	else if (from?.token !== undefined) to.token = from.token;
	return to;
}

/** What the remote action set for the HTTP answer, on the caller's context; X-Region names who served it. */
function answerAs(ctx: Context<unknown, Meta>, meta: Meta, region: string) {
	if (meta.$statusCode !== undefined) ctx.meta.$statusCode = meta.$statusCode;
	if (meta.$location !== undefined) ctx.meta.$location = meta.$location;
	ctx.meta.$responseHeaders = { ...ctx.meta.$responseHeaders, ...meta.$responseHeaders, "X-Region": region };
}

/** The first reachable region after this one in FAILOVER_ORDER. */
function nextHealthy(cfg: Config, link: RegionLink): string | undefined {
	const order = cfg.failover.order;
	const at = order.indexOf(cfg.region);
	return [...order.slice(at + 1), ...order.slice(0, at)].find(r => link.reachable(r));
}

/**
 * A local endpoint of `action` whose handler runs it in `region` (once: the call carries $rerouted) and answers with
 * what it answered there. Only the lookup makes one, when no node of the action's service is alive here.
 */
function rerouteEndpoint(broker: ServiceBroker, action: string, region: string, link: RegionLink, cfg: Config) {
	const handler = async (ctx: Context<unknown, Meta>) => {
		const meta = credentials(ctx.meta, { $rerouted: cfg.region });
		broker.metrics.increment(M.REROUTED, { target: region });
		const result = await link.call(region, action, ctx.params, {
			meta,
			requestID: ctx.requestID ?? undefined,
			timeout: ctx.options?.timeout ?? cfg.requestTimeoutMs,
			caller: ctx,
		});
		answerAs(ctx, meta, region);
		return result;
	};
	return { id: broker.nodeID, local: true, state: true, node: broker.registry.nodes.localNode, action: { name: action, rawName: action.split(".").slice(1).join("."), handler } };
}

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
			// The lookup every call makes (broker.call, and moleculer-web before authentication): with no live node of a
			// wallet service here, it answers with an endpoint whose handler sends the call to a healthy region.
			const find = b.findNextActionEndpoint.bind(b);
			b.findNextActionEndpoint = ((name: unknown, opts: unknown, ctx?: Context<unknown, Meta>) => {
				const found = find(name as string, opts as never, ctx as never);
				const e = found as unknown as Errors.MoleculerError;
				if (!(found instanceof Error) || !NO_NODE.has(e.type) || typeof name !== "string" || !theLink) return found;
				if (!REROUTED_SERVICES.has(name.split(".")[0]) || ctx?.meta?.$forwarded || ctx?.meta?.$rerouted) return found;
				const region = nextHealthy(cfg, theLink);
				return region ? rerouteEndpoint(b, name, region, theLink, cfg) : found;
			}) as typeof b.findNextActionEndpoint;
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
					const meta = credentials(ctx.meta, { $forwarded: cfg.region });
					broker.metrics.increment(M.FORWARDED, { target: owner });
					const result = await theLink.call(owner, action.name, ctx.params, {
						meta,
						requestID: ctx.requestID ?? undefined,
						timeout: action.timeout ?? cfg.requestTimeoutMs,
						caller: ctx,
					});
					answerAs(ctx, meta, owner);
					return result;
				}
			} as unknown as typeof handler;
		},
	} as Middleware;
}
