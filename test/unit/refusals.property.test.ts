// Every refusal the domain makes, for any entity: the status, the stable code, the message and the
// details a client reads in the error body (and nothing that reveals other users' rows).
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { assetDecimals } from "../../src/domain/assets";
import { checkReplay, decideClaim, decideRelease } from "../../src/domain/claim";
import { badRequest, notFound, unauthorized } from "../../src/domain/errors";
import { decideCancel, decideComplete } from "../../src/domain/order";
import { decideAmountChange, decideSupplyTransition } from "../../src/domain/supply";
import type { ClaimStatus, OrderStatus, SupplyStatus } from "../../src/domain/types";
import { makeClaim, makeOrder, makeSupply, NOW, thrown } from "./fixtures";

const id = fc.uuid();
const user = fc.stringMatching(/^[a-z]{1,8}-\d{1,3}$/);
const orderStatus = fc.constantFrom<OrderStatus>("open", "claimed", "completed", "cancelled", "expired");
const LATER = new Date(NOW.getTime() + 3600_000).toISOString();

describe("error bodies", () => {
	test.prop([fc.constantFrom("order", "supply", "claim")])("not found names the entity, in the code and the message", entity => {
		const err = notFound(entity);
		expect(err).toMatchObject({ code: 404, type: `${entity.toUpperCase()}_NOT_FOUND`, name: "MoleculerClientError" });
		expect(err.message).toBe(`${entity[0].toUpperCase()}${entity.slice(1)} not found`);
	});

	test.prop([fc.string({ minLength: 1 })])("401 and 400 carry their defaults and the given message", message => {
		expect(unauthorized()).toMatchObject({ code: 401, type: "UNAUTHORIZED", message: "Authentication required" });
		expect(unauthorized(message, "TOKEN_EXPIRED")).toMatchObject({ code: 401, type: "TOKEN_EXPIRED", message });
		expect(badRequest("BAD", message, { a: 1 })).toMatchObject({ code: 400, type: "BAD", message, data: { a: 1 } });
	});

	test.prop([fc.dictionary(fc.stringMatching(/^[A-Z]{2,6}$/), fc.integer({ min: 0, max: 18 }), { minKeys: 1 }), fc.stringMatching(/^[A-Z]{7,9}$/)])(
		"an asset's decimals come from the configuration; an unknown asset lists the supported ones",
		(decimals, unknown) => {
			const assets = Object.fromEntries(Object.entries(decimals).map(([k, d]) => [k, { decimals: d }])) as any;
			for (const [k, d] of Object.entries(decimals)) expect(assetDecimals(assets, k)).toBe(d);
			expect(thrown(() => assetDecimals(assets, unknown))).toMatchObject({
				code: 422,
				type: "UNKNOWN_ASSET",
				message: `Unknown asset "${unknown}"`,
				data: { supported: Object.keys(decimals) },
			});
		},
	);
});

