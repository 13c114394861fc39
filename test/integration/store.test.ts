// src/store's own code against a real PostgreSQL, for what the other store tests do not read: the error a
// client gets for each refusal of the SQL commands (status, code, message, details), creates fenced by
// ownership, events appended in the caller's transaction, rows as the API shows them, and the lists
// (filters, visibility, order, paging and its bounds), and the steps of a claim across regions (holds).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../src/db/migrate";
import type { Claim, Order, Supply } from "../../src/domain/types";
import { ensureOwnership, ownerOf, runCommands, type CommandContext, type OrderCommand, type Outcome } from "../../src/store/commands";
import { createOrder, createSupply } from "../../src/store/creates";
import { claimIdFor, confirmHold, endHold, holdSupply, unconfirmedHolds, voidClaim, type HoldRequest } from "../../src/store/holds";
import { appendEvents } from "../../src/store/outbox";
import { getClaim, getOrder, getSupply, listClaims, listOrders, listSupplies } from "../../src/store/queries";
import { createMigratedDatabase, createTestDatabase, type TestDatabase } from "../helpers/db";
import { seedOrder, seedSupply } from "../helpers/seed";

let db: TestDatabase;
const cc: CommandContext = { region: "us-central1", epochs: {}, holdSec: 300 };

beforeAll(async () => {
	db = await createMigratedDatabase();
	const owners = await ensureOwnership(db.pool, ["us-central1", "europe-west1"]);
	cc.epochs["us-central1"] = owners.get("us-central1")!.epoch;
});

afterAll(async () => {
	await db?.drop();
});

const run = async (cmd: OrderCommand, pool: pg.Pool = db.pool, ctx = cc): Promise<Outcome> => (await runCommands(pool, ctx, [cmd]))[0];
const ok = (o: Outcome) => {
	expect(o.ok, o.ok ? "" : `${(o.error as any).type}: ${o.error.message}`).toBe(true);
	return (o as Extract<Outcome, { ok: true }>).value;
};
const errorOf = (o: Outcome) => {
	expect(o.ok).toBe(false);
	return (o as Extract<Outcome, { ok: false }>).error as any;
};
/** The parts of an error a client reads in the body: status, code, message, details. */
const body = (err: any) => ({ status: err.code, code: err.type, message: err.message, details: err.data });
const claimCmd = (orderId: string, supplyId: string, userId: string, key: string): OrderCommand => ({ op: "claim", orderId, supplyId, userId, key });

const TIMES = ["createdAt", "updatedAt", "expiresAt", "settledAt", "releasedAt"];
/**
 * A row read through src/store/rows.ts equals the same row as the SQL commands answer it (api_supply, api_order,
 * api_claim): every field, and every time an ISO-8601 UTC string at the same instant (the two round to the
 * millisecond apart, so within 1 ms).
 */
function expectSameRow(actual: any, expected: any) {
	expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
	for (const [k, v] of Object.entries(expected)) {
		if (!TIMES.includes(k)) expect(actual[k], k).toEqual(v);
		else if (v === null) expect(actual[k], k).toBeNull();
		else {
			expect(actual[k], k).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
			expect(Math.abs(Date.parse(actual[k]) - Date.parse(v as string)), k).toBeLessThanOrEqual(1);
		}
	}
}

