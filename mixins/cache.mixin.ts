// Caching for the services. Entities are cached under exact keys (`<service>.find:<id>`); lists under
// keys that carry the generations they depend on (src/lib/cache-keys.ts). A write deletes the exact
// keys, tombstones the stale copies and bumps the generations, in one pipeline: its cost does not grow
// with the number of keys in Redis. With per-node memory caches the plan is also broadcast, so every
// node applies it to its own cache.
import type { Context, Service, ServiceSchema } from "moleculer";
import type { Pool } from "pg";
import type { WalletService } from "./schema";
import { INNER_READ } from "../src/lib/fault-tolerance";
import { uuid } from "../src/lib/params";
import { findKey, listKey, mergePlans, staleKey, writePlan, type Changes, type WritePlan } from "../src/lib/cache-keys";
import { GENERATIONS, type GenerationsOf } from "../src/lib/cache-generations";
import { isGenerational, storedByRead } from "../src/lib/cache-store";
import { appConfig } from "./config";

export type { Entity } from "../src/lib/cache-keys";
export { ownLists, publicOrders } from "../src/lib/cache-keys";

/** ctx.locals field where `runThenInvalidate` collects the invalidations of a task. */
const DEFERRED = "deferredInvalidations";

type CacheDecl = { keys: string[]; kind?: "entity" | "list"; generations?: GenerationsOf };

type StaleMeta = { $responseHeaders?: Record<string, string> };

/** What CacheMixin needs of a service and gives it. */
export interface CacheThis extends Service {
	/** DbMixin's pool: the `find` actions read through it. */
	pool: Pool;
	withStale<T extends object>(id: string, read: () => Promise<T | null>): Promise<T | null>;
	staleFind(ctx: Context<{ id: string }, StaleMeta>, err: Error): Promise<unknown>;
	invalidate(changes: Changes | Changes[], ctx?: Context): Promise<void>;
	runThenInvalidate<T>(ctx: Context, task: () => Promise<T>): Promise<T>;
	applyPlan(plan: WritePlan): Promise<void>;
}

/** A keygen runs with the cacher as `this`; Moleculer's typings leave out the helper that reads "#meta" and "@header" keys. */
type KeygenThis = { _getParamMetaValue(key: string, params: unknown, meta: unknown, headers: unknown): unknown };

/**
 * The internal `<service>.find` action every `get` reads through: cached by id, and remembered as a
 * stale copy that answers (via `staleFind`) while the database is away.
 */
export function findAction<T extends object>(read: (pool: Pool, id: string) => Promise<T | null>) {
	return {
		...INNER_READ,
		permission: "internal",
		visibility: "public" as const,
		params: { id: uuid },
		cache: { keys: ["id"], kind: "entity" as const },
		fallback: "staleFind",
		handler(this: CacheThis, ctx: Context<{ id: string }>) {
			return this.withStale(ctx.params.id, () => read(this.pool, ctx.params.id));
		},
	};
}

function keygenFor(kind: "entity" | "list") {
	if (kind === "entity") return (action: { name: string }, _opts: CacheDecl, ctx: Context<{ id: string }>) => `${action.name}:${ctx.params.id}`;
	return function (this: KeygenThis, action: { name: string }, opts: CacheDecl, ctx: Context<unknown, object>) {
		const values = opts.keys.map(k => this._getParamMetaValue(k, ctx.params, ctx.meta, ctx.headers));
		return listKey(action.name, ctx.locals[GENERATIONS], opts.keys, values);
	};
}

