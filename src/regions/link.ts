// The link between regions: a call made in one region and run in another (forwarded writes, holds on a
// supply homed elsewhere). One interface, two adapters, as for the event log: in-process (the regions of
// the embedded default and of tests share a process) and, across processes, Moleculer's own transporter on
// a global namespace (docs/multi-region.md).
import { randomUUID } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import type { InternalAuth } from "../lib/identity";

export interface LinkCallOptions {
	meta: Record<string, unknown>;
	/** Signs the call as this region's (for internal actions): the target verifies it (middlewares/permissions.ts). */
	asRegion?: boolean;
	requestID?: string;
	/** Every remote call has a deadline. */
	timeout: number;
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

/** The link of each broker (set up by the HomeRegion middleware), for services that call other regions. */
const links = new WeakMap<ServiceBroker, RegionLink>();
export const setRegionLink = (broker: ServiceBroker, link: RegionLink) => links.set(broker, link);
export const regionLink = (broker: ServiceBroker): RegionLink | undefined => links.get(broker);