describe("each refusal of the SQL commands, as the client reads it", () => {
	it("not found: a missing order, a missing claim, another user's supply", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const order = await seedOrder(db.pool, "bob", "0.1");
		expect(body(errorOf(await run(claimCmd(crypto.randomUUID(), supply, "sue", "nf-1"))))).toEqual({
			status: 404,
			code: "ORDER_NOT_FOUND",
			message: "Order not found",
			details: undefined,
		});
		expect(body(errorOf(await run({ op: "release", orderId: order, claimId: crypto.randomUUID(), userId: "sue" })))).toEqual({
			status: 404,
			code: "CLAIM_NOT_FOUND",
			message: "Claim not found",
			details: undefined,
		});
		expect(body(errorOf(await run(claimCmd(order, supply, "mallory", "nf-2"))))).toEqual({
			status: 404,
			code: "SUPPLY_NOT_FOUND",
			message: "Supply not found",
			details: undefined,
		});
	});

	it("forbidden: claiming one's own order; completing or cancelling someone else's", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const own = await seedSupply(db.pool, "bob");
		expect(body(errorOf(await run(claimCmd(order, own, "bob", "own-1"))))).toMatchObject({
			status: 403,
			code: "OWN_ORDER",
			message: "You cannot claim your own order",
		});
		ok(await run(claimCmd(order, supply, "sue", "fb-1")));
		// The claimer sees the order, but only its buyer completes or cancels it.
		expect(body(errorOf(await run({ op: "complete", orderId: order, userId: "sue" })))).toMatchObject({
			status: 403,
			code: "NOT_BUYER",
			message: "Only the buyer can complete this order",
		});
		expect(body(errorOf(await run({ op: "cancel", orderId: order, userId: "sue" })))).toMatchObject({
			status: 403,
			code: "NOT_BUYER",
			message: "Only the buyer can cancel this order",
		});
	});

	it("an order in the wrong state: the state, the order's id and what was asked", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const late = await seedOrder(db.pool, "bob", "0.1", { expiresInSec: -1 });
		// An open order past its time: expired, whether or not the sweeper has run.
		expect(body(errorOf(await run(claimCmd(late, supply, "sue", "st-1"))))).toEqual({
			status: 409,
			code: "ORDER_EXPIRED",
			message: "The order has expired",
			details: { id: late, status: "expired" },
		});
		await db.pool.query(`UPDATE orders SET status = 'expired' WHERE id = $1`, [late]);
		expect(body(errorOf(await run({ op: "cancel", orderId: late, userId: "bob" })))).toEqual({
			status: 409,
			code: "ORDER_EXPIRED",
			message: "Cannot cancel an order that is expired",
			details: { id: late, status: "expired" },
		});
		expect(body(errorOf(await run({ op: "complete", orderId: late, userId: "bob" })))).toEqual({
			status: 409,
			code: "ORDER_EXPIRED",
			message: "Cannot complete an order that is expired",
			details: { id: late, status: "expired" },
		});

		const order = await seedOrder(db.pool, "bob", "0.1");
		expect(body(errorOf(await run({ op: "complete", orderId: order, userId: "bob" })))).toEqual({
			status: 409,
			code: "ORDER_NOT_CLAIMED",
			message: "Cannot complete an order that is open",
			details: { id: order, status: "open" },
		});
		ok(await run(claimCmd(order, supply, "sue", "st-2")));
		// Its claimer trying again with another key, and its buyer cancelling it.
		expect(body(errorOf(await run(claimCmd(order, supply, "sue", "st-3"))))).toEqual({
			status: 409,
			code: "ORDER_NOT_OPEN",
			message: "Cannot claim an order that is claimed",
			details: { id: order, status: "claimed" },
		});
		expect(body(errorOf(await run({ op: "cancel", orderId: order, userId: "bob" })))).toEqual({
			status: 409,
			code: "ORDER_NOT_OPEN",
			message: "Cannot cancel an order that is claimed",
			details: { id: order, status: "claimed" },
		});
	});

	it("the supply: another asset, not active, not enough available", async () => {
		const order = await seedOrder(db.pool, "bob", "0.5");
		const btc = await seedSupply(db.pool, "sue", "10", { asset: "BTC" });
		expect(body(errorOf(await run(claimCmd(order, btc, "sue", "sp-1"))))).toEqual({
			status: 422,
			code: "ASSET_MISMATCH",
			message: "The supply holds BTC but the order is in ETH",
			details: undefined,
		});
		const paused = await seedSupply(db.pool, "sue", "10", { status: "paused" });
		expect(body(errorOf(await run(claimCmd(order, paused, "sue", "sp-2"))))).toEqual({
			status: 409,
			code: "SUPPLY_NOT_ACTIVE",
			message: "The supply is paused",
			details: { id: paused, status: "paused" },
		});
		// 1 ETH, 0.7 of it reserved by another claim: 0.3 left for an order of 0.5.
		const small = await seedSupply(db.pool, "sue", "1");
		ok(await run(claimCmd(await seedOrder(db.pool, "bob", "0.7"), small, "sue", "sp-3")));
		expect(body(errorOf(await run(claimCmd(order, small, "sue", "sp-4"))))).toEqual({
			status: 409,
			code: "INSUFFICIENT_SUPPLY",
			message: "The supply does not have enough available funds",
			details: { id: small, available: "0.3", required: "0.5" },
		});
	});

	it("a key already used for another claim names that claim", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const first = ok(await run(claimCmd(await seedOrder(db.pool, "bob", "0.1"), supply, "sue", "reused")));
		expect(body(errorOf(await run(claimCmd(await seedOrder(db.pool, "bob", "0.1"), supply, "sue", "reused"))))).toEqual({
			status: 422,
			code: "IDEMPOTENCY_KEY_REUSED",
			message: "This Idempotency-Key was already used for a different claim",
			details: { claimId: first.claim!.id },
		});
	});

	it("a claim that is not active says what it is, or that it is missing", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const claimId = ok(await run(claimCmd(order, supply, "sue", "na-1"))).claim!.id;
		ok(await run({ op: "release", orderId: order, claimId, userId: "sue" }));
		expect(body(errorOf(await run({ op: "release", orderId: order, claimId, userId: "sue" })))).toEqual({
			status: 409,
			code: "CLAIM_NOT_ACTIVE",
			message: "The claim is released, not active",
			details: { id: claimId, status: "released" },
		});
		// A state the API never produces: a claimed order whose claim does not exist.
		const orphan = await seedOrder(db.pool, "bob", "0.1");
		const ghost = crypto.randomUUID();
		await db.pool.query(`UPDATE orders SET status = 'claimed', claim_id = $2, claimer_id = 'sue' WHERE id = $1`, [orphan, ghost]);
		expect(body(errorOf(await run({ op: "complete", orderId: orphan, userId: "bob" })))).toEqual({
			status: 409,
			code: "CLAIM_NOT_ACTIVE",
			message: "The claim is missing, not active",
			details: { id: ghost, status: undefined },
		});
	});

	it("a release because the hold ran out, of a hold that has not run out, is refused", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const claimId = ok(await run(claimCmd(order, supply, "sue", "ne-1"))).claim!.id;
		// order_commands takes a release `reason`; 'expired' is the sweeper's, with no user.
		const expiry = { op: "release", orderId: order, claimId, reason: "expired" } as unknown as OrderCommand;
		expect(body(errorOf(await run(expiry)))).toEqual({
			status: 409,
			code: "CLAIM_NOT_EXPIRED",
			message: "The claim's hold has not run out",
			details: { id: claimId },
		});
		expect((await getClaim(db.pool, claimId))!.status).toBe("active");
	});

	it("a region that does not write the order's home region: a retryable 503 naming that region", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const order = await seedOrder(db.pool, "bob", "0.1", { home: "europe-west1" });
		const err = errorOf(await run(claimCmd(order, supply, "sue", "no-1")));
		expect(body(err)).toEqual({
			status: 503,
			code: "NOT_OWNER",
			message: "This region does not own the entity now; retry",
			details: { homeRegion: "europe-west1" },
		});
		expect(err.retryable).toBe(true);
	});

	it("an outcome the code does not know is a bug: a plain error (a 500), the code in its message", async () => {
		const order = await seedOrder(db.pool, "bob", "0.1");
		const err = errorOf(await run({ op: "refund", orderId: order, userId: "bob" } as unknown as OrderCommand));
		expect(err).not.toHaveProperty("code");
		expect(err.retryable).toBeUndefined();
		expect(err.message).toBe("Order command failed: UNKNOWN_COMMAND");
	});

	it("a malformed id fails the whole call with the database's own error, not as a retryable 'busy'", async () => {
		const supply = await seedSupply(db.pool, "sue");
		const err = await runCommands(db.pool, cc, [claimCmd("not-a-uuid", supply, "sue", "bad-1")]).then(
			() => undefined,
			e => e,
		);
		expect(err).toBeInstanceOf(Error);
		expect(err).toMatchObject({ code: "22P02" });
		expect(err.message).toMatch(/invalid input syntax for type uuid/);
		expect(err.retryable).toBeUndefined();
	});
});

