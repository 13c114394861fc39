// The region link across processes (LINK=kafka, docs/multi-region.md): this node's bridge between its region's
// broker and the global one on Kafka. Moleculer wiring only: the work is in src/regions/bridge.ts.
// With another LINK it starts nothing, and `link.forward` answers that no region can be reached.
// Any number of nodes of a region may run it: each is a link node of its own on the global namespace.
import type { Context, Service, ServiceBroker } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { appConfig } from "../mixins/config";
import { RoleFollowerMixin } from "../mixins/role-follower.mixin";
import { createGlobalBroker, forward, liveRegions, reaches, type ForwardParams } from "../src/regions/bridge";

interface LinkThis extends Service {
	global?: ServiceBroker;
	starting?: Promise<void>;
	/** Set once stopped() has stopped the global broker: a start that completes later stops it again. */
	globalStopped: boolean;
	/** Whether `region` has a live link node on the global namespace (ServiceLink.reachable asks it). */
	reaches(region: string): boolean;
}

const LinkService: WalletService<LinkThis> = {
	name: "link",
	mixins: [RoleFollowerMixin],
	actions: {
		/** Runs `action` in `region`, over the global broker: the callers are this region's services. */
		forward: {
			permission: "internal",
			visibility: "public",
			// The caller's remaining budget is what bounds a call; this only caps it.
			timeout: 10_000,
			retryPolicy: { enabled: false },
			// One region that times out must not close the link to every other region.
			circuitBreaker: { enabled: false },
			params: {
				region: { type: "string", min: 1, max: 64 },
				action: { type: "string", min: 1, max: 200 },
				params: { type: "any", optional: true },
				meta: { type: "object", optional: true },
			},
			handler(this: LinkThis, ctx: Context<ForwardParams>) {
				const timeout = (ctx.options as { timeout?: number }).timeout || appConfig(this.broker).requestTimeoutMs;
				return forward(this.global, ctx.params, ctx.requestID ?? undefined, timeout);
			},
		},
		/** The regions that have a live link node on the global namespace (this one's included once it is up). */
		regions: {
			permission: "internal",
			visibility: "public",
			timeout: 1000,
			handler(this: LinkThis) {
				return liveRegions(this.global, appConfig(this.broker).regions);
			},
		},
	},
	methods: {
		reaches(this: LinkThis, region: string) {
			return reaches(this.global, region);
		},
	},
	created(this: LinkThis) {
		this.globalStopped = false;
	},
	async started(this: LinkThis) {
		const cfg = appConfig(this.broker);
		if (cfg.replication.link !== "kafka") return;
		const global = createGlobalBroker(cfg, this.broker);
		this.global = global;
		// Not awaited: the region serves its own entities while Kafka is away; until the global broker is up, other
		// regions are unreachable from here (503, retryable). Moleculer retries the connection every 5 s.
		this.starting = global.start().then(
			async () => {
				if (this.globalStopped) await global.stop().catch(() => undefined);
				else this.logger.info(`Region link up: node ${global.nodeID} on ${global.namespace}`);
			},
			(err: Error) => this.logger.error(`Region link did not start: ${err.message}`),
		);
	},
	async stopped(this: LinkThis) {
		const global = this.global;
		if (!global) return;
		// A start still connecting is given a moment to finish (stopping a transporter halfway can leave its retry
		// timer behind); one that finishes later still ends stopped (above).
		let timer: NodeJS.Timeout | undefined;
		await Promise.race([this.starting, new Promise(resolve => (timer = setTimeout(resolve, 3000)))]);
		clearTimeout(timer);
		this.globalStopped = true;
		// A started broker sends DISCONNECT: other regions drop this node at once, not after the heartbeat timeout.
		await global.stop().catch((err: Error) => this.logger.warn(`Region link stop: ${err.message}`));
	},
};

export default LinkService;
