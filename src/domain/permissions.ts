import type { Claim, Order, Supply, User } from "./types";

export const SCOPES = [
	"supply:read",
	"supply:write",
	"order:read",
	"order:write",
	"claim:read",
	"claim:write",
	"admin",
] as const;
export type Scope = (typeof SCOPES)[number];

export function hasScope(user: User, scope: Scope): boolean {
	return user.scopes.includes(scope) || user.scopes.includes("admin");
}

export const isAdmin = (user: User) => user.scopes.includes("admin");

/** Open orders are public to order:read; the rest only to their buyer and claimer. */
export function canViewOrder(user: User, order: Pick<Order, "status" | "userId" | "claimerId">): boolean {
	return order.status === "open" || order.userId === user.id || order.claimerId === user.id || isAdmin(user);
}

/** A supply is seen by its shopper (and admins) only; anyone else is told it does not exist. */
export const canViewSupply = (user: User, supply: Pick<Supply, "userId">) => supply.userId === user.id || isAdmin(user);

/** A claim is seen by its claimer (and admins) only. */
export const canViewClaim = (user: User, claim: Pick<Claim, "claimerId">) => claim.claimerId === user.id || isAdmin(user);
