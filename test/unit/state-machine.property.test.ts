// The claim, order and supply state machines under random command sequences. A tiny pure model of a
// region (what the commands in src/store do with the rows) asks the domain's decide functions before
// every change; after every step the brief's invariants must hold, every refusal must be the one the
// model expects, and every status change must be one the state machines allow.
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { checkReplay, decideClaim, decideRelease } from "../../src/domain/claim";
import { AppError } from "../../src/domain/errors";
import { formatAmount, fromNumeric } from "../../src/domain/money";
import { decideCancel, decideComplete, isExpired } from "../../src/domain/order";
import { decideAmountChange, decideSupplyTransition, type SupplyCommand } from "../../src/domain/supply";
import type { Claim, ClaimStatus, Order, OrderStatus, Supply, SupplyStatus } from "../../src/domain/types";
import { makeClaim, makeOrder, makeSupply, NOW } from "./fixtures";

const USERS = ["u0", "u1", "u2"];
const UNIT = 10n ** 16n; // amounts are multiples of 0.01

interface World {
	supplies: Supply[];
	orders: Order[];
	claims: Claim[];
	keys: Map<string, string>; // claimer + key -> claim id
	now: Date;
}

type Cmd =
	| { t: "claim"; order: number; supply: number; own: boolean; user: number; key: number }
	| { t: "release"; claim: number; user: number | null }
	| { t: "complete"; order: number; user: number }
	| { t: "cancel"; order: number; user: number }
	| { t: "supply"; supply: number; cmd: SupplyCommand }
	| { t: "amount"; supply: number; amount: bigint }
	| { t: "time"; sec: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
	{ weight: 5, arbitrary: fc.record({ t: fc.constant("claim" as const), order: fc.nat(5), supply: fc.nat(3), own: fc.boolean(), user: fc.nat(2), key: fc.nat(3) }) },
	{ weight: 2, arbitrary: fc.record({ t: fc.constant("release" as const), claim: fc.nat(8), user: fc.option(fc.nat(2)) }) },
	{ weight: 2, arbitrary: fc.record({ t: fc.constant("complete" as const), order: fc.nat(5), user: fc.nat(2) }) },
	{ weight: 1, arbitrary: fc.record({ t: fc.constant("cancel" as const), order: fc.nat(5), user: fc.nat(2) }) },
	{ weight: 1, arbitrary: fc.record({ t: fc.constant("supply" as const), supply: fc.nat(3), cmd: fc.constantFrom<SupplyCommand>("pause", "resume", "close") }) },
	{ weight: 1, arbitrary: fc.record({ t: fc.constant("amount" as const), supply: fc.nat(3), amount: fc.bigInt({ min: 0n, max: 60n }).map(n => n * UNIT) }) },
	{ weight: 1, arbitrary: fc.record({ t: fc.constant("time" as const), sec: fc.integer({ min: 1, max: 400 }) }) },
);

const asset = fc.oneof({ weight: 4, arbitrary: fc.constant("USDC") }, { weight: 1, arbitrary: fc.constant("ETH") });
const world = fc
	.record({
		supplies: fc.array(fc.record({ user: fc.nat(2), amount: fc.bigInt({ min: 1n, max: 50n }), asset: asset }), { minLength: 4, maxLength: 4 }),
		orders: fc.array(
			fc.record({ user: fc.nat(2), amount: fc.bigInt({ min: 1n, max: 20n }), asset: asset, ttl: fc.integer({ min: 60, max: 2000 }) }),
			{ minLength: 6, maxLength: 6 },
		),
	})
	.map(
		(w): World => ({
						// Every user has a supply (the first three), one user has two.
			supplies: w.supplies.map((s, i) => withAvailable(makeSupply({ id: `s${i}`, userId: USERS[i < 3 ? i : s.user], asset: s.asset, amount: formatAmount(s.amount * UNIT) }))),
			orders: w.orders.map((o, i) =>
				makeOrder({
					id: `o${i}`,
					userId: USERS[o.user],
					asset: o.asset,
					amount: formatAmount(o.amount * UNIT),
					expiresAt: new Date(NOW.getTime() + o.ttl * 1000).toISOString(),
				}),
			),
			claims: [],
			keys: new Map(),
			now: NOW,
		}),
	);

