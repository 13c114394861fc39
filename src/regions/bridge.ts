// The region link across processes (LINK=kafka, docs/multi-region.md): a second Moleculer broker per link node,
// on a namespace every region shares, over Kafka (a Moleculer transporter on kafkajs: ./kafka-transporter.ts). Each region's link nodes host
// `link-<region>.call` there, which runs an action on that region's broker; `link.forward` on a regional broker
// sends a call to another region's `link-<region>.call`. Inside a region everything stays NATS.
// Moleculer wiring is services/link.service.ts; this is what it does.
import { Errors, Loggers, ServiceBroker, type BrokerOptions, type Context, type ServiceSchema } from "moleculer";
import type { Config } from "../../config";
import { KafkaLinkTransporter } from "./kafka-transporter";

/** The only meta keys that cross the link: credentials the target verifies itself, and the no-second-hop mark. */
export const LINK_CREDENTIALS = ["assertion", "token", "$link", "$forwarded"] as const;
/** What the action set in meta for the gateway, carried back across the link. */
export const LINK_ANSWER_META = ["$statusCode", "$location", "$responseHeaders"] as const;

export type LinkMeta = Record<string, unknown>;

/** What `link-<region>.call` answers: the action's result, and what it set in meta for the answer. */
export interface LinkEnvelope<T = unknown> {
	result: T;
	meta: { $statusCode?: number; $location?: string; $responseHeaders?: Record<string, string> };
}

/** `link-<region>.call`: an action of that region, its params, the caller's credentials. */
export interface CallParams {
	action: string;
	params?: unknown;
	meta?: LinkMeta;
	/** When the caller stops waiting (epoch ms): a call that arrives later is not run (see runHere). */
	deadline?: number;
}

/** `link.forward`: the same, and the region to run it in. */
export interface ForwardParams extends CallParams {
	region: string;
}

export const globalServiceName = (region: string) => `link-${region}`;
const callAction = (region: string) => `${globalServiceName(region)}.call`;

/** The link node's id on the global namespace: fixed as long as the regional node id is (Kafka topics carry it). */
export function linkNodeID(region: string, regionalNodeID: string): string {
	return regionalNodeID.startsWith(`${region}-`) ? regionalNodeID : `${region}-${regionalNodeID}`;
}

// Moleculer's topics (transit.js makeSubscriptions): broadcast ones, and per node.
const BROADCAST = ["DISCOVER", "INFO", "DISCONNECT", "HEARTBEAT", "PING"];
const PER_NODE = ["EVENT", "REQ", "RES", "DISCOVER", "INFO", "PING", "PONG"];

/**
 * The Kafka topics the global brokers of these link nodes subscribe to. Moleculer's Kafka transporter creates
 * missing ones with CreateTopics, which the test broker (librdkafka's mock) does not serve: create them first.
 */
export function linkTopics(namespace: string, nodeIDs: string[]): string[] {
	const prefix = `MOL-${namespace}`;
	return [...BROADCAST.map(cmd => `${prefix}.${cmd}`), ...nodeIDs.flatMap(id => PER_NODE.map(cmd => `${prefix}.${cmd}.${id}`))];
}

const pick = (meta: LinkMeta | undefined, keys: readonly string[]): LinkMeta => {
	const out: LinkMeta = {};
	for (const k of keys) if (meta?.[k] !== undefined) out[k] = meta[k];
	return out;
};

export const unreachable = (region: string) =>
	new Errors.MoleculerRetryableError(`region ${region} cannot be reached now; retry`, 503, "REGION_UNREACHABLE", { region });

/** Whether a link node of `region` is live in the global registry. */
export function reaches(global: ServiceBroker | undefined, region: string): boolean {
	return global?.started === true && global.registry.getActionEndpoints(callAction(region))?.hasAvailable() === true;
}

/** The regions (of `regions`) that have a live link node on the global namespace. */
export const liveRegions = (global: ServiceBroker | undefined, regions: string[]) => regions.filter(r => reaches(global, r));

/** Sends a call to `region`'s link: only credentials travel in meta, the request id goes along, within `timeout`. */
export async function forward(global: ServiceBroker | undefined, p: ForwardParams, requestID: string | undefined, timeout: number): Promise<LinkEnvelope> {
	const target = callAction(p.region);
	if (!reaches(global, p.region)) throw unreachable(p.region);
	try {
		return await global!.call<LinkEnvelope, unknown>(
			target,
			{ action: p.action, params: p.params, meta: pick(p.meta, LINK_CREDENTIALS), deadline: Date.now() + Math.max(1, timeout) },
			{ requestID, timeout: Math.max(1, timeout) },
		);
	} catch (err) {
		// Its last link node went away between the check and the call (not the target action missing over there).
		const e = err as Errors.MoleculerError;
		if ((e?.type === "SERVICE_NOT_FOUND" || e?.type === "SERVICE_NOT_AVAILABLE") && (e.data as { action?: string })?.action === target)
			throw unreachable(p.region);
		throw err;
	}
}

