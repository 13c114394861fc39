// What the services need from a cacher beyond get/set: generations for list keys, one pipeline per
// write, and stale copies that a read stores only if no write happened while it read.
import type { WritePlan } from "./cache-keys";

export interface GenerationalCacher {
	/** True when every node shares the store (Redis); memory caches need the write broadcast. */
	readonly shared: boolean;
	/** The current generations ("0" when never bumped), or undefined when the store is unavailable. */
	readGenerations(keys: string[]): Promise<string[] | undefined>;
	/** Deletes, tombstones and bumps of one write, in one round trip. */
	applyWrite(plan: WritePlan): Promise<void>;
	/** The write token of a stale record ("" if none), read before the database; undefined when unavailable. */
	staleToken(staleKey: string): Promise<string | undefined>;
	/**
	 * Stores a fresh read as the cached entity and its stale copy, only if the stale record still has the
	 * token seen before the read (no write in between). Returns whether it stored.
	 */
	saveFound(find: { key: string; ttl: number }, stale: { key: string; ttl: number }, token: string, value: object): Promise<boolean>;
	/** The stale copy, or undefined (none, or a write since). */
	readStale(staleKey: string): Promise<unknown>;
	/**
	 * An entry as `get` returns it, for a reader that only serializes it (the gateway's cached reads): a memory
	 * cache hands out its own object, not a copy. Counted in the cacher's get and found metrics as any read.
	 */
	peek(key: string): unknown;
}

export function isGenerational(cacher: unknown): cacher is GenerationalCacher {
	return typeof (cacher as GenerationalCacher | undefined)?.applyWrite === "function";
}

/** A tombstone outlives any read that started before its write (reads time out within seconds). */
export const TOMBSTONE_TTL_SEC = 60;

/**
 * Results the find action already stored (or chose not to, having raced a write): the Cacher
 * middleware's own `set` of them is skipped.
 */
export const storedByRead = new WeakSet<object>();