function withAvailable(s: Supply): Supply {
	return { ...s, available: formatAmount(fromNumeric(s.amount) - fromNumeric(s.reserved) - fromNumeric(s.spent)) };
}
const move = (s: Supply, reserved: bigint, spent: bigint): Supply =>
	withAvailable({
		...s,
		reserved: formatAmount(fromNumeric(s.reserved) + reserved),
		spent: formatAmount(fromNumeric(s.spent) + spent),
		version: s.version + 1,
	});

/** What the model expects of a claim: the refusal code, or null when it must succeed. */
function expectedClaimRefusal(w: World, o: Order, s: Supply, user: string): string | null {
	if (o.userId === user) return "OWN_ORDER";
	if (o.status === "open" && isExpiredModel(o, w.now)) return "ORDER_EXPIRED";
	// Not open: a stranger is told nothing (404); its claimer gets the state.
	if (o.status !== "open" && o.claimerId !== user) return "ORDER_NOT_FOUND";
	if (o.status === "expired") return "ORDER_EXPIRED";
	if (o.status !== "open") return "ORDER_NOT_OPEN";
	if (s.userId !== user) return "SUPPLY_NOT_FOUND";
	if (s.asset !== o.asset) return "ASSET_MISMATCH";
	if (s.status !== "active") return "SUPPLY_NOT_ACTIVE";
	if (fromNumeric(s.amount) - fromNumeric(s.reserved) - fromNumeric(s.spent) < fromNumeric(o.amount)) return "INSUFFICIENT_SUPPLY";
	return null;
}
const isExpiredModel = (o: Order, now: Date) => Date.parse(o.expiresAt) <= now.getTime();

const ALLOWED = {
	order: new Set(["open>claimed", "claimed>open", "claimed>completed", "open>cancelled", "open>expired"]),
	claim: new Set(["active>released", "active>settled"]),
	supply: new Set(["active>paused", "paused>active", "active>closed", "paused>closed"]),
};

/** Runs a decision: returns its refusal code, or null when it allowed the change. */
function decide(fn: () => void): string | null {
	try {
		fn();
		return null;
	} catch (err) {
		expect(err).toBeInstanceOf(AppError);
		expect([403, 404, 409, 422]).toContain((err as AppError).code);
		return (err as AppError).type;
	}
}

