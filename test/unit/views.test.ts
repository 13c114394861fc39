import { describe, expect, it } from "vitest";
import { orderView } from "../../src/domain/views";
import { makeOrder, makeUser } from "./fixtures";

describe("orderView", () => {
	const order = makeOrder({ userId: "buyer-1", status: "claimed", claimerId: "claimer-1", claimId: "claim-1" });

	it("shows the buyer their own userId but never the claimerId", () => {
		const view = orderView(order, makeUser("buyer-1"));
		expect(view.userId).toBe("buyer-1");
		expect(view).not.toHaveProperty("claimerId");
		expect(view).toMatchObject({ id: order.id, amount: order.amount, status: "claimed" });
	});

	it("hides both the buyer's and the claimer's ids from other users, including the claimer", () => {
		for (const viewer of [makeUser("claimer-1"), makeUser("stranger")]) {
			const view = orderView(order, viewer);
			expect(view).not.toHaveProperty("userId");
			expect(view).not.toHaveProperty("claimerId");
			expect(JSON.stringify(view)).not.toContain("buyer-1");
			expect(JSON.stringify(view)).not.toContain("claimer-1");
		}
	});

	it("shows an admin the buyer's id but not the claimer's", () => {
		const view = orderView(order, makeUser("root", ["admin"]));
		expect(view.userId).toBe("buyer-1");
		expect(view).not.toHaveProperty("claimerId");
	});

	it("does not modify the order it is given", () => {
		orderView(order, makeUser("stranger"));
		expect(order.claimerId).toBe("claimer-1");
		expect(order.userId).toBe("buyer-1");
	});
});