export const CacheMixin: Partial<WalletService<CacheThis>> = {
	// Cached actions name their kind (`cache: {keys, kind: "entity" | "list", generations}`); the TTL comes
	// from the configuration of the broker the service runs in (CACHE_TTL_SEC, CACHE_LIST_TTL_SEC).
	merged(this: Service, schema: ServiceSchema) {
		const ttl = appConfig(this.broker).cacheTtl;
		for (const [name, action] of Object.entries(schema.actions ?? {}) as [string, any][]) {
			const kind: "entity" | "list" | undefined = action?.cache?.kind;
			if (kind !== "entity" && kind !== "list") continue;
			const cache = { ...action.cache, ttl: ttl[kind], keygen: keygenFor(kind) };
			// A list is cached only under known generations (the store answered).
			if (kind === "list") cache.enabled = (ctx: Context) => Array.isArray(ctx.locals[GENERATIONS]);
			schema.actions![name] = { ...action, cache };
		}
	},
	events: {
		"cache.invalidate": {
			handler(this: CacheThis, ctx: Context<WritePlan>) {
				const cacher = this.broker.cacher;
				if (isGenerational(cacher) && ctx.nodeID !== this.broker.nodeID) return cacher.applyWrite(ctx.params);
			},
		},
	},
	methods: {
		/**
		 * Reads an entity for `find`. The cached entry and the stale copy are stored only if no write
		 * touched the entity while it was read, so neither can hold a state older than the last write.
		 */
		async withStale<T extends object>(this: CacheThis, id: string, read: () => Promise<T | null>): Promise<T | null> {
			const cacher = this.broker.cacher;
			if (!isGenerational(cacher)) return read();
			const stale = staleKey(this.name, id);
			const token = await cacher.staleToken(stale);
			const value = await read();
			if (value && token !== undefined) {
				const cfg = appConfig(this.broker);
				await cacher.saveFound({ key: findKey(this.name, id), ttl: cfg.cacheTtl.entity }, { key: stale, ttl: cfg.staleTtlSec }, token, value);
				storedByRead.add(value);
			}
			return value;
		},
		/**
		 * When a read fails (database down, timeout), a stale answer beats an error. The copy is no older
		 * than the last write (writes tombstone it), and the caller's `get` checks visibility on it as on
		 * a fresh one.
		 */
		async staleFind(this: CacheThis, ctx: Context<{ id: string }, StaleMeta>, err: Error) {
			const cacher = this.broker.cacher;
			const stale = isGenerational(cacher) ? await cacher.readStale(staleKey(this.name, ctx.params.id)) : undefined;
			if (stale == null) throw err;
			this.logger.warn(`Serving a stale ${this.name} ${ctx.params.id}: ${err.message}`);
			ctx.meta.$responseHeaders = { ...ctx.meta.$responseHeaders, Warning: '110 - "Response is Stale"' };
			return stale;
		},
		/**
		 * Invalidates what a write changed: `{order, supply, claiming}`, each an id or the entity (whose
		 * owner then scopes the list invalidation to that owner). Given the ctx of a `runThenInvalidate`
		 * task, it is deferred to the end of the task.
		 */
		async invalidate(this: CacheThis, changes: Changes | Changes[], ctx?: Context) {
			const plan = writePlan(changes);
			const deferred: WritePlan[] | undefined = ctx?.locals?.[DEFERRED];
			if (deferred) deferred.push(plan);
			else await this.applyPlan(plan);
		},
		/**
		 * Runs `task` (e.g. an order's mailbox task), then the invalidations it asked for with its ctx: the
		 * next command of the order does not wait on the cache, and the answer still follows them
		 * (read-your-writes).
		 */
		async runThenInvalidate<T>(this: CacheThis, ctx: Context, task: () => Promise<T>): Promise<T> {
			const deferred: WritePlan[] = [];
			ctx.locals[DEFERRED] = deferred;
			try {
				return await task();
			} finally {
				delete ctx.locals[DEFERRED];
				if (deferred.length) await this.applyPlan(mergePlans(deferred));
			}
		},
		async applyPlan(this: CacheThis, plan: WritePlan) {
			const cacher = this.broker.cacher;
			if (!cacher) return;
			if (!isGenerational(cacher)) return cacher.clean();
			await cacher.applyWrite(plan);
			// Other nodes' memory caches hear of it (one node alone has none to tell).
			if (!cacher.shared && this.broker.transit) await this.broker.broadcast("cache.invalidate", plan);
		},
	},
};
