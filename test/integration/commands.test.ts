// The order actor's SQL commands against a real PostgreSQL, with the interleavings a cluster produces:
// two nodes (two connections) running commands for one order at once, a first attempt held up by a lock
// while its retry arrives elsewhere, a failing row inside a batch, states the API never produces.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../src/db/migrate";
import { ensureOwnership, runCommands, type CommandContext, type OrderCommand, type Outcome } from "../../src/store/commands";
import { createOrder, createSupply } from "../../src/store/creates";
import { createMigratedDatabase, createTestDatabase, sqlFunctionsCalled, type TestDatabase } from "../helpers/db";
import { lockWaits, seedOrder, seedSupply, waitForLockWaits } from "../helpers/seed";

let db: TestDatabase;
let nodeA: pg.Pool;
let nodeB: pg.Pool;
const cc: CommandContext = { region: "us-central1", epochs: {}, holdSec: 300 };

beforeAll(async () => {
	db = await createMigratedDatabase();
	const owners = await ensureOwnership(db.pool, ["us-central1", "europe-west1"]);
	cc.epochs["us-central1"] = owners.get("us-central1")!.epoch;
	// Two claiming nodes: each has its own connections.
	nodeA = new pg.Pool({ connectionString: db.url, max: 4, application_name: "node-a" });
	nodeB = new pg.Pool({ connectionString: db.url, max: 4, application_name: "node-b" });
	// The database is dropped WITH (FORCE) at the end: a connection told so is not a test failure.
	for (const p of [nodeA, nodeB]) p.on("error", () => undefined);
});

afterAll(async () => {
	await nodeA?.end();
	await nodeB?.end();
	await db?.drop();
});

const one = async (pool: pg.Pool, cmd: OrderCommand, ctx = cc): Promise<Outcome> => (await runCommands(pool, ctx, [cmd]))[0];
const claimCmd = (orderId: string, supplyId: string, userId: string, key: string): OrderCommand => ({ op: "claim", orderId, supplyId, userId, key });
const errorOf = (o: Outcome) => (o.ok ? undefined : (o.error as any));

/** `n` orders, supplies and (released) claims of other users, as a region holds after a while. */
async function crowd(pool: pg.Pool, n: number) {
	await pool.query(`INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
		SELECT gen_random_uuid(), 'crowd', 'ETH', '[]', 1, 'us-central1', now() + interval '1 hour' FROM generate_series(1, $1)`, [n]);
	await pool.query(`INSERT INTO supplies (id, user_id, asset, amount, home_region)
		SELECT gen_random_uuid(), 'crowd-' || i, 'ETH', 10, 'us-central1' FROM generate_series(1, $1) i`, [n]);
	await pool.query(`INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at, status)
		SELECT gen_random_uuid(), o.id, s.user_id, s.id, 1, gen_random_uuid()::text, 'us-central1', 1, now(), 'released'
		  FROM (SELECT id, row_number() OVER () AS n FROM orders WHERE user_id = 'crowd') o
		  JOIN (SELECT id, user_id, row_number() OVER () AS n FROM supplies WHERE user_id LIKE 'crowd-%') s ON s.n = o.n`);
}

/** The sequential scans of orders, supplies and claims `run` makes in this client's open transaction. */
async function seqScansOf(client: pg.PoolClient, run: () => Promise<void>) {
	const scans = `SELECT relname, seq_scan::int AS n FROM pg_stat_xact_user_tables WHERE relname IN ('orders', 'supplies', 'claims')`;
	// This session's counts not yet flushed: read before and after.
	const before = new Map((await client.query(scans)).rows.map(r => [r.relname, r.n]));
	await run();
	const after = (await client.query(scans)).rows.map(r => ({ table: r.relname as string, seqScans: r.n - (before.get(r.relname) ?? 0) }));
	return after.sort((a, b) => a.table.localeCompare(b.table));
}

/** A supply of gina's with two of bob's orders claimed on it (one to release, one to complete) and two open ones. */
async function claimsToEnd(key: string) {
	const supply = await seedSupply(db.pool, "gina", "10");
	const [toRelease, toComplete, ...fresh] = await Promise.all([1, 2, 3, 4].map(() => seedOrder(db.pool, "bob", "1")));
	const held = await runCommands(nodeA, cc, [claimCmd(toRelease, supply, "gina", `${key}-1`), claimCmd(toComplete, supply, "gina", `${key}-2`)]);
	const releaseId = held[0].ok ? held[0].value.claim!.id : "";
	return { supply, toRelease, toComplete, fresh, releaseId };
}

