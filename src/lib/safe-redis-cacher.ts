// Moleculer's Redis cacher, made to degrade instead of fail: with Redis down, reads miss, writes and
// cleans are skipped, and nothing rejects. (0.15 does not await set() in its middleware, so a failed
// write would otherwise become an unhandled rejection and kill the process.)
// It also keeps list generations and stale copies (src/lib/cache-store.ts): a write costs one MULTI of
// exact-key commands, whatever the number of keys in Redis; nothing here scans.
import { Cachers } from "moleculer";
import { mergePlans, type WritePlan } from "./cache-keys";
import { TOMBSTONE_TTL_SEC, storedByRead, type GenerationalCacher } from "./cache-store";
import { traced } from "./request-context";

// Stale records are "<write token>|<serialized entity>" (a tombstone has no entity). The find entry and
// the stale copy are stored only if the token is still the one read before the database was.
const SAVE_FOUND = `
local cur = redis.call('GET', KEYS[2])
local tok = ''
if cur then tok = string.sub(cur, 1, (string.find(cur, '|', 1, true) or 1) - 1) end
if tok ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[4])
return 1`;

const BAR = 0x7c; // "|"

export class SafeRedisCacher extends Cachers.Redis implements GenerationalCacher {
	readonly shared = true;
	private warned = false;
	private lost = false;
	/** Plans whose MULTI failed while Redis stayed connected (a timeout): sent again with the next one. */
	private pending: WritePlan[] = [];
	/** Plans waiting for the MULTI in flight. */
	private queued: { plan: WritePlan; done: () => void }[] = [];
	private sending = false;

	/** Generations live beside the cache prefix, not under it: a clean of the cache must not reset them. */
	get genPrefix(): string {
		return `${(this as any).prefix.replace(/-$/, "")}~gen:`;
	}

	private get redis(): any {
		return (this as any).client;
	}

	override init(broker: any) {
		super.init(broker);
		const client = (this as any).client;
		client.defineCommand("walletSaveFound", { numberOfKeys: 2, lua: SAVE_FOUND });
		client.on("error", () => {
			this.lost = true;
		});
		// Writes made while Redis was away could not invalidate it: drop everything we cached before.
		client.on("ready", () => {
			if (!this.lost) return;
			this.lost = false;
			this.warned = false;
			this.logger.info("Redis cache is back; cleaning entries that may have gone stale");
			void this.clean().then(() => (this.pending.length ? this.applyWrite(mergePlans([])) : undefined));
		});
	}

	private degrade(op: string, err: unknown) {
		if (!this.warned) {
			this.warned = true;
			this.logger.warn(`Redis cache unavailable (${op}): ${(err as Error).message}; serving uncached`);
		}
	}

	override async get(key: string) {
		try {
			const value = await traced("cache get", { cache: { key } }, () => super.get(key));
			this.warned = false;
			return value;
		} catch (err) {
			this.degrade("get", err);
			return this.opts.missingResponse;
		}
	}

	peek(key: string): Promise<unknown> {
		return this.get(key);
	}

	override async set(key: string, data: unknown, ttl?: number) {
		if (data !== null && typeof data === "object" && storedByRead.has(data)) return undefined;
		try {
			return await traced("cache set", { cache: { key } }, () => super.set(key, data, ttl));
		} catch (err) {
			this.degrade("set", err);
			return undefined;
		}
	}

	override async del(key: string | string[]) {
		try {
			return await super.del(key);
		} catch (err) {
			this.degrade("del", err);
			return undefined;
		}
	}

	async readGenerations(keys: string[]) {
		try {
			const values: (string | null)[] = await this.redis.mget(keys.map(k => this.genPrefix + k));
			this.warned = false;
			return values.map(v => v ?? "0");
		} catch (err) {
			this.degrade("generations", err);
			return undefined;
		}
	}

	/**
	 * Carries out a write's invalidations; resolves once Redis has them (or they are kept for the next MULTI). The
	 * plans that arrive while a MULTI is in flight wait for it and then leave merged in one MULTI (group commit): on
	 * a busy node a round trip to Redis costs far more than the keys it carries. A quiet node's plan leaves at once.
	 */
	applyWrite(one: WritePlan): Promise<void> {
		return new Promise<void>(done => {
			this.queued.push({ plan: one, done });
			if (!this.sending) void this.drain();
		});
	}

	private async drain() {
		this.sending = true;
		try {
			while (this.queued.length) {
				const batch = this.queued.splice(0);
				await this.send(batch.length === 1 ? batch[0].plan : mergePlans(batch.map(b => b.plan)));
				for (const b of batch) b.done();
			}
		} finally {
			this.sending = false;
		}
	}

	/** One MULTI; never rejects. */
	private async send(one: WritePlan) {
		const plan = this.pending.length ? mergePlans([...this.pending, one]) : one;
		this.pending = [];
		const prefix: string = (this as any).prefix;
		const multi = this.redis.multi();
		if (plan.del.length) multi.del(...plan.del.map(k => prefix + k));
		for (const k of plan.stale) multi.set(prefix + k, `${plan.id}|`, "EX", TOMBSTONE_TTL_SEC);
		for (const k of plan.bump) multi.incr(this.genPrefix + k);
		try {
			await traced("cache invalidate", { cache: { keys: plan.del.length + plan.stale.length + plan.bump.length } }, () => multi.exec());
		} catch (err) {
			// Sent again with the next write; past a bound, the clean at reconnection covers it.
			if (this.pending.length < 1000) this.pending.push(plan);
			else this.lost = true;
			this.degrade("invalidate", err);
		}
	}

	async staleToken(key: string) {
		try {
			// The token only (a UUID), not the whole copy.
			const head: string = await this.redis.getrange((this as any).prefix + key, 0, 63);
			const bar = head.indexOf("|");
			return bar < 0 ? "" : head.slice(0, bar);
		} catch (err) {
			this.degrade("stale token", err);
			return undefined;
		}
	}

	async saveFound(find: { key: string; ttl: number }, stale: { key: string; ttl: number }, token: string, value: object) {
		const prefix: string = (this as any).prefix;
		try {
			const data: Buffer = (this as any).serializer.serialize(value);
			return (await this.redis.walletSaveFound(prefix + find.key, prefix + stale.key, token, data, find.ttl, stale.ttl)) === 1;
		} catch (err) {
			this.degrade("save", err);
			return false;
		}
	}

	async readStale(key: string) {
		try {
			const raw: Buffer | null = await this.redis.getBuffer((this as any).prefix + key);
			const bar = raw ? raw.indexOf(BAR) : -1;
			if (!raw || bar < 0 || bar === raw.length - 1) return undefined;
			return (this as any).serializer.deserialize(raw.subarray(bar + 1));
		} catch (err) {
			this.degrade("stale", err);
			return undefined;
		}
	}

	override async clean(match?: string | string[]) {
		try {
			return await traced("cache clean", { cache: { match } }, () => super.clean(match));
		} catch (err) {
			this.degrade("clean", err);
			return undefined;
		}
	}
}

/** ioredis options that fail fast while Redis is away instead of queueing requests. */
export const failFastRedisOptions = {
	enableOfflineQueue: false,
	maxRetriesPerRequest: 1,
	connectTimeout: 1000,
	commandTimeout: 500,
	retryStrategy: (times: number) => Math.min(200 * times, 2000),
};
