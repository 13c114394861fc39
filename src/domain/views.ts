// What a user may see of an entity. Other users' ids never leave the server.
import { isAdmin } from "./permissions";
import type { Order, User } from "./types";

export type OrderView = Omit<Order, "claimerId" | "userId"> & { userId?: string };

export function orderView(order: Order, viewer: User): OrderView {
	const { claimerId: _claimer, userId, ...rest } = order;
	return order.userId === viewer.id || isAdmin(viewer) ? { ...rest, userId } : rest;
}