const NO_SCANS = [
	{ table: "claims", seqScans: 0 },
	{ table: "orders", seqScans: 0 },
	{ table: "supplies", seqScans: 0 },
];

describe("a retry of a claim whose first attempt is still running", () => {
	it("waits for it and gets its result, on another node, never a 409", async () => {
		const supply = await seedSupply(db.pool, "alice");
		const order = await seedOrder(db.pool, "bob", "0.5");
		// The first attempt is slow: it holds the order's lock and waits on the supply, which the test holds.
		const holder = await db.pool.connect();
		await holder.query("BEGIN");
		await holder.query("SELECT 1 FROM supplies WHERE id = $1 FOR UPDATE", [supply]);
		const first = one(nodeA, claimCmd(order, supply, "alice", "key-1"));
		await waitForLockWaits(db.pool, 1);
		// Its client timed out and retried; the retry runs on the other node, before the first commits.
		const retry = one(nodeB, claimCmd(order, supply, "alice", "key-1"));
		await waitForLockWaits(db.pool, 2);
		await holder.query("COMMIT");
		holder.release();
		const [a, b] = await Promise.all([first, retry]);
		expect(a.ok && !a.value.replayed).toBe(true);
		expect(b.ok, JSON.stringify(errorOf(b))).toBe(true);
		if (!a.ok || !b.ok) return;
		expect(b.value.replayed).toBe(true);
		expect(b.value.claim!.id).toBe(a.value.claim!.id);
		const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM claims WHERE order_id = $1", [order]);
		expect(rows[0].n).toBe(1);
	});

	it("many concurrent replays of one key on two nodes all name the one claim", async () => {
		const supply = await seedSupply(db.pool, "carol");
		const order = await seedOrder(db.pool, "bob", "0.25");
		const outcomes = await Promise.all(
			Array.from({ length: 12 }, (_, i) => one(i % 2 ? nodeA : nodeB, claimCmd(order, supply, "carol", "same-key"))),
		);
		expect(outcomes.map(o => (o.ok ? "ok" : errorOf(o).type))).toEqual(Array(12).fill("ok"));
		const ids = new Set(outcomes.map(o => (o.ok ? o.value.claim!.id : "")));
		expect(ids.size).toBe(1);
		expect(outcomes.filter(o => o.ok && !o.value.replayed)).toHaveLength(1);
	});

	it("the same key for another order is refused, even when both run at once", async () => {
		const supply = await seedSupply(db.pool, "dave");
		const [o1, o2] = [await seedOrder(db.pool, "bob", "0.1"), await seedOrder(db.pool, "bob", "0.1")];
		const [x, y] = await Promise.all([one(nodeA, claimCmd(o1, supply, "dave", "k")), one(nodeB, claimCmd(o2, supply, "dave", "k"))]);
		const results = [x, y].map(o => (o.ok ? "ok" : errorOf(o).type)).sort();
		expect(results).toEqual(["IDEMPOTENCY_KEY_REUSED", "ok"]);
		const { rows } = await db.pool.query("SELECT reserved::text FROM supplies WHERE id = $1", [supply]);
		expect(rows[0].reserved).toBe("0.100000000000000000");
	});
});

