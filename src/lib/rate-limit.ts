// Fixed-window rate limiting decided in memory, shared by every gateway through Redis in batches.
//
// A request never waits for Redis: each gateway counts locally and, every `syncMs`, adds its counts to
// the shared per-window counters in one pipeline (INCRBY + PEXPIRE per key) and reads back the totals
// the other gateways have added. The price is a bounded overshoot: a key can be admitted up to
// `points` on each gateway within one sync interval before the gateways hear of each other (in steady
// traffic, about rate × syncMs × (gateways - 1) requests). With Redis away, each gateway keeps
// counting alone (a per-gateway limit) and catches up when Redis returns.
import type Redis from "ioredis";
import { AppError } from "../domain/errors";

export interface RateLimitDecision {
	headers: Record<string, string>;
	error?: AppError;
}

/** Where the gateways' counts meet: adds each delta to its key and returns the new totals. */
export interface CounterStore {
	add(batch: { key: string; delta: number }[], ttlMs: number): Promise<number[]>;
}

export function redisCounterStore(redis: Redis): CounterStore {
	return {
		async add(batch, ttlMs) {
			const p = redis.pipeline();
			for (const { key, delta } of batch) p.incrby(key, delta).pexpire(key, ttlMs);
			const replies = (await p.exec()) ?? [];
			return batch.map((_, i) => {
				const [err, total] = replies[i * 2] ?? [new Error("no reply")];
				if (err) throw err;
				return Number(total);
			});
		},
	};
}

interface Entry {
	window: number;
	/** The total of all gateways at the last sync (our flushed counts included). */
	shared: number;
	/** Counted here since the last sync. */
	pending: number;
	/** Counted here and being sent now: still counts until the shared total that includes it is back. */
	sending: number;
}

export interface RateLimiterOptions {
	points: number;
	windowSec: number;
	keyPrefix: string;
	store?: CounterStore;
	syncMs?: number;
	/** Keys kept in memory at most; past it, idle keys are dropped first (their count is in the store). */
	maxKeys?: number;
	now?: () => number;
}

export class RateLimiter {
	readonly points: number;
	private windowMs: number;
	private entries = new Map<string, Entry>();
	private dirty = new Set<string>();
	private timer?: NodeJS.Timeout;
	private syncing?: Promise<void>;
	private now: () => number;
	private maxKeys: number;

	constructor(private o: RateLimiterOptions) {
		this.points = o.points;
		this.windowMs = o.windowSec * 1000;
		this.now = o.now ?? Date.now;
		this.maxKeys = o.maxKeys ?? 200_000;
		if (o.store) {
			this.timer = setInterval(() => void this.sync(), o.syncMs ?? 100);
			this.timer.unref();
		}
	}

	/** Counts one request for `key` and decides at once, without I/O. */
	consume(key: string): RateLimitDecision {
		const now = this.now();
		const window = Math.floor(now / this.windowMs);
		let e = this.entries.get(key);
		if (!e || e.window !== window) {
			// A previous window's unsynced counts are dropped with it: they no longer limit anyone.
			if (e) this.dirty.delete(key);
			e = { window, shared: 0, pending: 0, sending: 0 };
			if (this.entries.size >= this.maxKeys) this.evict();
			this.entries.set(key, e);
		}
		const used = e.shared + e.sending + e.pending;
		const limited = used >= this.points;
		if (!limited) {
			e.pending++;
			if (this.o.store) this.dirty.add(key);
		}
		const resetMs = (window + 1) * this.windowMs;
		const headers: Record<string, string> = {
			"X-RateLimit-Limit": String(this.points),
			"X-RateLimit-Remaining": String(Math.max(0, this.points - used - 1)),
			"X-RateLimit-Reset": String(Math.ceil(resetMs / 1000)),
		};
		if (!limited) return { headers };
		const retryAfterSec = Math.max(1, Math.ceil((resetMs - now) / 1000));
		headers["Retry-After"] = String(retryAfterSec);
		return { headers, error: new AppError(429, "RATE_LIMITED", "Too many requests; retry later", { retryAfterSec }) };
	}

	/** Sends the counts made here since the last sync and learns the shared totals. One at a time. */
	sync(): Promise<void> {
		this.syncing ??= this.flush().finally(() => (this.syncing = undefined));
		return this.syncing;
	}

	private async flush() {
		const store = this.o.store;
		if (!store || this.dirty.size === 0) return;
		const batch: { key: string; entry: Entry; delta: number }[] = [];
		for (const key of this.dirty) {
			const entry = this.entries.get(key);
			if (entry && entry.pending > 0) batch.push({ key, entry, delta: entry.pending });
		}
		this.dirty.clear();
		for (const b of batch) {
			b.entry.pending -= b.delta;
			b.entry.sending += b.delta;
		}
		try {
			const totals = await store.add(
				batch.map(b => ({ key: `${this.o.keyPrefix}:${b.entry.window}:${b.key}`, delta: b.delta })),
				this.windowMs * 2,
			);
			batch.forEach((b, i) => {
				b.entry.sending -= b.delta;
				b.entry.shared = Math.max(b.entry.shared + b.delta, totals[i]);
			});
		} catch {
			// Redis away: the counts stay local (they still limit here) and are sent with the next sync.
			for (const b of batch) {
				b.entry.sending -= b.delta;
				b.entry.pending += b.delta;
				if (this.entries.get(b.key) === b.entry) this.dirty.add(b.key);
			}
		}
	}

	/** Drops keys of past windows, then the oldest idle ones, down to 90 % of the bound (so it runs seldom). */
	private evict() {
		const target = Math.floor(this.maxKeys * 0.9);
		const window = Math.floor(this.now() / this.windowMs);
		for (const [key, e] of this.entries) if (e.window !== window && !this.dirty.has(key)) this.entries.delete(key);
		for (const [key] of this.entries) {
			if (this.entries.size <= target) return;
			if (!this.dirty.has(key)) this.entries.delete(key);
		}
		// Still full of unsynced keys: drop the oldest anyway (they lose at most one sync's counts).
		for (const [key] of this.entries) {
			if (this.entries.size <= target) return;
			this.entries.delete(key);
			this.dirty.delete(key);
		}
	}

	get size() {
		return this.entries.size;
	}

	async close() {
		clearInterval(this.timer);
		await this.sync().catch(() => undefined);
	}
}