describe("claim refusals", () => {
	test.prop([id, user])("own order", (orderId, buyer) => {
		const err = thrown(() => decideClaim(makeOrder({ id: orderId, userId: buyer }), makeSupply({ userId: buyer }), buyer, NOW));
		expect(err).toMatchObject({ code: 403, type: "OWN_ORDER", message: "You cannot claim your own order" });
	});

	test.prop([id])("an open order past its expiry reads as expired", orderId => {
		const err = thrown(() => decideClaim(makeOrder({ id: orderId, expiresAt: NOW.toISOString() }), makeSupply(), "claimer-1", NOW));
		expect(err).toMatchObject({ code: 409, type: "ORDER_EXPIRED", message: "The order has expired", data: { id: orderId, status: "expired" } });
	});

	test.prop([id, orderStatus.filter(s => s !== "open")])("an order that is not open, even past its expiry: its claimer gets the state", (orderId, status) => {
		const order = makeOrder({ id: orderId, status, claimerId: "claimer-1", expiresAt: NOW.toISOString() });
		const err = thrown(() => decideClaim(order, makeSupply(), "claimer-1", NOW));
		expect(err).toMatchObject({
			code: 409,
			type: status === "expired" ? "ORDER_EXPIRED" : "ORDER_NOT_OPEN",
			message: `Cannot claim an order that is ${status}`,
			data: { id: orderId, status },
		});
	});

	test.prop([id, user])("someone else's supply looks missing", (supplyId, owner) => {
		const err = thrown(() => decideClaim(makeOrder({ expiresAt: LATER }), makeSupply({ id: supplyId, userId: `x${owner}` }), "claimer-1", NOW));
		expect(err).toMatchObject({ code: 404, type: "SUPPLY_NOT_FOUND", message: "Supply not found" });
		expect(err.data).toBeUndefined();
	});

	test.prop([fc.constantFrom("ETH", "BTC", "EUR")])("asset mismatch names both assets", asset => {
		const err = thrown(() => decideClaim(makeOrder({ expiresAt: LATER }), makeSupply({ asset }), "claimer-1", NOW));
		expect(err).toMatchObject({ code: 422, type: "ASSET_MISMATCH", message: `The supply holds ${asset} but the order is in USDC` });
	});

	test.prop([id, fc.constantFrom<SupplyStatus>("paused", "closed")])("a supply that is not active", (supplyId, status) => {
		const err = thrown(() => decideClaim(makeOrder({ expiresAt: LATER }), makeSupply({ id: supplyId, status }), "claimer-1", NOW));
		expect(err).toMatchObject({ code: 409, type: "SUPPLY_NOT_ACTIVE", message: `The supply is ${status}`, data: { id: supplyId, status } });
	});

	test.prop([id, fc.bigInt({ min: 0n, max: 9n })])("insufficient funds show available and required", (supplyId, have) => {
		const supply = makeSupply({ id: supplyId, available: `${have}.5` });
		const err = thrown(() => decideClaim(makeOrder({ expiresAt: LATER, amount: "10" }), supply, "claimer-1", NOW));
		expect(err).toMatchObject({
			code: 409,
			type: "INSUFFICIENT_SUPPLY",
			message: "The supply does not have enough available funds",
			data: { id: supplyId, available: `${have}.5`, required: "10" },
		});
	});

	test.prop([id, id, id])("a key reused for another order or supply names the first claim", (claimId, orderId, supplyId) => {
		const claim = makeClaim({ id: claimId });
		for (const [o, s] of [
			[orderId, claim.supplyId],
			[claim.orderId, supplyId],
		])
			expect(thrown(() => checkReplay(claim, o, s))).toMatchObject({
				code: 422,
				type: "IDEMPOTENCY_KEY_REUSED",
				message: "This Idempotency-Key was already used for a different claim",
				data: { claimId },
			});
		expect(() => checkReplay(claim, claim.orderId, claim.supplyId)).not.toThrow();
	});

	test.prop([id, fc.constantFrom<ClaimStatus>("settled", "released")])("releasing a claim that is not active", (claimId, status) => {
		const err = thrown(() => decideRelease(makeClaim({ id: claimId, status }), "claimer-1"));
		expect(err).toMatchObject({ code: 409, type: "CLAIM_NOT_ACTIVE", message: `Cannot release a claim that is ${status}`, data: { id: claimId, status } });
	});
});

