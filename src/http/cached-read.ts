// GET of one order, supply or claim, answered in the gateway's HTTP handler from the entry the entity's `find`
// action keeps in the cache (docs/gateway.md, "Cached reads"). Only a hit that the caller may see is answered
// here. Everything else (a miss, a bad token, a missing scope, an entity hidden from the caller) goes the whole
// way through moleculer-web and the actions, which answer as they always did.
import { canViewClaim, canViewOrder, canViewSupply, hasScope, type Scope } from "../domain/permissions";
import type { Claim, Order, Supply, User } from "../domain/types";
import { orderView } from "../domain/views";
import { findKey, type Entity } from "../lib/cache-keys";

export interface CachedRead {
	entity: Entity;
	/** The scope the entity's `get` action asks for. */
	scope: Scope;
	/** The cache key its `find` action reads and fills. */
	key: string;
	/** What `get` answers this user for a found entity, or undefined where it answers 404. */
	view(value: any, user: User): object | undefined;
}

const READABLE: Record<string, Omit<CachedRead, "key">> = {
	orders: { entity: "order", scope: "order:read", view: (o: Order, user) => (canViewOrder(user, o) ? orderView(o, user) : undefined) },
	supplies: { entity: "supply", scope: "supply:read", view: (s: Supply, user) => (canViewSupply(user, s) ? s : undefined) },
	claims: { entity: "claiming", scope: "claim:read", view: (c: Claim, user) => (canViewClaim(user, c) ? c : undefined) },
};

// The routes' own spelling only: no trailing slash, no query string (those go the whole way).
const PATH = /^\/api\/v1\/(orders|supplies|claims)\/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;

/** The cached read a request's URL names, if any. */
export function cachedReadOf(url: string): CachedRead | undefined {
	const m = PATH.exec(url);
	if (!m) return undefined;
	const read = READABLE[m[1]];
	return { ...read, key: findKey(read.entity, m[2]) };
}

/** The body to answer with, or undefined when the action must answer (a miss, no scope, not the caller's to see). */
export function cachedAnswer(read: CachedRead, user: User, cached: unknown): object | undefined {
	// null is a cached "not found": the action turns it into its 404.
	if (cached === null || cached === undefined || typeof cached !== "object") return undefined;
	if (!hasScope(user, read.scope)) return undefined;
	return read.view(cached, user);
}
