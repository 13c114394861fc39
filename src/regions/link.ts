// The link between regions: a call made in one region and run in another (forwarded writes, holds on a
// supply homed elsewhere). One interface, two adapters, as for the event log: in-process (the regions of
// the embedded default and of tests share a process) and, across processes, Moleculer's own transporter on
// a global namespace (docs/multi-region.md).
import { randomUUID } from "node:crypto";
import type { Context, ServiceBroker } from "moleculer";
import type { InternalAuth } from "../lib/identity";
import { LINK_ANSWER_META, type LinkEnvelope } from "./bridge";

export interface LinkCallOptions {
	meta: Record<string, unknown>;
	/** Signs the call as this region's (for internal actions): the target verifies it (middlewares/permissions.ts). */
	asRegion?: boolean;
	requestID?: string;
	/** Every remote call has a deadline. */
	timeout: number;
	/**
	 * The context of the service that calls (an action's, or serviceContext(service) outside a request): across
	 * processes the call goes through `link.forward`, an internal action, so a trusted service must make it.
	 */
	caller?: Context;
}

export interface RegionLink {
	/** Runs `action` in `region`; `meta` comes back with what the action set in it ($statusCode, headers). */
	call<T = unknown>(region: string, action: string, params: unknown, opts: LinkCallOptions): Promise<T>;
	/** Whether `region` can be called from here now. */
	reachable(region: string): boolean;
}

export class RegionUnreachableError extends Error {}

/** The brokers of each region in this process, by namespace. */
const brokers = new Map<string, Map<string, ServiceBroker>>();

export function registerLocalRegion(namespace: string, region: string, broker: ServiceBroker) {
	let ns = brokers.get(namespace);
	if (!ns) brokers.set(namespace, (ns = new Map()));
	ns.set(region, broker);
}

export function unregisterLocalRegion(namespace: string, region: string, broker: ServiceBroker) {
	if (brokers.get(namespace)?.get(region) === broker) brokers.get(namespace)!.delete(region);
}

/** Regions in this process: a call is a call on the other region's broker. */
export class InProcessLink implements RegionLink {
	constructor(
		private readonly namespace: string,
		private readonly region: string,
		private readonly auth: InternalAuth,
	) {}

	reachable(region: string) {
		return brokers.get(this.namespace)?.get(region)?.started === true;
	}

	async call<T>(region: string, action: string, params: unknown, opts: LinkCallOptions): Promise<T> {
		const target = brokers.get(this.namespace)?.get(region);
		if (!target?.started) throw new RegionUnreachableError(`region ${region} is not reachable`);
		const requestID = opts.requestID ?? randomUUID();
		if (opts.asRegion) opts.meta.$link = this.auth.signLink(this.region, action, requestID);
		// A call without a parent context keeps the meta object itself, so what the action sets comes back.
		return target.call<T, unknown>(action, params, { meta: opts.meta, requestID, timeout: opts.timeout });
	}
}

/**
 * Regions in other processes (LINK=kafka): a call goes through this region's `link.forward` (services/link.service.ts)
 * to the other region's link node on the global broker, which runs it there (src/regions/bridge.ts).
 */
export class ServiceLink implements RegionLink {
	constructor(
		private readonly broker: ServiceBroker,
		private readonly region: string,
		private readonly auth: InternalAuth,
	) {}

	/**
	 * A link node serves this region and, when it is this node, it sees a link node of `region` on the global
	 * namespace (a link node elsewhere in the region checks that on each call: REGION_UNREACHABLE).
	 */
	reachable(region: string): boolean {
		if (this.broker.registry.getActionEndpoints("link.forward")?.hasAvailable() !== true) return false;
		const local = this.broker.getLocalService("link") as unknown as { reaches?(region: string): boolean } | undefined;
		return local?.reaches ? local.reaches(region) : true;
	}

	async call<T>(region: string, action: string, params: unknown, opts: LinkCallOptions): Promise<T> {
		if (!opts.caller) throw new Error(`A call of ${action} in region ${region} needs the calling service's context (opts.caller)`);
		const requestID = opts.requestID ?? opts.caller.requestID ?? randomUUID();
		if (opts.asRegion) opts.meta.$link = this.auth.signLink(this.region, action, requestID);
		const envelope = await opts.caller.call<LinkEnvelope<T>, unknown>(
			"link.forward",
			{ region, action, params, meta: opts.meta },
			{ requestID, timeout: opts.timeout },
		);
		const answered = (envelope?.meta ?? {}) as Record<string, unknown>;
		for (const k of LINK_ANSWER_META) if (answered[k] !== undefined) opts.meta[k] = answered[k];
		return envelope?.result as T;
	}
}

/** The link of each broker (set up by the HomeRegion middleware), for services that call other regions. */
const links = new WeakMap<ServiceBroker, RegionLink>();
export const setRegionLink = (broker: ServiceBroker, link: RegionLink) => links.set(broker, link);
export const regionLink = (broker: ServiceBroker): RegionLink | undefined => links.get(broker);