describe("creates", () => {
	it("a supply and an order: the row, the answer and their first event agree", async () => {
		const supply = await createSupply(db.pool, { id: crypto.randomUUID(), userId: "cora", asset: "ETH", amount: "2.5", region: "us-central1" });
		expect(supply).toMatchObject({ userId: "cora", asset: "ETH", amount: "2.5", reserved: "0", available: "2.5", status: "active", version: 1 });
		expectSameRow(await getSupply(db.pool, supply.id), supply);
		const items = [{ sku: "a", name: "A", unitPrice: "0.5", quantity: 2 }];
		const before = Date.now();
		const order = await createOrder(db.pool, {
			id: crypto.randomUUID(),
			userId: "cora",
			asset: "ETH",
			items,
			amount: "1",
			region: "us-central1",
			ttlSec: 600,
		});
		expect(order).toMatchObject({ userId: "cora", items, amount: "1", status: "open", claimId: null, homeRegion: "us-central1", version: 1 });
		expect(Date.parse(order.expiresAt) - before).toBeGreaterThan(595_000);
		expectSameRow(await getOrder(db.pool, order.id), order);
		const { rows } = await db.pool.query(
			`SELECT aggregate_id, aggregate_version, event_type, epoch, payload FROM outbox WHERE aggregate_id IN ($1, $2) ORDER BY id`,
			[supply.id, order.id],
		);
		expect(rows.map(r => [r.aggregate_id, r.aggregate_version, r.event_type, Number(r.epoch)])).toEqual([
			[supply.id, 1, "SupplyCreated", 1],
			[order.id, 1, "OrderCreated", 1],
		]);
		expect(rows[0].payload).toEqual(supply);
		expect(rows[1].payload).toEqual(order);
	});

	it("a region that does not own its home region creates nothing: a retryable 503 naming it", async () => {
		// asia-east1 has no owner here (as while a failover is undecided).
		const id = crypto.randomUUID();
		const supply = createSupply(db.pool, { id, userId: "cora", asset: "ETH", amount: "1", region: "asia-east1" });
		await expect(supply).rejects.toMatchObject({
			code: 503,
			type: "NOT_OWNER",
			retryable: true,
			message: "This region does not own its entities now; retry",
			data: { homeRegion: "asia-east1" },
		});
		const order = createOrder(db.pool, { id, userId: "cora", asset: "ETH", items: [], amount: "1", region: "asia-east1", ttlSec: 60 });
		await expect(order).rejects.toMatchObject({ code: 503, type: "NOT_OWNER", data: { homeRegion: "asia-east1" } });
		expect(await getSupply(db.pool, id)).toBeNull();
		expect(await getOrder(db.pool, id)).toBeNull();
		expect((await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE aggregate_id = $1`, [id])).rows[0].n).toBe(0);
	});
});

describe("appending events", () => {
	it("several events in one statement, in the caller's transaction, each with its own fields", async () => {
		const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
		const c = await db.pool.connect();
		try {
			await c.query("BEGIN");
			await appendEvents(c, []);
			await appendEvents(c, [
				{ aggregateType: "supply", aggregateId: a, version: 4, type: "SupplyPaused", region: "us-central1", payload: { id: a, status: "paused" } },
				{
					aggregateType: "order",
					aggregateId: b,
					version: 7,
					type: "OrderCancelled",
					region: "us-central1",
					homeRegion: "europe-west1",
					epoch: 3,
					payload: { id: b, amount: "0.000000000000000001" },
				},
			]);
			await c.query("COMMIT");
			// Rolled back with its transaction: no event without its change.
			await c.query("BEGIN");
			await appendEvents(c, [{ aggregateType: "claim", aggregateId: a, version: 5, type: "ClaimReleased", region: "us-central1", payload: {} }]);
			await c.query("ROLLBACK");
		} finally {
			c.release();
		}
		const { rows } = await db.pool.query(
			`SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload, published_at
			   FROM outbox WHERE aggregate_id IN ($1, $2) ORDER BY id`,
			[a, b],
		);
		expect(rows.map(({ event_id, epoch, ...r }) => ({ ...r, epoch: Number(epoch) }))).toEqual([
			// No home region given: the writing region's; no epoch given: 0.
			{
				aggregate_type: "supply",
				aggregate_id: a,
				aggregate_version: 4,
				event_type: "SupplyPaused",
				region: "us-central1",
				home_region: "us-central1",
				epoch: 0,
				payload: { id: a, status: "paused" },
				published_at: null,
			},
			{
				aggregate_type: "order",
				aggregate_id: b,
				aggregate_version: 7,
				event_type: "OrderCancelled",
				region: "us-central1",
				home_region: "europe-west1",
				epoch: 3,
				payload: { id: b, amount: "0.000000000000000001" },
				published_at: null,
			},
		]);
		expect(new Set(rows.map(r => r.event_id)).size).toBe(2);
	});
});

describe("reading rows", () => {
	it("a supply, an order and a claim read back as the commands answered them; missing ones are null", async () => {
		const supply = await seedSupply(db.pool, "rita", "3");
		const order = await seedOrder(db.pool, "bob", "1.25");
		const claimed = ok(await run(claimCmd(order, supply, "rita", "rd-1")));
		expectSameRow(await getClaim(db.pool, claimed.claim!.id), claimed.claim);
		expect(claimed.claim).toMatchObject({ status: "active", settledAt: null, releasedAt: null, epoch: 1 });
		const done = ok(await run({ op: "complete", orderId: order, userId: "bob" }));
		expect(done.claim!.settledAt).not.toBeNull();
		expectSameRow(await getClaim(db.pool, claimed.claim!.id), done.claim);
		expectSameRow(await getOrder(db.pool, order), done.order);
		expectSameRow(await getSupply(db.pool, supply), done.supply);
		expect(await getSupply(db.pool, crypto.randomUUID())).toBeNull();
		expect(await getOrder(db.pool, crypto.randomUUID())).toBeNull();
		expect(await getClaim(db.pool, crypto.randomUUID())).toBeNull();
	});
});

describe("a claim across regions: a hold in the supply's region, then the claim in the order's", () => {
	// One database plays both regions here: each function is told which region runs it, and checks that region's
	// ownership (us-central1 writes the orders, europe-west1 the supplies).
	const EU = "europe-west1";
	const holdOf = (claimId: string, supplyId: string, orderId: string, amount = "0.4"): HoldRequest => ({
		claimId,
		supplyId,
		orderId,
		claimerId: "sue",
		asset: "ETH",
		amount,
		orderRegion: "us-central1",
	});
	const heldClaim = (orderId: string, supplyId: string, key: string) =>
		({ ...claimCmd(orderId, supplyId, "sue", key), claimId: claimIdFor("sue", key), held: true }) as OrderCommand;
	const holdStatus = async (claimId: string) =>
		(await db.pool.query(`SELECT status FROM holds WHERE claim_id = $1`, [claimId])).rows[0]?.status as string | undefined;

	it("a claim's id is a UUID that one claimer's key always gives, and nothing else gives", () => {
		const id = claimIdFor("sue", "key-1");
		// Version 8 (custom), RFC 4122 variant.
		expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
		expect(claimIdFor("sue", "key-1")).toBe(id);
		const others = [claimIdFor("sue", "key-2"), claimIdFor("sam", "key-1"), claimIdFor("su", "ekey-1"), claimIdFor("suek", "ey-1")];
		expect(new Set([id, ...others]).size).toBe(5);
		for (const o of others) expect(o).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
	});

	it("held, claimed, confirmed and settled: the funds move once, and each step says what it did", async () => {
		const supply = await seedSupply(db.pool, "sue", "1", { home: EU });
		const order = await seedOrder(db.pool, "bob", "0.4");
		expect(await ownerOf(db.pool, EU)).toBe(EU);
		expect(await ownerOf(db.pool, "mars-1")).toBeUndefined();
		// The order's region cannot touch that supply: it is told to hold it in its own region first.
		const need = errorOf(await run(claimCmd(order, supply, "sue", "x-1")));
		expect(need).toMatchObject({
			code: 500,
			type: "HOLD_NEEDED",
			message: "The supply is held in its own region first",
			data: { homeRegion: EU, amount: "0.4", asset: "ETH" },
		});
		const claimId = claimIdFor("sue", "x-1");
		const req = holdOf(claimId, supply, order);
		// Only the supply's region holds it.
		await expect(holdSupply(db.pool, "us-central1", req)).rejects.toMatchObject({ code: 503, type: "NOT_OWNER", data: { homeRegion: EU } });
		await expect(holdSupply(db.pool, EU, { ...req, supplyId: crypto.randomUUID() })).rejects.toMatchObject({ code: 404, type: "SUPPLY_NOT_FOUND" });
		const held = await holdSupply(db.pool, EU, req);
		expect(held).toEqual({ supply: expect.objectContaining({ id: supply, reserved: "0.4", available: "0.6", version: 2 }), replayed: false });
		// A retry of the same attempt finds its hold: the funds are held once.
		expect(await holdSupply(db.pool, EU, req)).toEqual({ supply: held.supply, replayed: true });
		await expect(holdSupply(db.pool, EU, { ...req, orderId: await seedOrder(db.pool, "bob", "0.4") })).rejects.toMatchObject({
			code: 422,
			type: "IDEMPOTENCY_KEY_REUSED",
			data: { claimId },
		});
		expect(await holdStatus(claimId)).toBe("held");

		const claimed = ok(await run(heldClaim(order, supply, "x-1")));
		expect(claimed.claim).toMatchObject({ id: claimId, orderId: order, supplyId: supply, amount: "0.4", status: "active" });
		expect(claimed.order).toMatchObject({ status: "claimed", claimId });
		expect(claimed.supply).toBeUndefined();
		expect(await voidClaim(db.pool, claimId)).toBe("claimed");
		// The claim's event reached the supply's region: the hold is confirmed, no longer waiting for its fate.
		expect((await unconfirmedHolds(db.pool, 0, 100)).map(h => h.claimId)).toContain(claimId);
		await confirmHold(db.pool, claimId);
		expect(await holdStatus(claimId)).toBe("confirmed");
		expect((await unconfirmedHolds(db.pool, 0, 100)).map(h => h.claimId)).not.toContain(claimId);

		// Settled in the supply's region (by its own region only); a second end changes nothing.
		expect(await endHold(db.pool, "us-central1", claimId, "settled")).toBeNull();
		expect(await endHold(db.pool, EU, claimId, "settled")).toMatchObject({ id: supply, amount: "1", reserved: "0", spent: "0.4", available: "0.6", version: 3 });
		expect(await endHold(db.pool, EU, claimId, "released")).toBeNull();
		expect(await holdStatus(claimId)).toBe("settled");
		expect(await getSupply(db.pool, supply)).toMatchObject({ reserved: "0", spent: "0.4" });
	});

	it("a hold whose claim never came: listed once it is old enough, voided, released; a late claim or hold is refused", async () => {
		const supply = await seedSupply(db.pool, "sue", "1", { home: EU });
		const [o1, o2] = [await seedOrder(db.pool, "bob", "0.3"), await seedOrder(db.pool, "bob", "0.2")];
		const [c1, c2] = [claimIdFor("sue", "lost-1"), claimIdFor("sue", "lost-2")];
		await holdSupply(db.pool, EU, holdOf(c1, supply, o1, "0.3"));
		await holdSupply(db.pool, EU, holdOf(c2, supply, o2, "0.2"));
		// Unconfirmed holds, the oldest first, older than asked, as many as asked, each with the region to ask.
		const waiting = await unconfirmedHolds(db.pool, 0, 100);
		expect(waiting.filter(h => h.claimId === c1 || h.claimId === c2)).toEqual([
			{ claimId: c1, orderRegion: "us-central1" },
			{ claimId: c2, orderRegion: "us-central1" },
		]);
		expect(await unconfirmedHolds(db.pool, 0, 1)).toEqual(waiting.slice(0, 1));
		expect((await unconfirmedHolds(db.pool, 3600, 100)).map(h => h.claimId)).not.toContain(c1);

		// The order's region makes the id void, for good.
		expect(await voidClaim(db.pool, c1)).toBe("void");
		expect(await voidClaim(db.pool, c1)).toBe("void");
		const abandoned = {
			code: 409,
			type: "CLAIM_ABANDONED",
			message: "An earlier attempt with this Idempotency-Key was abandoned; retry with a new key",
			data: { claimId: c1 },
		};
		// The first attempt's claim, arriving late, is refused, and writes nothing.
		expect(errorOf(await run(heldClaim(o1, supply, "lost-1")))).toMatchObject(abandoned);
		expect(await getOrder(db.pool, o1)).toMatchObject({ status: "open", claimId: null });
		// The supply's region releases the hold; a retry of that attempt cannot hold the funds again.
		expect(await endHold(db.pool, EU, c1, "released")).toMatchObject({ reserved: "0.2", spent: "0", available: "0.8" });
		expect(await holdStatus(c1)).toBe("released");
		await expect(holdSupply(db.pool, EU, holdOf(c1, supply, o1, "0.3"))).rejects.toMatchObject(abandoned);
		expect(await getSupply(db.pool, supply)).toMatchObject({ reserved: "0.2" });
		// Released holds are no longer waiting for their fate.
		expect((await unconfirmedHolds(db.pool, 0, 100)).map(h => h.claimId)).toEqual([c2]);
	});
});

describe("lists", () => {
	// A database of their own: what each list holds is then exactly what these tests wrote.
	let ldb: TestDatabase;
	let orders: Order[];
	let claims: Claim[];
	beforeAll(async () => {
		ldb = await createTestDatabase();
		await migrate(ldb.pool);
		await ensureOwnership(ldb.pool, ["us-central1"]);
		const go = async (cmd: OrderCommand) => ok(await run(cmd, ldb.pool));
		const cid = { eth: await seedSupply(ldb.pool, "cid"), btc: await seedSupply(ldb.pool, "cid", "10", { asset: "BTC" }) };
		const dan = await seedSupply(ldb.pool, "dan", "10", { asset: "BTC" });
		const o: string[] = [];
		for (const [buyer, asset] of [
			["bea", "ETH"],
			["bea", "BTC"],
			["ben", "ETH"],
			["ben", "BTC"],
			["ben", "ETH"],
			["bea", "ETH"],
			["ben", "ETH"],
		])
			o.push(await seedOrder(ldb.pool, buyer, "0.1", { asset }));
		await go(claimCmd(o[1], cid.btc, "cid", "l-1")); // claimed by cid
		await go(claimCmd(o[3], dan, "dan", "l-2")); // claimed by dan
		await go({ op: "cancel", orderId: o[4], userId: "ben" }); // cancelled
		await go(claimCmd(o[5], cid.eth, "cid", "l-3"));
		await go({ op: "complete", orderId: o[5], userId: "bea" }); // completed, cid its claimer
		const c7 = await go(claimCmd(o[6], cid.eth, "cid", "l-4"));
		await go({ op: "release", orderId: o[6], claimId: c7.claim!.id, userId: "cid" }); // open again
		const { rows } = await ldb.pool.query(`SELECT id FROM claims ORDER BY created_at`);
		// Rows written a fraction of a millisecond apart: a second apart instead, so the order of a list is plain.
		await spread(ldb.pool, "orders", o);
		await spread(ldb.pool, "claims", rows.map(r => r.id));
		orders = (await Promise.all(o.map(id => getOrder(ldb.pool, id)))) as Order[];
		claims = (await Promise.all(rows.map(r => getClaim(ldb.pool, r.id)))) as Claim[];
	});
	afterAll(async () => {
		await ldb?.drop();
	});

	/** Sets the rows' creation times one second apart, the last one newest. */
	const spread = (pool: pg.Pool, table: string, rowIds: string[]) =>
		pool.query(`UPDATE ${table} t SET created_at = now() - make_interval(secs => $2 - i) FROM unnest($1::uuid[]) WITH ORDINALITY AS x(id, i) WHERE t.id = x.id`, [
			rowIds,
			rowIds.length,
		]);
	/** Newest first (ties by id), as the API promises. */
	const newestFirst = <T extends { id: string; createdAt: string }>(xs: T[]) =>
		[...xs].sort((x, y) => Date.parse(y.createdAt) - Date.parse(x.createdAt) || (x.id < y.id ? -1 : 1));
	const ids = (xs: { id: string }[]) => xs.map(x => x.id);

	it("orders: open ones for anyone, a user's own as buyer or claimer, everything for an admin; filters narrow it", async () => {
		// The rule, said once: an order is visible when open, or to its buyer or its claimer.
		const visible = (viewer: string) => orders.filter(o => o.status === "open" || o.userId === viewer || o.claimerId === viewer);
		expect(orders.map(o => o.status)).toEqual(["open", "claimed", "open", "claimed", "cancelled", "completed", "open"]);
		const cases: [Parameters<typeof listOrders>[1], Order[]][] = [
			...["sam", "cid", "bea", "ben", "dan"].map(u => [{ userId: u, admin: false }, visible(u)] as [any, Order[]]),
			[{ userId: "sam", admin: false, status: "claimed" }, []],
			[{ userId: "cid", admin: false, status: "claimed" }, visible("cid").filter(o => o.status === "claimed")],
			[{ userId: "sam", admin: false, asset: "BTC" }, []],
			[{ userId: "bea", admin: false, asset: "BTC" }, visible("bea").filter(o => o.asset === "BTC")],
			[{ userId: "ben", admin: false, asset: "ETH", status: "cancelled" }, visible("ben").filter(o => o.asset === "ETH" && o.status === "cancelled")],
			// Mine: the user's own as buyer only.
			[{ userId: "bea", admin: false, mine: true }, orders.filter(o => o.userId === "bea")],
			[{ userId: "cid", admin: false, mine: true }, []],
			[{ userId: "ben", admin: false, mine: true, status: "open" }, orders.filter(o => o.userId === "ben" && o.status === "open")],
			[{ userId: "root", admin: true }, orders],
			[{ userId: "root", admin: true, status: "claimed" }, orders.filter(o => o.status === "claimed")],
		];
		for (const [args, expected] of cases) {
			const page = await listOrders(ldb.pool, args);
			expect(ids(page.rows), JSON.stringify(args)).toEqual(ids(newestFirst(expected)));
			expect(page.total, JSON.stringify(args)).toBe(expected.length);
		}
		// Every listed row is the order as read on its own.
		for (const row of (await listOrders(ldb.pool, { userId: "root", admin: true })).rows)
			expectSameRow(row, orders.find(o => o.id === row.id));
	});

	it("claims: the user's own, by status", async () => {
		for (const [args, expected] of [
			[{ userId: "cid" }, claims.filter(c => c.claimerId === "cid")],
			[{ userId: "cid", status: "active" }, claims.filter(c => c.claimerId === "cid" && c.status === "active")],
			[{ userId: "cid", status: "released" }, claims.filter(c => c.claimerId === "cid" && c.status === "released")],
			[{ userId: "dan" }, claims.filter(c => c.claimerId === "dan")],
			[{ userId: "sam" }, []],
		] as [Parameters<typeof listClaims>[1], Claim[]][]) {
			const page = await listClaims(ldb.pool, args);
			expect(ids(page.rows), JSON.stringify(args)).toEqual(ids(newestFirst(expected)));
			expect(page.total).toBe(expected.length);
			for (const row of page.rows) expectSameRow(row, claims.find(c => c.id === row.id));
		}
		expect(claims.filter(c => c.claimerId === "cid").map(c => c.status).sort()).toEqual(["active", "released", "settled"]);
	});

	it("supplies: the user's own, by asset and status; pages of a given size", async () => {
		const lou: string[] = [];
		for (const [asset, status] of [
			["USDC", "active"],
			["USDC", "paused"],
			["DAI", "active"],
			["USDC", "active"],
			["DAI", "closed"],
		])
			lou.push(await seedSupply(ldb.pool, "lou", "1", { asset, status }));
		await spread(ldb.pool, "supplies", lou);
		await seedSupply(ldb.pool, "max", "1", { asset: "USDC" });
		const all = (await listSupplies(ldb.pool, { userId: "lou", pageSize: 100 })).rows;
		expect(all).toHaveLength(5);
		expect(all.every(s => s.userId === "lou")).toBe(true);
		expect(ids(all)).toEqual(ids(newestFirst(all)));
		for (const s of all) expectSameRow(s, (await getSupply(ldb.pool, s.id)) as Supply);
		const usdc = await listSupplies(ldb.pool, { userId: "lou", asset: "USDC" });
		expect(ids(usdc.rows)).toEqual(ids(all.filter(s => s.asset === "USDC")));
		const activeUsdc = await listSupplies(ldb.pool, { userId: "lou", asset: "USDC", status: "active" });
		expect(ids(activeUsdc.rows)).toEqual(ids(all.filter(s => s.asset === "USDC" && s.status === "active")));
		expect(activeUsdc.total).toBe(2);
		// Pages of 2: 5 rows make 3 pages, the last with one row.
		const pages = await Promise.all([1, 2, 3].map(page => listSupplies(ldb.pool, { userId: "lou", page, pageSize: 2 })));
		expect(pages.map(p => ids(p.rows))).toEqual([ids(all.slice(0, 2)), ids(all.slice(2, 4)), ids(all.slice(4))]);
		expect(pages.map(p => [p.total, p.page, p.pageSize, p.totalPages])).toEqual([
			[5, 1, 2, 3],
			[5, 2, 2, 3],
			[5, 3, 2, 3],
		]);
		// Page and size out of range are brought into it: the first page, at most 100 rows.
		expect(await listSupplies(ldb.pool, { userId: "lou", page: 0, pageSize: 1000 })).toMatchObject({ page: 1, pageSize: 100, total: 5 });
	});

	it("a page past the first 10,000 rows is refused; the count stops after 10,000 rows", async () => {
		const deep = listSupplies(ldb.pool, { userId: "lou", page: 101, pageSize: 100 });
		await expect(deep).rejects.toMatchObject({
			code: 422,
			type: "PAGE_TOO_DEEP",
			message: "Lists can be paged through their first 10000 rows; narrow the list with its filters",
			data: { maxPage: 100 },
		});
		expect((await listSupplies(ldb.pool, { userId: "lou", page: 100, pageSize: 100 })).rows).toEqual([]);
		// Exactly 10,000 rows are all counted; one more and the total says it is a floor.
		await ldb.pool.query(
			`INSERT INTO supplies (id, user_id, asset, amount, home_region)
			 SELECT gen_random_uuid(), 'hoarder', 'DAI', 1, 'us-central1' FROM generate_series(1, 10000)`,
		);
		const exact = await listSupplies(ldb.pool, { userId: "hoarder", pageSize: 100 });
		expect(exact).toMatchObject({ total: 10_000, totalPages: 100 });
		expect(exact).not.toHaveProperty("totalCapped");
		await seedSupply(ldb.pool, "hoarder", "1", { asset: "DAI" });
		expect(await listSupplies(ldb.pool, { userId: "hoarder", pageSize: 100 })).toMatchObject({ total: 10_000, totalPages: 100, totalCapped: true });
	});
});
