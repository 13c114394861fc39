// Pure decisions about an order: its amount, its expiry and its state machine.
import { conflict, forbidden } from "./errors";
import { assertInRange, positiveAmount, type Units } from "./money";
import type { Order, OrderItem, OrderStatus } from "./types";

/** amount = Σ unitPrice × quantity, exact. */
export function orderAmount(items: OrderItem[], decimals: number): Units {
	let total = 0n;
	items.forEach((item, i) => {
		const price = positiveAmount(item.unitPrice, decimals, `items[${i}].unitPrice`);
		total += price * BigInt(item.quantity);
	});
	return assertInRange(total);
}

export function isExpired(order: Pick<Order, "expiresAt">, now: Date): boolean {
	return new Date(order.expiresAt).getTime() <= now.getTime();
}

function notInState(order: Pick<Order, "id" | "status">, action: string, expected: OrderStatus) {
	return conflict(
		order.status === "expired" ? "ORDER_EXPIRED" : `ORDER_NOT_${expected.toUpperCase()}`,
		`Cannot ${action} an order that is ${order.status}`,
		{ id: order.id, status: order.status },
	);
}

export function decideCancel(order: Pick<Order, "id" | "status" | "userId">, userId: string): OrderStatus {
	if (order.userId !== userId) throw forbidden("NOT_BUYER", "Only the buyer can cancel this order");
	if (order.status !== "open") throw notInState(order, "cancel", "open");
	return "cancelled";
}

export function decideComplete(order: Pick<Order, "id" | "status" | "userId">, userId: string): OrderStatus {
	if (order.userId !== userId) throw forbidden("NOT_BUYER", "Only the buyer can complete this order");
	if (order.status !== "claimed") throw notInState(order, "complete", "claimed");
	return "completed";
}

export { notInState };