describe("a batch of commands (group commit)", () => {
	it("gives each command its own outcome; one failing row never fails the others", async () => {
		const supply = await seedSupply(db.pool, "erin", "5");
		const orders = await Promise.all([1, 2, 3].map(() => seedOrder(db.pool, "bob", "1")));
		// Sabotage: a trigger makes any change of the second order fail (a bug, a corrupt row).
		await db.pool.query(`CREATE FUNCTION fail_order() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'sabotaged row'; END $$`);
		await db.pool.query(`CREATE TRIGGER sabotage BEFORE UPDATE ON orders FOR EACH ROW WHEN (OLD.id = '${orders[1]}') EXECUTE FUNCTION fail_order()`);
		try {
			const outs = await runCommands(nodeA, cc, orders.map((o, i) => claimCmd(o, supply, "erin", `batch-${i}`)));
			expect(outs.map(o => o.ok)).toEqual([true, false, true]);
			// A bug, not a busy database: a plain error (a 500) with the SQL state and message, never "retry".
			const err = errorOf(outs[1]);
			expect(err.message).toBe("Order command failed: COMMAND_FAILED P0001 sabotaged row");
			expect(err.details).toEqual({ sqlstate: "P0001", message: "sabotaged row" });
			expect(err.code).toBeUndefined();
			expect(err.retryable).toBeUndefined();
		} finally {
			await db.pool.query("DROP TRIGGER sabotage ON orders; DROP FUNCTION fail_order()");
		}
		// The failed command left nothing behind: no claim, no reservation, no event.
		const { rows } = await db.pool.query(
			`SELECT (SELECT count(*)::int FROM claims WHERE order_id = $1) AS claims,
			        (SELECT count(*)::int FROM outbox WHERE aggregate_id = $1) AS events,
			        (SELECT reserved::text FROM supplies WHERE id = $2) AS reserved`,
			[orders[1], supply],
		);
		expect(rows[0]).toEqual({ claims: 0, events: 0, reserved: "2.000000000000000000" });
	});

	it("writes the change and its events in one transaction, events numbered per aggregate", async () => {
		const supply = await seedSupply(db.pool, "frank", "5");
		const order = await seedOrder(db.pool, "bob", "1.5");
		const claimed = await one(nodeA, claimCmd(order, supply, "frank", "ev-1"));
		expect(claimed.ok).toBe(true);
		const done = await one(nodeA, { op: "complete", orderId: order, userId: "bob" });
		expect(done.ok).toBe(true);
		const { rows } = await db.pool.query(
			`SELECT aggregate_type, aggregate_version, event_type, epoch, home_region, count(*) OVER (PARTITION BY tx_id)::int AS in_tx,
			        payload->>'reserved' AS reserved, payload->>'spent' AS spent, payload->>'status' AS status
			   FROM outbox WHERE aggregate_id IN ($1, $2, $3) ORDER BY id`,
			[order, supply, claimed.ok ? claimed.value.claim!.id : null],
		);
		expect(rows.map(r => `${r.aggregate_type}@${r.aggregate_version} ${r.event_type}`)).toEqual([
			"claim@1 ClaimCreated",
			"order@2 OrderClaimed",
			"supply@2 SupplyReserved",
			"claim@2 ClaimSettled",
			"order@3 OrderCompleted",
			"supply@3 SupplySpent",
		]);
		expect(rows.every(r => r.in_tx === 3 && Number(r.epoch) === 1 && r.home_region === "us-central1")).toBe(true);
		expect(rows[2]).toMatchObject({ reserved: "1.5", spent: "0" });
		expect(rows[5]).toMatchObject({ reserved: "0", spent: "1.5" });
	});

	it("finds and locks its rows by key: a batch costs the same however many rows the tables hold", async () => {
		// Thousands of orders, supplies and claims, as a region has after a while, with fresh statistics.
		await crowd(db.pool, 2000);
		await db.pool.query("ANALYZE orders; ANALYZE supplies; ANALYZE claims");
		const { supply, toRelease, toComplete, fresh, releaseId } = await claimsToEnd("scan");
		// One batch of every kind of command that locks a supply, and the sequential scans it made.
		const client = await nodeA.connect();
		try {
			await client.query("BEGIN");
			const scans = await seqScansOf(client, async () => {
				const outs = await runCommands(client, cc, [
					claimCmd(fresh[0], supply, "gina", "scan-3"),
					claimCmd(fresh[1], supply, "gina", "scan-4"),
					{ op: "release", orderId: toRelease, claimId: releaseId, userId: "gina" },
					{ op: "complete", orderId: toComplete, userId: "bob" },
				]);
				expect(outs.map(o => o.ok)).toEqual([true, true, true, true]);
			});
			expect(scans).toEqual(NO_SCANS);
		} finally {
			await client.query("ROLLBACK");
			client.release();
		}
	});

	it("runs no SQL function as a call of its own (each one planned again at every call before PostgreSQL 18)", async () => {
		const { supply, toRelease, toComplete, fresh, releaseId } = await claimsToEnd("fn");
		const called = await sqlFunctionsCalled(nodeA, async client => {
			const outs = await runCommands(client, cc, [
				claimCmd(fresh[0], supply, "gina", "fn-3"),
				claimCmd(toRelease, supply, "gina", "fn-4"),
				claimCmd(fresh[1], supply, "gina", "fn-3"),
				{ op: "release", orderId: toRelease, claimId: releaseId, userId: "gina" },
				{ op: "complete", orderId: toComplete, userId: "bob" },
			]);
			// Refusals run too: an order already claimed, a key that names another order.
			expect(outs.map(o => (o.ok ? "ok" : errorOf(o).type))).toEqual(["ok", "ORDER_NOT_OPEN", "IDEMPOTENCY_KEY_REUSED", "ok", "ok"]);
			// And the creates (one statement each, building their event's JSON).
			const db = client as unknown as pg.Pool;
			await createSupply(db, { id: randomUUID(), userId: "gina", asset: "ETH", amount: "1", region: "us-central1" });
			await createOrder(db, { id: randomUUID(), userId: "bob", asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: "1", quantity: 1 }], amount: "1", region: "us-central1", ttlSec: 60 });
		});
		expect(called).toEqual([]);
	});

	it("keeps finding rows by key on a connection whose plans were made while the tables were young", async () => {
		const young = await createTestDatabase();
		const client = await young.pool.connect();
		try {
			await migrate(young.pool);
			await ensureOwnership(young.pool, ["us-central1"]);
			await young.pool.query("ANALYZE"); // a new region: statistics of empty tables
			const supply = await seedSupply(young.pool, "hana", "1000");
			// This connection's plans are made now (PL/pgSQL keeps a statement's plan from its sixth run on).
			for (let i = 0; i < 8; i++) {
				const [out] = await runCommands(client, cc, [claimCmd(await seedOrder(young.pool, "bob", "1"), supply, "hana", `young-${i}`)]);
				expect(out.ok).toBe(true);
			}
			// The tables grow; no ANALYZE comes in between (autovacuum's comes after 10 % more rows and its nap).
			await crowd(young.pool, 3000);
			const order = await seedOrder(young.pool, "bob", "1");
			await client.query("BEGIN");
			const scans = await seqScansOf(client, async () => {
				const [out] = await runCommands(client, cc, [claimCmd(order, supply, "hana", "young-last")]);
				expect(out.ok).toBe(true);
			});
			expect(scans).toEqual(NO_SCANS);
		} finally {
			await client.query("ROLLBACK").catch(() => undefined);
			client.release();
			await young.drop();
		}
	});
});

