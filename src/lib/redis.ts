import type { RedisOptions } from "ioredis";
import { failFastRedisOptions } from "./safe-redis-cacher";

/** redis://[:password@]host:port[/db] or rediss:// -> ioredis options that fail fast. */
export function redisOptions(url: string): RedisOptions {
	const u = new URL(url);
	return {
		host: u.hostname,
		port: Number(u.port || 6379),
		username: u.username ? decodeURIComponent(u.username) : undefined,
		password: u.password ? decodeURIComponent(u.password) : undefined,
		db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
		tls: u.protocol === "rediss:" ? {} : undefined,
		...failFastRedisOptions,
	};
}
