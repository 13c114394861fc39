// Group commit of creations (src/store/creates.ts) on a migrated database: the creates that meet on a node
// leave in one statement with one result each; one the database refuses fails alone; a region that does not
// own its entities refuses them all, in one statement.
import { randomUUID } from "node:crypto";
import type { Pool } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureOwnership } from "../../src/store/commands";
import { skipped } from "../../middlewares/deadline";
import { CreateBatcher, createOrders, createSupplies, type NewOrder, type NewSupply } from "../../src/store/creates";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";

const A = "us-central1";
const B = "europe-west1";

let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
	// This database knows of region A only: nothing here is written for B.
	await ensureOwnership(db.pool, [A]);
});
afterAll(async () => db?.drop());

/** The pool, with a count of the statements sent through it. */
function counted(pool: Pool) {
	const seen = { statements: 0 };
	const query = ((...args: Parameters<Pool["query"]>) => {
		seen.statements++;
		return (pool.query as (...a: unknown[]) => unknown)(...args);
	}) as Pool["query"];
	return { pool: new Proxy(pool, { get: (t, k) => (k === "query" ? query : Reflect.get(t, k)) }) as Pool, seen };
}

/** One statement in flight at a time, so what is submitted meanwhile meets in the next. */
const oneAtATime = <I extends { id: string }, O>(create: (items: I[]) => Promise<O[]>, action: string) =>
	new CreateBatcher<I, O>(create, { concurrency: 1, maxItems: 64, windowMs: 0 }, skipped(action));

const supply = (amount: string): NewSupply => ({ id: randomUUID(), userId: `u-${amount}`, asset: "ETH", amount });

describe("creates committed together", () => {
	it("sends a lone create at once and the ones that came meanwhile in one statement, each with its own row", async () => {
		const { pool, seen } = counted(db.pool);
		const batcher = oneAtATime((items: NewSupply[]) => createSupplies(pool, A, items), "supply.create");
		const input = Array.from({ length: 10 }, (_, i) => supply(`${i + 1}.5`));
		const made = await Promise.all(input.map(s => batcher.submit(s)));
		expect(seen.statements).toBe(2);
		expect(made.map(s => [s.id, s.userId, s.amount, s.homeRegion])).toEqual(input.map(s => [s.id, s.userId, expect.stringMatching(new RegExp(`^${s.amount}0*$`)), A]));
		const rows = await db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND event_type = 'SupplyCreated'", [input.map(s => s.id)]);
		expect(rows.rows[0].n).toBe(10);
	});

	it("fails only the create the database refuses, and writes the others", async () => {
		const { pool, seen } = counted(db.pool);
		const batcher = oneAtATime((items: NewSupply[]) => createSupplies(pool, A, items), "supply.create");
		// The first goes alone; the next four meet in one statement, which the zero amount fails (CHECK amount > 0).
		const input = ["1", "2", "0", "3", "4"].map(supply);
		const settled = await Promise.allSettled(input.map(s => batcher.submit(s)));
		expect(settled.map(s => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
		expect((settled[2] as PromiseRejectedResult).reason.code).toBe("23514");
		// The failed statement of four, then each of the four alone.
		expect(seen.statements).toBe(1 + 1 + 4);
		const rows = await db.pool.query("SELECT id FROM supplies WHERE id = ANY($1::uuid[])", [input.map(s => s.id)]);
		expect(new Set(rows.rows.map(r => r.id))).toEqual(new Set(input.filter((_, i) => i !== 2).map(s => s.id)));
	});

	it("refuses every create of a region it does not own, in one statement, and writes nothing", async () => {
		const { pool, seen } = counted(db.pool);
		const batcher = oneAtATime((items: NewOrder[]) => createOrders(pool, B, items), "order.create");
		const input: NewOrder[] = Array.from({ length: 3 }, () => ({
			id: randomUUID(),
			userId: "buyer",
			asset: "ETH",
			items: [{ sku: "s", name: "n", unitPrice: "1", quantity: 1 }],
			amount: "1",
			ttlSec: 600,
		}));
		// Submitted while a first statement is in flight: the other two meet in the second.
		const settled = await Promise.allSettled(input.map(o => batcher.submit(o)));
		expect(settled.map(s => (s.status === "rejected" ? s.reason.type : "created"))).toEqual(["NOT_OWNER", "NOT_OWNER", "NOT_OWNER"]);
		expect(seen.statements).toBe(2);
		const rows = await db.pool.query("SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])", [input.map(o => o.id)]);
		expect(rows.rows[0].n).toBe(0);
	});

	it("gives each order of one statement its own items, amount and expiry", async () => {
		const input: NewOrder[] = [60, 3600].map((ttlSec, i) => ({
			id: randomUUID(),
			userId: `buyer-${i}`,
			asset: "ETH",
			items: [{ sku: `s${i}`, name: `n${i}`, unitPrice: `${i + 1}`, quantity: i + 1 }],
			amount: `${(i + 1) * (i + 1)}`,
			ttlSec,
		}));
		const made = await createOrders(db.pool, A, input);
		expect(made.map(o => [o.id, o.userId, o.items[0].sku, Number(o.amount), o.status])).toEqual([
			[input[0].id, "buyer-0", "s0", 1, "open"],
			[input[1].id, "buyer-1", "s1", 4, "open"],
		]);
		const ttl = made.map(o => (Date.parse(o.expiresAt) - Date.parse(o.createdAt)) / 1000);
		expect(ttl[0]).toBeCloseTo(60, 0);
		expect(ttl[1]).toBeCloseTo(3600, 0);
	});
});
