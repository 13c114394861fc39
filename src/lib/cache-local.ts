// The per-node memory cache: Moleculer's LRU cacher (bounded by CACHE_MAX_ENTRIES) plus generations
// kept in this process. Each node applies every write's plan (the writer at once, the others from the
// broadcast), so its entries, stale copies and generations follow the writes it hears of.
import { Cachers, METRIC } from "moleculer";
import { TOMBSTONE_TTL_SEC, storedByRead, type GenerationalCacher } from "./cache-store";
import type { WritePlan } from "./cache-keys";

interface StaleRecord {
	w: string;
	v?: unknown;
}

/** Keeps at most `max` keys, forgetting the least recently used. */
class Bounded<V> {
	private map = new Map<string, V>();
	constructor(private max: number) {}
	get(key: string): V | undefined {
		const v = this.map.get(key);
		if (v !== undefined) {
			this.map.delete(key);
			this.map.set(key, v);
		}
		return v;
	}
	set(key: string, v: V) {
		this.map.delete(key);
		this.map.set(key, v);
		if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
	}
	get size() {
		return this.map.size;
	}
}

export class LocalCacher extends Cachers.MemoryLRU implements GenerationalCacher {
	readonly shared = false;
	// Generations take values from one clock, and a forgotten one restarts above every value used
	// before: an entry keyed with an older value can never match again.
	private clock = 0;
	private generations: Bounded<number>;
	private applied: Bounded<true>;

	constructor(opts: { max: number; ttl?: number; clone?: boolean }) {
		super(opts);
		this.generations = new Bounded(opts.max);
		this.applied = new Bounded(1000);
	}

	private get lru(): any {
		return (this as any).cache;
	}

	private copy<T>(v: T): T {
		const clone = (this as any).clone;
		return clone ? clone(v) : v;
	}

	override set(key: string, data: any, ttl?: number) {
		if (data !== null && typeof data === "object" && storedByRead.has(data)) return Promise.resolve();
		return super.set(key, data, ttl);
	}

	async readGenerations(keys: string[]) {
		return keys.map(k => {
			let g = this.generations.get(k);
			if (g === undefined) this.generations.set(k, (g = ++this.clock));
			return String(g);
		});
	}

	async applyWrite(plan: WritePlan) {
		if (this.applied.get(plan.id)) return;
		this.applied.set(plan.id, true);
		for (const k of plan.del) this.lru.delete(k);
		for (const k of plan.stale) this.lru.set(k, { w: plan.id } satisfies StaleRecord, { ttl: TOMBSTONE_TTL_SEC * 1000 });
		for (const k of plan.bump) this.generations.set(k, ++this.clock);
	}

	async staleToken(key: string) {
		return (this.lru.get(key) as StaleRecord | undefined)?.w ?? "";
	}

	async saveFound(find: { key: string; ttl: number }, stale: { key: string; ttl: number }, token: string, value: object) {
		// Synchronous from the check to the writes: no plan can land in between.
		if (((this.lru.get(stale.key) as StaleRecord | undefined)?.w ?? "") !== token) return false;
		this.lru.set(find.key, this.copy(value), { ttl: find.ttl * 1000 });
		this.lru.set(stale.key, { w: token, v: this.copy(value) } satisfies StaleRecord, { ttl: stale.ttl * 1000 });
		return true;
	}

	peek(key: string): unknown {
		// Counted as Moleculer's get counts a read (the cache hit ratio panel reads these), without its copy.
		const metrics = (this as any).metrics;
		metrics.increment(METRIC.MOLECULER_CACHER_GET_TOTAL);
		const value = this.lru.get(key);
		if (value !== undefined) metrics.increment(METRIC.MOLECULER_CACHER_FOUND_TOTAL);
		return value;
	}

	async readStale(key: string) {
		const rec = this.lru.get(key) as StaleRecord | undefined;
		return rec?.v === undefined ? undefined : this.copy(rec.v);
	}
}
