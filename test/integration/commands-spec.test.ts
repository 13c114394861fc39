// The SQL commands (order_commands) against their specification, the pure decision code in src/domain: on
// random orders, supplies and callers, both must refuse with the same code, or both accept. Each case writes
// fresh rows, runs the command through the real function, and compares with what decideClaim / decideCancel /
// decideComplete say of the same rows.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decideClaim } from "../../src/domain/claim";
import { decideCancel, decideComplete } from "../../src/domain/order";
import { fromNumeric, formatAmount } from "../../src/domain/money";
import type { Order, OrderStatus, Supply, SupplyStatus } from "../../src/domain/types";
import { ensureOwnership, runCommands, type CommandContext, type OrderCommand } from "../../src/store/commands";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";

let db: TestDatabase;
const cc: CommandContext = { region: "us-central1", epochs: { "us-central1": 1 }, holdSec: 300 };

beforeAll(async () => {
	db = await createMigratedDatabase();
	await ensureOwnership(db.pool, ["us-central1"]);
});

afterAll(async () => {
	await db?.drop();
});

const USERS = ["alice", "bob", "carol"];
const AMOUNTS = ["0.1", "0.5", "1", "2", "2.000000000000000001"];

const orderArb = fc.record({
	exists: fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, { arbitrary: fc.constant(false), weight: 1 }),
	buyer: fc.constantFrom(...USERS),
	status: fc.constantFrom<OrderStatus>("open", "claimed", "completed", "cancelled", "expired"),
	claimer: fc.constantFrom(...USERS),
	pastExpiry: fc.boolean(),
	asset: fc.constantFrom("ETH", "BTC"),
	amount: fc.constantFrom(...AMOUNTS),
});
const supplyArb = fc.record({
	exists: fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, { arbitrary: fc.constant(false), weight: 1 }),
	owner: fc.constantFrom(...USERS),
	asset: fc.constantFrom("ETH", "BTC"),
	status: fc.constantFrom<SupplyStatus>("active", "active", "paused", "closed"),
	amount: fc.constantFrom(...AMOUNTS),
	reserved: fc.constantFrom("0", "0.5", "1"),
});

type OrderCase = typeof orderArb extends fc.Arbitrary<infer T> ? T : never;
type SupplyCase = typeof supplyArb extends fc.Arbitrary<infer T> ? T : never;

/** Writes the rows of a case (fresh ids) and returns them as the domain sees them. */
async function write(o: OrderCase, s: SupplyCase): Promise<{ order?: Order; supply?: Supply; orderId: string; supplyId: string }> {
	const orderId = crypto.randomUUID();
	const supplyId = crypto.randomUUID();
	let order: Order | undefined;
	let supply: Supply | undefined;
	if (s.exists) {
		// A closed supply holds no reservation; reserved never exceeds the amount.
		const reserved = s.status === "closed" || fromNumeric(s.reserved) > fromNumeric(s.amount) ? "0" : s.reserved;
		await db.pool.query(`INSERT INTO supplies (id, user_id, asset, amount, reserved, status, home_region) VALUES ($1,$2,$3,$4,$5,$6,'us-central1')`, [
			supplyId,
			s.owner,
			s.asset,
			s.amount,
			reserved,
			s.status,
		]);
		const available = formatAmount(fromNumeric(s.amount) - fromNumeric(reserved));
		supply = { id: supplyId, userId: s.owner, asset: s.asset, amount: s.amount, reserved, spent: "0", available, status: s.status } as Supply;
	}
	if (o.exists) {
		const claimed = o.status === "claimed" || o.status === "completed";
		const claimId = claimed ? crypto.randomUUID() : null;
		const claimerId = claimed ? o.claimer : null;
		const r = await db.pool.query(
			`INSERT INTO orders (id, user_id, asset, items, amount, status, claim_id, claimer_id, home_region, expires_at)
			 VALUES ($1,$2,$3,'[]',$4,$5,$6,$7,'us-central1', now() + make_interval(secs => $8)) RETURNING expires_at`,
			[orderId, o.buyer, o.asset, o.amount, o.status, claimId, claimerId, o.pastExpiry ? -60 : 3600],
		);
		order = {
			id: orderId,
			userId: o.buyer,
			asset: o.asset,
			amount: o.amount,
			status: o.status,
			claimId,
			claimerId,
			expiresAt: r.rows[0].expires_at.toISOString(),
		} as Order;
	}
	return { order, supply, orderId, supplyId };
}

