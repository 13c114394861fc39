// Cache invalidation on every write. With Redis all nodes share one store, so one clean is enough;
// with per-node memory caches the clean is broadcast so every node drops its copies.
import type { Context, ServiceSchema } from "moleculer";
import type { Pool } from "pg";
import { INNER_READ } from "../src/lib/fault-tolerance";
import { uuid } from "../src/lib/params";
import { SafeRedisCacher } from "../src/lib/safe-redis-cacher";
import { appConfig } from "./config";

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

/**
 * The internal `<service>.find` action every `get` reads through: cached by id, and remembered as a
 * stale copy that answers (via `staleFind`) while the database is away.
 */
export function findAction<T>(read: (pool: Pool, id: string) => Promise<T | null>) {
	return {
		...INNER_READ,
		permission: "internal",
		visibility: "public" as const,
		params: { id: uuid },
		cache: { keys: ["id"], kind: "entity" as const },
		fallback: "staleFind",
		handler(this: any, ctx: Context<{ id: string }>) {
			return this.withStale(ctx.params.id, () => read(this.pool, ctx.params.id));
		},
	};
}

export const CacheMixin: Partial<ServiceSchema> & { merged(this: any, schema: ServiceSchema): void } = {
	// Cached actions name their kind (`cache: {keys, kind: "entity" | "list"}`); the TTL comes from the
	// configuration of the broker the service runs in (CACHE_TTL_SEC, CACHE_LIST_TTL_SEC).
	merged(this: any, schema: ServiceSchema) {
		const ttl = appConfig(this.broker).cacheTtl;
		for (const [name, action] of Object.entries(schema.actions ?? {}) as [string, any][]) {
			const kind: "entity" | "list" | undefined = action?.cache?.kind;
			if (kind === "entity" || kind === "list") schema.actions![name] = { ...action, cache: { ...action.cache, ttl: ttl[kind] } };
		}
	},
	events: {
		"cache.clean": {
			handler(this: any, ctx: Context<{ patterns: string[] }>) {
				if (this.broker.cacher && ctx.nodeID !== this.broker.nodeID) return this.broker.cacher.clean(ctx.params.patterns);
			},
		},
	},
	methods: {
		/** Reads an entity and keeps a long-lived copy for `staleFind`, the fallback of the find actions. */
		async withStale(this: any, id: string, read: () => Promise<unknown>) {
			const value = await read();
			if (value && this.broker.cacher)
				await this.broker.cacher.set(`${this.name}.stale:${id}`, value, appConfig(this.broker).staleTtlSec);
			return value;
		},
		/** When a read fails (database down, timeout), a stale answer beats an error. */
		async staleFind(this: any, ctx: Context<{ id: string }, { $responseHeaders?: Record<string, string> }>, err: Error) {
			const stale = this.broker.cacher ? await this.broker.cacher.get(`${this.name}.stale:${ctx.params.id}`) : undefined;
			if (stale == null) throw err;
			this.logger.warn(`Serving a stale ${this.name} ${ctx.params.id}: ${err.message}`);
			ctx.meta.$responseHeaders = { ...ctx.meta.$responseHeaders, Warning: '110 - "Response is Stale"' };
			return stale;
		},
		async invalidate(this: any, changes: Partial<Record<Entity, string | undefined>>) {
			const cacher = this.broker.cacher;
			if (!cacher) return;
			const patterns = patternsFor(changes);
			await cacher.clean(patterns);
			if (!(cacher instanceof SafeRedisCacher)) await this.broker.broadcast("cache.clean", { patterns });
		},
	},
};