describe("refusals and states the API never produces", () => {
	it("a claim naming another user's supply neither waits on nor locks that row", async () => {
		const theirs = await seedSupply(db.pool, "owner");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const holder = await db.pool.connect();
		await holder.query("BEGIN");
		await holder.query("SELECT 1 FROM supplies WHERE id = $1 FOR UPDATE", [theirs]);
		try {
			// With the row held elsewhere, a claim that locked it first would wait here (statement timeout 3 s).
			const short = new pg.Pool({ connectionString: db.url, max: 1, statement_timeout: 3000 });
			const out = await one(short, claimCmd(order, theirs, "mallory", "steal-1")).finally(() => short.end());
			expect(errorOf(out)).toMatchObject({ code: 404, type: "SUPPLY_NOT_FOUND" });
		} finally {
			await holder.query("ROLLBACK");
			holder.release();
		}
	});

	it("complete with a claim that is not active is a 409, not a crash", async () => {
		const supply = await seedSupply(db.pool, "gina");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const c = await one(nodeA, claimCmd(order, supply, "gina", "broken-1"));
		expect(c.ok).toBe(true);
		// A corrupt state: the order points at a claim that is no longer active.
		await db.pool.query(`ALTER TABLE claims DISABLE TRIGGER claims_count`);
		await db.pool.query(`UPDATE claims SET status = 'released', released_at = now() WHERE order_id = $1`, [order]);
		await db.pool.query(`ALTER TABLE claims ENABLE TRIGGER claims_count`);
		const out = await one(nodeA, { op: "complete", orderId: order, userId: "bob" });
		expect(errorOf(out)).toMatchObject({ code: 409, type: "CLAIM_NOT_ACTIVE", data: { status: "released" } });
	});

	it("releasing a claim its order no longer points at does not reopen the order or repeat its version", async () => {
		const supply = await seedSupply(db.pool, "hank");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const c = await one(nodeA, claimCmd(order, supply, "hank", "stale-1"));
		expect(c.ok).toBe(true);
		const claimId = c.ok ? c.value.claim!.id : "";
		await db.pool.query(`UPDATE orders SET claim_id = NULL, claimer_id = NULL, status = 'open' WHERE id = $1`, [order]);
		const out = await one(nodeA, { op: "release", orderId: order, claimId, userId: "hank" });
		expect(out.ok).toBe(true);
		const { rows } = await db.pool.query(`SELECT event_type FROM outbox WHERE aggregate_id = $1 ORDER BY id`, [order]);
		expect(rows.map(r => r.event_type)).toEqual(["OrderClaimed"]);
	});

	it("an admin releasing a claim that is not active gets 409 with its state", async () => {
		const supply = await seedSupply(db.pool, "ivy");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const c = await one(nodeA, claimCmd(order, supply, "ivy", "adm-1"));
		const claimId = c.ok ? c.value.claim!.id : "";
		expect((await one(nodeA, { op: "release", orderId: order, claimId, userId: "ivy" })).ok).toBe(true);
		const again = await one(nodeA, { op: "release", orderId: order, claimId, userId: "root", admin: true });
		expect(errorOf(again)).toMatchObject({ code: 409, type: "CLAIM_NOT_ACTIVE", data: { id: claimId, status: "released" } });
	});

	it("a region that does not own the entity's home region, or holds an old epoch, does not write", async () => {
		const supply = await seedSupply(db.pool, "jack");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const stale = await one(nodeA, claimCmd(order, supply, "jack", "fence-1"), { ...cc, epochs: { "us-central1": 0 } });
		expect(errorOf(stale)).toMatchObject({ code: 503, type: "NOT_OWNER", retryable: true });
		const elsewhere = await one(nodeA, claimCmd(order, supply, "jack", "fence-2"), { ...cc, region: "europe-west1" });
		expect(errorOf(elsewhere)).toMatchObject({ code: 503, type: "NOT_OWNER" });
		expect((await db.pool.query("SELECT count(*)::int AS n FROM claims WHERE order_id = $1", [order])).rows[0].n).toBe(0);
	});
});

