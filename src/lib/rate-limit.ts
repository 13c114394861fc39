// Per-user (or per-IP) fixed-window rate limiting shared by every gateway through Redis
// (rate-limiter-flexible). With Redis away, an in-memory limiter per gateway takes over.
import Redis from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { AppError } from "../domain/errors";
import { redisOptions } from "./redis";

export interface RateLimitDecision {
	headers: Record<string, string>;
	error?: AppError;
}

export class RateLimiter {
	private limiter: RateLimiterAbstract;
	readonly redis?: Redis;

	constructor(
		private points: number,
		windowSec: number,
		redisUrl: string | undefined,
		keyPrefix: string,
	) {
		const memory = new RateLimiterMemory({ points, duration: windowSec, keyPrefix });
		if (redisUrl) {
			this.redis = new Redis(redisOptions(redisUrl));
			this.redis.on("error", () => undefined); // readiness reports it; the insurance limiter covers it
			this.limiter = new RateLimiterRedis({
				storeClient: this.redis,
				points,
				duration: windowSec,
				keyPrefix,
				insuranceLimiter: memory,
			});
		} else this.limiter = memory;
	}

	async consume(key: string): Promise<RateLimitDecision> {
		let res: RateLimiterRes;
		let limited = false;
		try {
			res = await this.limiter.consume(key);
		} catch (rejection) {
			if (!(rejection instanceof RateLimiterRes)) throw rejection;
			res = rejection;
			limited = true;
		}
		const resetSec = Math.ceil(res.msBeforeNext / 1000);
		const headers: Record<string, string> = {
			"X-RateLimit-Limit": String(this.points),
			"X-RateLimit-Remaining": String(Math.max(0, res.remainingPoints)),
			"X-RateLimit-Reset": String(Math.ceil((Date.now() + res.msBeforeNext) / 1000)),
		};
		if (!limited) return { headers };
		headers["Retry-After"] = String(Math.max(1, resetSec));
		return {
			headers,
			error: new AppError(429, "RATE_LIMITED", "Too many requests; retry later", { retryAfterSec: Math.max(1, resetSec) }),
		};
	}

	async close() {
		this.redis?.disconnect();
	}
}
