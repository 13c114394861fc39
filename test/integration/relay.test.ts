// The outbox relay against a real PostgreSQL: it marks rows published only while they are still publishable
// once the log has taken them. A lease that runs out during the publish may have let a successor fence the log
// before the rows landed (no one applies them then), so they must not count as durable here either: a claim
// waiting for durability is not acknowledged, and the rows are published again if the lease comes back.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryEventLog } from "../../src/replication/memory-log";
import type { EventLog, ReplEvent } from "../../src/replication/event-log";
import pg from "pg";
import { OutboxRelay, PREPARED } from "../../src/replication/relay";
import { ensureOwnership } from "../../src/store/commands";
import { createSupply } from "../../src/store/creates";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";

const A = "us-central1";
let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
	await ensureOwnership(db.pool, [A], A, true);
});
afterAll(async () => db?.drop());

const lease = (sql: string) => db.pool.query(`UPDATE ownership_leases SET lease_until = ${sql} WHERE home_region = $1`, [A]);
const unpublished = async () => (await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL`)).rows[0].n as number;
const total = (p: Record<number, number>) => Object.values(p).reduce((n, v) => n + v, 0);

/** The relay listening for outbox commits (its LISTEN connection is up). */
const listening = async () =>
	(await db.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN wallet_outbox%'`)).rows[0].n as number;

/** `inner`, telling `seen` of every publish first. */
function watched(inner: EventLog, seen: (events: ReplEvent[]) => void): EventLog {
	return Object.assign(Object.create(inner), {
		publish: (source: string, events: ReplEvent[]) => {
			seen(events);
			return inner.publish(source, events);
		},
	});
}

/** A log whose publish waits until released (the broker's ack late, as for a cut-off region). */
function slowLog(inner: EventLog) {
	let release!: () => void;
	let started!: () => void;
	const gate = new Promise<void>(r => (release = r));
	const begun = new Promise<void>(r => (started = r));
	const log: EventLog = Object.assign(Object.create(inner), {
		publish: async (source: string, events: ReplEvent[]) => {
			started();
			await gate;
			return inner.publish(source, events);
		},
	});
	return { log, release, begun };
}

