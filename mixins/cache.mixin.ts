// Cache invalidation on every write. With Redis all nodes share one store, so one clean is enough;
// with per-node memory caches the clean is broadcast so every node drops its copies.
import type { Context, ServiceSchema } from "moleculer";

export type Entity = "supply" | "order" | "claiming";

/** Key patterns for one changed entity: its cached `find` and every list of that kind. */
export function patternsFor(changes: Partial<Record<Entity, string | undefined>>): string[] {
	const patterns: string[] = [];
	for (const [svc, id] of Object.entries(changes)) {
		if (!id) continue;
		patterns.push(`${svc}.find:**${id}**`, `${svc}.list:**`);
	}
	return patterns;
}

export const CacheMixin: Partial<ServiceSchema> = {
	events: {
		"cache.clean": {
			handler(this: any, ctx: Context<{ patterns: string[] }>) {
				if (this.broker.cacher && ctx.nodeID !== this.broker.nodeID) return this.broker.cacher.clean(ctx.params.patterns);
			},
		},
	},
	methods: {
		async invalidate(this: any, changes: Partial<Record<Entity, string | undefined>>) {
			const cacher = this.broker.cacher;
			if (!cacher) return;
			const patterns = patternsFor(changes);
			await cacher.clean(patterns);
			if (cacher.constructor.name !== "SafeRedisCacher") await this.broker.broadcast("cache.clean", { patterns });
		},
	},
};
