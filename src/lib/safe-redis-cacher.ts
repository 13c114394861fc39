// Moleculer's Redis cacher, made to degrade instead of fail: with Redis down, reads miss, writes and
// cleans are skipped, and nothing rejects. (0.15 does not await set() in its middleware, so a failed
// write would otherwise become an unhandled rejection and kill the process.)
import { Cachers } from "moleculer";
import { traced } from "./request-context";

export class SafeRedisCacher extends Cachers.Redis {
	private warned = false;
	private lost = false;

	override init(broker: any) {
		super.init(broker);
		const client = (this as any).client;
		client.on("error", () => {
			this.lost = true;
		});
		// Writes made while Redis was away could not invalidate it: drop everything we cached before.
		client.on("ready", () => {
			if (!this.lost) return;
			this.lost = false;
			this.warned = false;
			this.logger.info("Redis cache is back; cleaning entries that may have gone stale");
			void this.clean();
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

	override async set(key: string, data: unknown, ttl?: number) {
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