describe("outbox relay", () => {
	it("leaves rows unmarked when the lease ran out while the log took them, and publishes them again once it is back", async () => {
		await lease(`now() + interval '1 minute'`);
		for (let i = 0; i < 3; i++) await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
		expect(await unpublished()).toBe(3);
		const memory = new MemoryEventLog();
		const slow = slowLog(memory);
		const unconfirmed: number[] = [];
		const relay = new OutboxRelay(db.pool, slow.log, { region: A, batch: 100, pollMs: 10, onUnconfirmed: n => unconfirmed.push(n) });
		const round = relay.tick();
		await slow.begun;
		await lease(`now() - interval '1 millisecond'`);
		slow.release();
		// The log holds them, the outbox does not call them published.
		expect(await round).toBe(0);
		expect(total(await memory.ends(A))).toBe(3);
		expect(await unpublished()).toBe(3);
		expect(unconfirmed).toEqual([3]);
		// Without a lease nothing leaves at all.
		expect(await relay.tick()).toBe(0);
		expect(total(await memory.ends(A))).toBe(3);
		// The lease renewed: published again (appliers absorb the repeat by version) and marked.
		await lease(`now() + interval '1 minute'`);
		const again = new OutboxRelay(db.pool, memory, { region: A, batch: 100, pollMs: 10 });
		expect(await again.tick()).toBe(3);
		expect(await unpublished()).toBe(0);
		expect(total(await memory.ends(A))).toBe(6);
	});

	it("one relay at a time: while a round holds the lock, another relay's round publishes nothing and says so", async () => {
		await lease(`now() + interval '1 minute'`);
		await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
		const memory = new MemoryEventLog();
		const slow = slowLog(memory);
		const first = new OutboxRelay(db.pool, slow.log, { region: A, batch: 100, pollMs: 10 });
		const round = first.tick();
		await slow.begun;
		const other: ReplEvent[] = [];
		expect(await new OutboxRelay(db.pool, watched(memory, events => other.push(...events)), { region: A, batch: 100, pollMs: 10 }).tick()).toBe(-1);
		expect(other).toEqual([]);
		slow.release();
		expect(await round).toBe(1);
		expect(await unpublished()).toBe(0);
	});

	it("marks rows published when the lease held through the publish", async () => {
		await lease(`now() + interval '1 minute'`);
		await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
		const relay = new OutboxRelay(db.pool, new MemoryEventLog(), { region: A, batch: 100, pollMs: 10 });
		expect(await relay.tick()).toBe(1);
		expect(await unpublished()).toBe(0);
	});

	it("a round is two round trips (BEGIN with the batch, the marking with COMMIT), on any session, prepared or not", async () => {
		await lease(`now() + interval '1 minute'`);
		// One connection, whose queries are counted; it already holds one of the round's statements, as after a round
		// that failed halfway through preparing them.
		const pool = new pg.Pool({ connectionString: db.url, max: 1 });
		const sent: string[] = [];
		pool.on("connect", c => {
			const query = c.query.bind(c) as (...a: unknown[]) => unknown;
			(c as any).query = (...a: unknown[]) => {
				sent.push(String(typeof a[0] === "string" ? a[0] : (a[0] as { text: string }).text));
				return query(...a);
			};
		});
		try {
			await pool.query(PREPARED.relay_mark);
			const relay = new OutboxRelay(pool, new MemoryEventLog(), { region: A, batch: 100, pollMs: 10 });
			for (let round = 0; round < 2; round++) {
				await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
				sent.length = 0;
				expect(await relay.tick()).toBe(1);
				// The first round on the session prepares what it lacks, once.
				const preparing = sent.filter(q => /pg_prepared_statements|^PREPARE/.test(q)).map(q => /^PREPARE (\w+)/.exec(q)?.[1] ?? "lookup");
				expect(preparing).toEqual(round === 0 ? ["lookup", "relay_batch"] : []);
				expect(sent.length - preparing.length).toBe(2);
			}
			expect(await unpublished()).toBe(0);
		} finally {
			await pool.end();
		}
	});

	it("publishes in the order of the rows' ids, also where their number of digits grows (99, 100, 101)", async () => {
		await lease(`now() + interval '1 minute'`);
		expect(await unpublished()).toBe(0);
		await db.pool.query(`SELECT setval(pg_get_serial_sequence('outbox', 'id'), 98)`);
		for (let i = 0; i < 3; i++) await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
		const rows = (await db.pool.query<{ id: string; event_id: string }>(`SELECT id::text, event_id FROM outbox o WHERE published_at IS NULL ORDER BY o.id`)).rows;
		expect(rows.map(r => r.id)).toEqual(["99", "100", "101"]);
		const idOf = new Map(rows.map(r => [r.event_id, r.id]));
		const published: string[][] = [];
		const relay = new OutboxRelay(db.pool, watched(new MemoryEventLog(), events => published.push(events.map(e => idOf.get(e.eventId)!))), { region: A, batch: 2, pollMs: 10 });
		expect(await relay.tick()).toBe(2);
		expect(await relay.tick()).toBe(1);
		expect(published).toEqual([["99", "100"], ["101"]]);
	});

	it("publishes whole transactions: a full batch that ends inside one takes the rest of it and the rows between", async () => {
		await lease(`now() + interval '1 minute'`);
		expect(await unpublished()).toBe(0);
		// Two transactions whose rows interleave by id: t1 a, t2 a, t1 b, (t1 commits) t2 b.
		const [t1, t2] = [await db.pool.connect(), await db.pool.connect()];
		const row = (c: typeof t1, type: string) =>
			c.query(
				`INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
				 SELECT $1, 'supply', $2, 1, $3, $4, $4, epoch, '{}' FROM ownership_leases WHERE home_region = $4`,
				[randomUUID(), randomUUID(), type, A],
			);
		try {
			await t1.query("BEGIN");
			await t2.query("BEGIN");
			await row(t1, "t1-a");
			await row(t2, "t2-a");
			await row(t1, "t1-b");
			await t1.query("COMMIT");
			await row(t2, "t2-b");
			await t2.query("COMMIT");
		} finally {
			t1.release();
			t2.release();
		}
		const batches: string[][] = [];
		const memory = new MemoryEventLog();
		const log = watched(memory, events => batches.push(events.map(e => e.type)));
		// A batch of one: t1's first row, then the rest of t1, which takes t2's first row, and so the rest of t2.
		expect(await new OutboxRelay(db.pool, log, { region: A, batch: 1, pollMs: 10 }).tick()).toBe(4);
		expect(batches).toEqual([["t1-a", "t2-a", "t1-b", "t2-b"]]);
		expect(await unpublished()).toBe(0);
	});

	it("wakes when outbox rows commit, without polling", async () => {
		await lease(`now() + interval '1 minute'`);
		const memory = new MemoryEventLog();
		// A poll a minute apart: only the commit's notification can make it publish within the test.
		const relay = new OutboxRelay(db.pool, memory, { region: A, batch: 100, pollMs: 60_000 });
		relay.start();
		try {
			await expect.poll(() => unpublished(), { timeout: 5000 }).toBe(0);
			const before = total(await memory.ends(A));
			await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
			await expect.poll(async () => total(await memory.ends(A)), { timeout: 2000, interval: 20 }).toBe(before + 1);
			// Marked in the relay's transaction, which commits just after the log took the event.
			await expect.poll(() => unpublished(), { timeout: 2000, interval: 20 }).toBe(0);
		} finally {
			await relay.stop();
		}
	});

	it("lingers after a commit wakes it, so the commits of that moment leave in one batch", async () => {
		await lease(`now() + interval '1 minute'`);
		const memory = new MemoryEventLog();
		const batches: number[] = [];
		const counting = watched(memory, events => batches.push(events.length));
		const relay = new OutboxRelay(db.pool, counting, { region: A, batch: 100, pollMs: 60_000, lingerMs: 400 });
		relay.start();
		try {
			// Listening, and past the round it runs once it listens (commits may have come before the LISTEN).
			await expect.poll(listening, { timeout: 5000 }).toBe(1);
			await new Promise(r => setTimeout(r, 600));
			await expect.poll(() => unpublished(), { timeout: 5000 }).toBe(0);
			batches.length = 0;
			// Five commits 20 ms apart: the first wakes the relay, the others come within its linger.
			for (let i = 0; i < 5; i++) {
				await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
				await new Promise(r => setTimeout(r, 20));
			}
			await expect.poll(() => unpublished(), { timeout: 3000, interval: 20 }).toBe(0);
			expect(batches).toEqual([5]);
		} finally {
			await relay.stop();
		}
	});

	it("does not linger again for a commit that came during the last round: its linger ran while that round did", async () => {
		await lease(`now() + interval '1 minute'`);
		const memory = new MemoryEventLog();
		const slow = slowLog(memory);
		const relay = new OutboxRelay(db.pool, slow.log, { region: A, batch: 100, pollMs: 60_000, lingerMs: 800 });
		const lingers: number[] = [];
		const linger = (relay as unknown as { linger(ms: number): Promise<void> }).linger.bind(relay);
		(relay as unknown as { linger(ms: number): Promise<void> }).linger = ms => {
			lingers.push(ms);
			return linger(ms);
		};
		await expect.poll(() => unpublished(), { timeout: 5000 }).toBe(0);
		relay.start();
		try {
			// Listening, and past the round it runs once it listens.
			await expect.poll(listening, { timeout: 5000 }).toBe(1);
			await new Promise(r => setTimeout(r, 1000));
			lingers.length = 0;
			// The first commit wakes the relay, which lingers, then publishes: held at the log.
			await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
			await slow.begun;
			// A commit while that round waits at the log, which takes longer than the linger.
			await createSupply(db.pool, { id: randomUUID(), userId: "ivy", asset: "ETH", amount: "1", region: A });
			await new Promise(r => setTimeout(r, 1000));
			slow.release();
			await expect.poll(() => unpublished(), { timeout: 5000, interval: 20 }).toBe(0);
			// The first commit's linger only: the second commit's next round left at once.
			expect(lingers).toHaveLength(1);
			expect(lingers[0]).toBeGreaterThan(400);
		} finally {
			await relay.stop();
		}
	});

	it("stops while its listening connection is still being made", async () => {
		const relay = new OutboxRelay(db.pool, new MemoryEventLog(), { region: A, batch: 100, pollMs: 60_000 });
		relay.start();
		await expect(Promise.race([relay.stop().then(() => "stopped"), new Promise(r => setTimeout(() => r("hung"), 3000))])).resolves.toBe("stopped");
	});
});
