// Pure decisions about an order: its amount, its expiry and its state machine.
import { conflict, forbidden, notFound } from "./errors";
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

type Commanded = Pick<Order, "id" | "status" | "userId" | "claimerId">;

/** Only the buyer commands an order; whoever may not even see it is told it does not exist. */
function checkBuyer(order: Commanded, userId: string, admin: boolean, action: string) {
	if (order.userId === userId) return;
	const visible = order.status === "open" || order.claimerId === userId || admin;
	if (!visible) throw notFound("order");
	throw forbidden("NOT_BUYER", `Only the buyer can ${action} this order`);
}

export function decideCancel(order: Commanded, userId: string, admin = false): OrderStatus {
	checkBuyer(order, userId, admin, "cancel");
	if (order.status !== "open") throw notInState(order, "cancel", "open");
	return "cancelled";
}

export function decideComplete(order: Commanded, userId: string, admin = false): OrderStatus {
	checkBuyer(order, userId, admin, "complete");
	if (order.status !== "claimed") throw notInState(order, "complete", "claimed");
	return "completed";
}

export { notInState };