/** The code a decision throws, or "ok". */
const specOf = (decide: () => unknown) => {
	try {
		decide();
		return "ok";
	} catch (err) {
		return (err as { type?: string }).type ?? String(err);
	}
};

async function sqlOf(cmd: OrderCommand): Promise<string> {
	const [out] = await runCommands(db.pool, cc, [cmd]);
	return out.ok ? "ok" : ((out.error as { type?: string }).type ?? out.error.message);
}

describe("the SQL commands agree with the decision code", () => {
	it("claim: on random orders, supplies and claimers", async () => {
		const seen = new Map<string, number>();
		await fc.assert(
			fc.asyncProperty(orderArb, supplyArb, fc.constantFrom(...USERS), fc.nat(9), async (o, s0, claimer, bias) => {
				// Mostly a claimer who is not the buyer, with a supply of their own in the order's asset: the
				// cases then reach the deeper checks too.
				if (bias < 8 && o.buyer === claimer) o = { ...o, buyer: USERS.find(u => u !== claimer)! };
				const s = bias < 7 ? { ...s0, owner: claimer, asset: bias < 6 ? o.asset : s0.asset } : s0;
				const w = await write(o, s);
				// Compared a second before the SQL runs, so an order "past its expiry" is past it for both.
				const spec = specOf(() => decideClaim(w.order, w.supply, claimer, new Date()));
				const sql = await sqlOf({ op: "claim", orderId: w.orderId, supplyId: w.supplyId, userId: claimer, key: crypto.randomUUID() });
				seen.set(spec, (seen.get(spec) ?? 0) + 1);
				expect(sql, JSON.stringify({ o, s, claimer })).toBe(spec);
			}),
			{ numRuns: 400, seed: 20261125 },
		);
		console.log("claim outcomes compared:", JSON.stringify(Object.fromEntries(seen)));
		// The cases reached every refusal, and success.
		for (const code of ["ok", "ORDER_NOT_FOUND", "OWN_ORDER", "ORDER_EXPIRED", "ORDER_NOT_OPEN", "SUPPLY_NOT_FOUND", "ASSET_MISMATCH", "SUPPLY_NOT_ACTIVE", "INSUFFICIENT_SUPPLY"])
			expect(seen.get(code), code).toBeGreaterThan(0);
	});

	it("cancel and complete: on random orders and callers", async () => {
		const seen = new Map<string, number>();
		await fc.assert(
			fc.asyncProperty(orderArb, fc.constantFrom(...USERS), fc.constantFrom("cancel" as const, "complete" as const), fc.boolean(), async (o, caller, op, admin) => {
				// A claimed order's claim must exist and be active for complete: make it through a real claim.
				const w = await write({ ...o, status: o.status === "claimed" ? "open" : o.status, pastExpiry: o.status === "claimed" ? false : o.pastExpiry }, {
					exists: true,
					owner: o.claimer === o.buyer ? USERS.find(u => u !== o.buyer)! : o.claimer,
					asset: o.asset,
					status: "active",
					amount: "2.000000000000000001",
					reserved: "0",
				});
				if (o.exists && o.status === "claimed") {
					const claimer = o.claimer === o.buyer ? USERS.find(u => u !== o.buyer)! : o.claimer;
					const [c] = await runCommands(db.pool, cc, [{ op: "claim", orderId: w.orderId, supplyId: w.supplyId, userId: claimer, key: crypto.randomUUID() }]);
					expect(c.ok).toBe(true);
					if (c.ok) w.order = c.value.order;
				}
				const decide = op === "cancel" ? decideCancel : decideComplete;
				const spec = w.order ? specOf(() => decide(w.order!, caller, admin)) : "ORDER_NOT_FOUND";
				const sql = await sqlOf({ op, orderId: w.orderId, userId: caller, admin });
				seen.set(`${op} ${spec}`, (seen.get(`${op} ${spec}`) ?? 0) + 1);
				expect(sql, JSON.stringify({ o, caller, op, admin })).toBe(spec);
			}),
			{ numRuns: 300, seed: 20261126 },
		);
		console.log("cancel/complete outcomes compared:", JSON.stringify(Object.fromEntries(seen)));
		for (const code of ["cancel ok", "complete ok", "cancel NOT_BUYER", "complete NOT_BUYER", "cancel ORDER_NOT_FOUND", "complete ORDER_NOT_FOUND", "cancel ORDER_NOT_OPEN", "complete ORDER_NOT_CLAIMED", "cancel ORDER_EXPIRED"])
			expect(seen.get(code), code).toBeGreaterThan(0);
	});
});
