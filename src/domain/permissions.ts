import type { Order, User } from "./types";

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