describe("database-side limits", () => {
	it("a command stuck behind a held lock gives up after lock_timeout with a retryable 503", async () => {
		const supply = await seedSupply(db.pool, "kim");
		const order = await seedOrder(db.pool, "bob", "0.1");
		const holder = await db.pool.connect();
		await holder.query("BEGIN");
		await holder.query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", [order]);
		const limited = new pg.Pool({ connectionString: db.url, max: 1, lock_timeout: 300 });
		try {
			const started = Date.now();
			const err = await runCommands(limited, cc, [claimCmd(order, supply, "kim", "lt-1")]).then(
				() => undefined,
				e => e,
			);
			// The batch's own lock statement timed out: the whole call fails, nothing is written.
			expect(err).toMatchObject({ code: 503, type: "DATABASE_BUSY", retryable: true, data: { sqlstate: "55P03" } });
			expect(err.message).toBe("The database is busy; retry");
			expect(Date.now() - started).toBeLessThan(3000);
			expect(await lockWaits(db.pool)).toBe(0);
		} finally {
			await limited.end();
			await holder.query("ROLLBACK");
			holder.release();
		}
	});

	it("a command of a batch stuck on a lock inside its own step gives up alone, as a retryable 503", async () => {
		const supplies = [await seedSupply(db.pool, "lee"), await seedSupply(db.pool, "lee")];
		const orders = [await seedOrder(db.pool, "bob", "0.1"), await seedOrder(db.pool, "bob", "0.1"), await seedOrder(db.pool, "bob", "0.1")];
		// Another node's claim with the key "lt-2" has written its claim and not committed yet.
		const holder = await db.pool.connect();
		await holder.query("BEGIN");
		await holder.query(`SELECT order_commands($1::jsonb)`, [JSON.stringify({ ...cc, cmds: [claimCmd(orders[0], supplies[0], "lee", "lt-2")] })]);
		const limited = new pg.Pool({ connectionString: db.url, max: 1, lock_timeout: 300 });
		try {
			// The same key for another order waits on that uncommitted claim (the key's unique index), past lock_timeout.
			const outs = await runCommands(limited, cc, [claimCmd(orders[1], supplies[1], "lee", "lt-2"), claimCmd(orders[2], supplies[1], "lee", "lt-3")]);
			expect(errorOf(outs[0])).toMatchObject({ code: 503, type: "DATABASE_BUSY", retryable: true, data: { sqlstate: "55P03" } });
			expect(errorOf(outs[0]).message).toBe("The database is busy; retry");
			expect(outs[1].ok).toBe(true);
		} finally {
			await limited.end();
			await holder.query("ROLLBACK");
			holder.release();
		}
		const { rows } = await db.pool.query("SELECT order_id FROM claims WHERE claimer_id = 'lee'");
		expect(rows.map(r => r.order_id)).toEqual([orders[2]]);
	});
});
