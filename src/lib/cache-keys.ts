// Cache key names, and what one write touches. Entities are cached under exact keys; lists carry the
// generations they depend on in their key, so a write bumps a counter instead of finding the lists.
import { randomUUID } from "node:crypto";
import type { Changed } from "../replication/applier";
import type { ReplEvent } from "../replication/event-log";
import { pageArgs } from "../store/paging";

export type Entity = "supply" | "order" | "claiming";

/**
 * A changed entity: its id, or the entity itself (its owner then scopes the list invalidation). `created`: the write
 * made the row (its first version), so no copy of it can be cached yet and no stale copy needs a tombstone; its exact
 * key is still deleted, since a read before the write may have cached its absence.
 */
export type Ref = string | { id: string; userId?: string; claimerId?: string | null; created?: boolean };
export type Changes = Partial<Record<Entity, Ref | undefined>>;

/** What one write does to the cache, run as one pipeline (and broadcast to memory caches). */
export interface WritePlan {
	/** Unique per write: memory caches apply a broadcast plan once per node. */
	id: string;
	/** Exact `find` keys. */
	del: string[];
	/** Generation counters to bump. */
	bump: string[];
	/** Stale copies to replace by a tombstone, so an older copy is neither served nor stored again. */
	stale: string[];
}

export const findKey = (entity: string, id: string) => `${entity}.find:${id}`;
export const staleKey = (entity: string, id: string) => `${entity}.stale:${id}`;

/** Bumped by every order write: the listing without `mine` shows every open order (and the caller's own). */
export const PUBLIC_ORDERS = "order:public";
/** Bumped when a write does not name the owner: every owner's lists of that kind then miss. */
const anyOwner = (entity: Entity) => `${entity}:own:*`;
const owner = (entity: Entity, userId: string) => `${entity}:own:${userId}`;

/** Generations of one user's own lists (supplies, claims, orders with mine=true). */
export const ownLists = (entity: Entity, userId: string) => [anyOwner(entity), owner(entity, userId)];
export const publicOrders = () => [PUBLIC_ORDERS];

function ownerOf(entity: Entity, ref: Exclude<Ref, string>): string | undefined {
	return (entity === "claiming" ? ref.claimerId : ref.userId) ?? undefined;
}

export function writePlan(changes: Changes | Changes[]): WritePlan {
	const plan: WritePlan = { id: randomUUID(), del: [], bump: [], stale: [] };
	const add = (list: string[], key: string) => {
		if (!list.includes(key)) list.push(key);
	};
	for (const change of Array.isArray(changes) ? changes : [changes]) {
		for (const [entity, ref] of Object.entries(change) as [Entity, Ref | undefined][]) {
			if (!ref) continue;
			const id = typeof ref === "string" ? ref : ref.id;
			add(plan.del, findKey(entity, id));
			if (typeof ref === "string" || !ref.created) add(plan.stale, staleKey(entity, id));
			const who = typeof ref === "string" ? undefined : ownerOf(entity, ref);
			add(plan.bump, who ? owner(entity, who) : anyOwner(entity));
			if (entity === "order") add(plan.bump, PUBLIC_ORDERS);
		}
	}
	return plan;
}

/** Merges plans (deferred invalidations of one command) into one pipeline. */
export function mergePlans(plans: WritePlan[]): WritePlan {
	const del = new Set<string>(), bump = new Set<string>(), stale = new Set<string>();
	for (const p of plans) {
		for (const k of p.del) del.add(k);
		for (const k of p.bump) bump.add(k);
		for (const k of p.stale) stale.add(k);
	}
	return { id: randomUUID(), del: [...del], bump: [...bump], stale: [...stale] };
}

/**
 * A list's key: its generations, then its parameters with paging normalised as the query applies it
 * (page "01" and 1, or pageSize 1000 and 100, are one entry).
 */
export function listKey(action: string, generations: string[], keys: string[], values: unknown[]): string {
	const v = keys.map((k, i) => values[i]);
	const pi = keys.indexOf("page");
	const si = keys.indexOf("pageSize");
	if (pi >= 0 || si >= 0) {
		const { page, pageSize } = pageArgs(pi >= 0 ? Number(v[pi] ?? 1) : undefined, si >= 0 && v[si] != null ? Number(v[si]) : undefined);
		if (pi >= 0) v[pi] = page;
		if (si >= 0) v[si] = pageSize;
	}
	return `${action}:${generations.join(".")}:${JSON.stringify(v)}`;
}

/**
 * What a cache must forget for each applied change. An entity whose events in the delivery are all its first version
 * was created by this apply: nothing of it can be cached but its absence (writePlan's `created`).
 */
export function cacheChanges(changed: Changed[], events: ReplEvent[]): Changes[] {
	const newest = new Map<string, number>();
	for (const e of events) newest.set(e.aggregateId, Math.max(e.version, newest.get(e.aggregateId) ?? 0));
	return changed.map(c => {
		const created = newest.get(c.id) === 1;
		return c.aggregateType === "supply"
			? { supply: { id: c.id, userId: c.userId, created } }
			: c.aggregateType === "order"
				? { order: { id: c.id, userId: c.userId, created } }
				: { claiming: { id: c.id, claimerId: c.claimerId, created } };
	});
}