describe("order refusals", () => {
	test.prop([id, user, fc.constantFrom("complete", "cancel")])("only the buyer, without saying more", (orderId, stranger, action) => {
		// Those who can see the order (anyone while it is open, its claimer) are told they are not the buyer.
		const order = makeOrder({ id: orderId, status: action === "complete" ? "claimed" : "open", claimerId: action === "complete" ? `x${stranger}` : null });
		const err = thrown(() => (action === "complete" ? decideComplete : decideCancel)(order, `x${stranger}`));
		expect(err).toMatchObject({ code: 403, type: "NOT_BUYER", message: `Only the buyer can ${action} this order` });
	});

	test.prop([id, user, orderStatus.filter(s => s !== "open"), fc.constantFrom("complete", "cancel")])(
		"to a stranger, an order that is not open does not exist",
		(orderId, stranger, status, action) => {
			const order = makeOrder({ id: orderId, status, claimerId: status === "claimed" || status === "completed" ? "claimer-1" : null });
			const err = thrown(() => (action === "complete" ? decideComplete : decideCancel)(order, `x${stranger}`));
			expect(err).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
			expect(err.data).toBeUndefined();
		},
	);

	test.prop([id, user, orderStatus.filter(s => s !== "open")])("to a stranger, a claim on an order that is not open says not found", (orderId, stranger, status) => {
		const order = makeOrder({ id: orderId, status, claimerId: status === "claimed" || status === "completed" ? "claimer-1" : null });
		const err = thrown(() => decideClaim(order, makeSupply({ userId: `x${stranger}` }), `x${stranger}`, NOW));
		expect(err).toMatchObject({ code: 404, type: "ORDER_NOT_FOUND" });
	});

	test.prop([id, orderStatus])("complete and cancel name the state they need", (orderId, status) => {
		const order = makeOrder({ id: orderId, status });
		for (const [action, fn, need] of [
			["complete", decideComplete, "claimed"],
			["cancel", decideCancel, "open"],
		] as const) {
			if (status === need) continue;
			expect(thrown(() => fn(order, order.userId))).toMatchObject({
				code: 409,
				type: status === "expired" ? "ORDER_EXPIRED" : `ORDER_NOT_${need.toUpperCase()}`,
				message: `Cannot ${action} an order that is ${status}`,
				data: { id: orderId, status },
			});
		}
	});
});

describe("supply refusals", () => {
	test.prop([id, fc.constantFrom("pause", "resume", "close" as const)])("a transition from the wrong state", (supplyId, cmd) => {
		const status: SupplyStatus = cmd === "resume" ? "active" : "closed";
		expect(thrown(() => decideSupplyTransition(makeSupply({ id: supplyId, status }), cmd))).toMatchObject({
			code: 409,
			type: "INVALID_TRANSITION",
			message: `Cannot ${cmd} a supply that is ${status}`,
			data: { id: supplyId, status },
		});
	});

	test.prop([id, fc.constantFrom<SupplyStatus>("active", "paused"), fc.integer({ min: 1, max: 99 })])("closing with reservations", (supplyId, status, r) => {
		expect(thrown(() => decideSupplyTransition(makeSupply({ id: supplyId, status, reserved: `0.${r}` }), "close"))).toMatchObject({
			code: 409,
			type: "SUPPLY_HAS_RESERVATIONS",
			message: "A supply with reserved funds cannot be closed",
			data: { id: supplyId, status, reserved: `0.${r}` },
		});
	});

	test.prop([id])("a closed supply cannot change its amount", supplyId => {
		expect(thrown(() => decideAmountChange(makeSupply({ id: supplyId, status: "closed" }), 5n))).toMatchObject({
			code: 409,
			type: "INVALID_TRANSITION",
			message: "A closed supply cannot be changed",
			data: { id: supplyId, status: "closed" },
		});
	});

	test.prop([id, fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 50 })])("an amount below reserved + spent", (supplyId, r, s) => {
		const supply = makeSupply({ id: supplyId, reserved: `${r}`, spent: `${s}` });
		const floor = BigInt(r + s) * 10n ** 18n;
		expect(decideAmountChange(supply, floor)).toBe(floor);
		expect(thrown(() => decideAmountChange(supply, floor - 1n))).toMatchObject({
			code: 409,
			type: "AMOUNT_BELOW_COMMITTED",
			message: "amount cannot go below reserved + spent",
			data: { id: supplyId, reserved: `${r}`, spent: `${s}` },
		});
	});

	test.prop([fc.constant(0n)])("zero is never an amount, even with nothing committed", amount => {
		expect(thrown(() => decideAmountChange(makeSupply({ reserved: "0", spent: "0" }), amount))).toMatchObject({
			code: 422,
			type: "INVALID_AMOUNT",
			message: "amount must be greater than zero",
			data: { field: "amount" },
		});
	});
});