function step(w: World, c: Cmd): void {
	switch (c.t) {
		case "time":
			w.now = new Date(w.now.getTime() + c.sec * 1000);
			// The sweeper: open orders past expiry become expired.
			w.orders = w.orders.map(o => (o.status === "open" && isExpired(o, w.now) ? { ...o, status: "expired", version: o.version + 1 } : o));
			return;
		case "claim": {
			const o = w.orders[c.order];
			const user = USERS[c.user];
			// Mostly the claimer's own supply, so that claims get through; sometimes anyone's.
			const si = c.own ? Math.max(0, w.supplies.findIndex(x => x.userId === user)) : c.supply;
			const s = w.supplies[si];
			const key = `${user}/k${c.key}`;
			const existing = w.keys.get(key);
			if (existing) {
				// A replay: the same order and supply get the first claim back, anything else is refused.
				const claim = w.claims.find(x => x.id === existing)!;
				const same = claim.orderId === o.id && claim.supplyId === s.id;
				expect(decide(() => checkReplay(claim, o.id, s.id))).toBe(same ? null : "IDEMPOTENCY_KEY_REUSED");
				return;
			}
			const want = expectedClaimRefusal(w, o, s, user);
			expect(decide(() => decideClaim(o, s, user, w.now))).toBe(want);
			if (want) return;
			const claim = makeClaim({ id: `c${w.claims.length}`, orderId: o.id, claimerId: user, supplyId: s.id, amount: o.amount, idempotencyKey: key });
			w.claims.push(claim);
			w.keys.set(key, claim.id);
			w.supplies[si] = move(s, fromNumeric(o.amount), 0n);
			w.orders[c.order] = { ...o, status: "claimed", claimId: claim.id, claimerId: user, version: o.version + 1 };
			return;
		}
		case "release": {
			const claim = w.claims[c.claim];
			if (!claim) return;
			const user = c.user === null ? null : USERS[c.user];
			const want = user !== null && claim.claimerId !== user ? "CLAIM_NOT_FOUND" : claim.status !== "active" ? "CLAIM_NOT_ACTIVE" : null;
			expect(decide(() => decideRelease(claim, user))).toBe(want);
			if (want) return;
			w.claims[c.claim] = { ...claim, status: "released", version: claim.version + 1 };
			const si = w.supplies.findIndex(s => s.id === claim.supplyId);
			w.supplies[si] = move(w.supplies[si], -fromNumeric(claim.amount), 0n);
			const oi = w.orders.findIndex(o => o.id === claim.orderId);
			w.orders[oi] = { ...w.orders[oi], status: "open", claimId: null, claimerId: null, version: w.orders[oi].version + 1 };
			return;
		}
		case "complete":
		case "cancel": {
			const o = w.orders[c.order];
			const user = USERS[c.user];
			const from = c.t === "complete" ? "claimed" : "open";
			const visible = o.status === "open" || o.userId === user || o.claimerId === user;
			const want = !visible ? "ORDER_NOT_FOUND" : o.userId !== user ? "NOT_BUYER" : o.status === "expired" ? "ORDER_EXPIRED" : o.status !== from ? `ORDER_NOT_${from.toUpperCase()}` : null;
			const to = c.t === "complete" ? decide(() => expect(decideComplete(o, user)).toBe("completed")) : decide(() => expect(decideCancel(o, user)).toBe("cancelled"));
			expect(to).toBe(want);
			if (want) return;
			if (c.t === "cancel") {
				w.orders[c.order] = { ...o, status: "cancelled", version: o.version + 1 };
				return;
			}
			const ci = w.claims.findIndex(x => x.id === o.claimId);
			const claim = w.claims[ci];
			w.claims[ci] = { ...claim, status: "settled", version: claim.version + 1 };
			const si = w.supplies.findIndex(s => s.id === claim.supplyId);
			w.supplies[si] = move(w.supplies[si], -fromNumeric(claim.amount), fromNumeric(claim.amount));
			w.orders[c.order] = { ...o, status: "completed", version: o.version + 1 };
			return;
		}
		case "supply": {
			const s = w.supplies[c.supply];
			const to: Record<SupplyCommand, [SupplyStatus[], SupplyStatus]> = { pause: [["active"], "paused"], resume: [["paused"], "active"], close: [["active", "paused"], "closed"] };
			const [from, target] = to[c.cmd];
			const want = !from.includes(s.status) ? "INVALID_TRANSITION" : c.cmd === "close" && fromNumeric(s.reserved) !== 0n ? "SUPPLY_HAS_RESERVATIONS" : null;
			let got: SupplyStatus | undefined;
			expect(decide(() => void (got = decideSupplyTransition(s, c.cmd)))).toBe(want);
			if (want) return;
			expect(got).toBe(target);
			w.supplies[c.supply] = { ...s, status: target, version: s.version + 1 };
			return;
		}
		case "amount": {
			const s = w.supplies[c.supply];
			const floor = fromNumeric(s.reserved) + fromNumeric(s.spent);
			const want = s.status === "closed" ? "INVALID_TRANSITION" : c.amount < floor ? "AMOUNT_BELOW_COMMITTED" : c.amount <= 0n ? "INVALID_AMOUNT" : null;
			let got: bigint | undefined;
			expect(decide(() => void (got = decideAmountChange(s, c.amount)))).toBe(want);
			if (want) return;
			expect(got).toBe(c.amount);
			w.supplies[c.supply] = withAvailable({ ...s, amount: formatAmount(c.amount), version: s.version + 1 });
		}
	}
}