/**
 * Only actions that check their caller can be run from the link: each declares a permission (middlewares/permissions.ts).
 * Undefined: no live node has the action now.
 */
function linkable(regional: ServiceBroker, action: string): boolean | undefined {
	const list = regional.registry.getActionEndpoints(action);
	const live = list?.endpoints.filter(ep => ep.node.available) ?? [];
	if (!live.length) return undefined;
	return live.some(ep => typeof (ep.action as { permission?: unknown }).permission === "string");
}

/**
 * Runs a call that came over the link on this region's broker, as the caller's credentials allow (the call has no
 * parent context, so no service of this region vouches for it), and carries back what the action set in meta.
 */
export async function runHere(regional: ServiceBroker, ctx: Context<CallParams>, defaultTimeout: number): Promise<LinkEnvelope> {
	const { action, params, deadline } = ctx.params;
	// Requests wait in Kafka for a link node that is down, and reach it when it is back: the caller was told its
	// call failed (a retryable 503), so running it now would write what it believes was not written.
	if (deadline !== undefined && Date.now() > deadline)
		throw new Errors.MoleculerRetryableError(`${action} arrived after its caller's deadline: not run`, 504, "LINK_DEADLINE_PASSED", { action });
	const can = linkable(regional, action);
	// No node runs it here at this moment (one restarting, a role moving to its standby): as unreachable, retryable.
	if (can === undefined) throw new Errors.MoleculerRetryableError(`${action} has no live node in this region now`, 503, "SERVICE_NOT_AVAILABLE", { action });
	if (!can) throw new Errors.MoleculerClientError(`${action} cannot be called over the region link`, 403, "FORBIDDEN", { action });
	// A call without a parent context keeps this object as its meta: what the action (or a remote one) sets lands here.
	const meta = pick(ctx.params.meta, LINK_CREDENTIALS);
	const budget = (ctx.options as { timeout?: number }).timeout || defaultTimeout;
	const timeout = deadline !== undefined ? Math.max(1, Math.min(budget, deadline - Date.now())) : budget;
	const result = await regional.call(action, params, { meta, requestID: ctx.requestID ?? undefined, timeout });
	return { result, meta: pick(meta, LINK_ANSWER_META) as LinkEnvelope["meta"] };
}

/** Every log line of the global broker goes to the regional broker's logger (same format, region and level). */
class RegionalLogger extends Loggers.Base<Loggers.Base.LoggerOptions> {
	constructor(private readonly regional: ServiceBroker) {
		super({});
	}

	override getLogHandler(bindings: { mod?: string; nodeID?: string }) {
		const logger = this.regional.getLogger(`link-global/${bindings.mod ?? ""}`, { globalNodeID: bindings.nodeID }) as unknown as Record<
			string,
			(...args: unknown[]) => void
		>;
		return (level: string, args: unknown[]) => logger[level]?.(...args);
	}
}

/** The global broker of one link node. */
export function globalBrokerOptions(cfg: Config, regional: ServiceBroker, nodeID: string): BrokerOptions {
	const l = cfg.replication.linkKafka;
	const k = cfg.replication.kafka;
	return {
		namespace: l.namespace,
		nodeID,
		metadata: { region: cfg.region },
		logger: new RegionalLogger(regional) as unknown as BrokerOptions["logger"],
		transporter: new KafkaLinkTransporter({
			brokers: l.brokers,
			clientId: `wallet-link-${nodeID}`,
			// An empty fetch is answered only after its whole wait on some brokers (the test broker): every request
			// and every answer may wait that long, so it is short.
			maxWaitTimeInMs: l.maxWaitMs,
			ssl: k.ssl,
			sasl: k.sasl,
		}),
		serializer: "JSON",
		requestTimeout: cfg.requestTimeoutMs,
		heartbeatInterval: l.heartbeatIntervalSec,
		heartbeatTimeout: l.heartbeatTimeoutSec,
		registry: { preferLocal: false },
		cacher: undefined,
		metrics: { enabled: false },
		tracing: { enabled: false },
		skipProcessEventRegistration: true,
	} as BrokerOptions;
}

/** The service a region's link node hosts on the global namespace. */
export function globalLinkService(cfg: Config, regional: ServiceBroker): ServiceSchema {
	return {
		name: globalServiceName(cfg.region),
		actions: {
			call: {
				params: {
					action: { type: "string", min: 1, max: 200 },
					params: { type: "any", optional: true },
					meta: { type: "object", optional: true },
					deadline: { type: "number", optional: true },
				},
				handler: (ctx: Context<CallParams>) => runHere(regional, ctx, cfg.requestTimeoutMs),
			},
		},
	};
}

/** A link node's global broker, with its service (not started). */
export function createGlobalBroker(cfg: Config, regional: ServiceBroker): ServiceBroker {
	const global = new ServiceBroker(globalBrokerOptions(cfg, regional, linkNodeID(cfg.region, regional.nodeID)));
	global.createService(globalLinkService(cfg, regional));
	return global;
}