function checkInvariants(w: World, before: World): void {
	for (const s of w.supplies) {
		const claims = w.claims.filter(c => c.supplyId === s.id);
		const sum = (status: ClaimStatus) => claims.filter(c => c.status === status).reduce((a, c) => a + fromNumeric(c.amount), 0n);
		expect(fromNumeric(s.available)).toBeGreaterThanOrEqual(0n);
		expect(fromNumeric(s.reserved)).toBe(sum("active"));
		expect(fromNumeric(s.spent)).toBe(sum("settled"));
		if (s.status === "closed") expect(fromNumeric(s.reserved)).toBe(0n);
	}
	for (const o of w.orders) {
		const live = w.claims.filter(c => c.orderId === o.id && c.status !== "released");
		expect(live.length).toBeLessThanOrEqual(1);
		// The order points at its live claim exactly when it is claimed or completed.
		expect(live.map(c => c.id)).toEqual(o.claimId ? [o.claimId] : []);
		expect(o.claimId !== null).toBe(o.status === "claimed" || o.status === "completed");
		if (live[0]) {
			expect(live[0].status).toBe(o.status === "claimed" ? "active" : "settled");
			expect(live[0].amount).toBe(o.amount);
			expect(live[0].claimerId).not.toBe(o.userId);
		}
	}
	const changed = <T extends { id: string; status: string; version: number }>(kind: keyof typeof ALLOWED, a: T[], b: T[]) => {
		for (const x of b) {
			const prev = a.find(y => y.id === x.id);
			if (!prev) continue;
			if (prev.status !== x.status) expect(ALLOWED[kind].has(`${prev.status}>${x.status}`), `${kind} ${prev.status}>${x.status}`).toBe(true);
			// Every change of a row bumps its version by one (the events are numbered by it).
			if (prev !== x) expect(x.version).toBe(prev.version + 1);
		}
	};
	changed("order", before.orders, w.orders);
	changed("claim", before.claims, w.claims);
	changed("supply", before.supplies, w.supplies);
}

describe("state machines under random command sequences", () => {
	test.prop([world, fc.array(cmd, { minLength: 1, maxLength: 60 })], { numRuns: 300 })(
		"never break an invariant, and refuse exactly what the model refuses",
		(w0, cmds) => {
			const w: World = { ...w0, supplies: [...w0.supplies], orders: [...w0.orders], claims: [], keys: new Map() };
			for (const c of cmds) {
				const before: World = { ...w, supplies: [...w.supplies], orders: [...w.orders], claims: [...w.claims] };
				step(w, c);
				checkInvariants(w, before);
			}
		},
	);

	test.prop([world, fc.array(cmd, { minLength: 20, maxLength: 80 })], { numRuns: 100 })("statuses only ever move forward along the allowed edges", (w0, cmds) => {
		const w: World = { ...w0, supplies: [...w0.supplies], orders: [...w0.orders], claims: [], keys: new Map() };
		const seen = new Set<string>();
		for (const c of cmds) {
			const before = w.orders.map(o => o.status);
			step(w, c);
			w.orders.forEach((o, i) => before[i] !== o.status && seen.add(`${before[i]}>${o.status}`));
		}
		for (const edge of seen) expect(ALLOWED.order.has(edge)).toBe(true);
		// A terminal order stays terminal.
		const terminal: OrderStatus[] = ["completed", "cancelled", "expired"];
		for (const edge of seen) expect(terminal.includes(edge.split(">")[0] as OrderStatus)).toBe(false);
	});
});
