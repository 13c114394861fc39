// The applier's group commit against a real PostgreSQL: deliveries its lanes hand over while an apply is in flight
// are applied together in the next call, and one delivery the database refuses fails alone (its lane retries it)
// while the others of its call are applied.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Applier } from "../../src/replication/applier";
import type { Delivery, EventLog, ReplEvent, SubscribeOptions } from "../../src/replication/event-log";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";

let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
});
afterAll(async () => db?.drop());

const A = "us-central1";
const B = "europe-west1";

function supplyCreated(id = randomUUID(), userId = "shopper"): ReplEvent {
	const at = new Date().toISOString();
	return {
		eventId: randomUUID(), aggregateType: "supply", aggregateId: id, version: 1, type: "SupplyCreated", region: A, homeRegion: A, epoch: 1,
		txId: "1", schemaVersion: 1, createdAt: at,
		payload: { id, userId, asset: "ETH", amount: "1", reserved: "0", spent: "0", status: "active", homeRegion: A, version: 1, createdAt: at, updatedAt: at },
	};
}

/** An applier on `db` whose log hands its handler to the test, and the names of the statements it ran. */
async function applierUnderTest() {
	let handler!: SubscribeOptions["handler"];
	const log = { subscribe: async (o: SubscribeOptions) => ((handler = o.handler), { stop: async () => undefined }) } as unknown as EventLog;
	const statements: string[] = [];
	const query = db.pool.query.bind(db.pool);
	const pool = Object.create(db.pool, {
		query: { value: (q: any, ...rest: any[]) => (statements.push(typeof q === "string" ? q : q.name), query(q, ...rest)) },
	});
	const applier = new Applier(pool, log, { region: B, regions: [A, B], group: "test" });
	await applier.start();
	return { handle: (d: Delivery) => handler(d), statements };
}

const supplyCount = async (ids: string[]) =>
	(await db.pool.query(`SELECT count(*)::int AS n FROM supplies WHERE id = ANY($1::uuid[])`, [ids])).rows[0].n;

describe("the applier", () => {
	it("applies alone a delivery that finds no apply in flight, and together those that came meanwhile", async () => {
		const { handle, statements } = await applierUnderTest();
		const events = Array.from({ length: 5 }, () => supplyCreated());
		await Promise.all(events.map((e, lane) => handle({ source: A, lane, events: [e] })));
		expect(statements).toEqual(["apply-events", "apply-deliveries"]);
		expect(await supplyCount(events.map(e => e.aggregateId))).toBe(5);
	});

	it("fails only the delivery the database refuses; the others of its call are applied", async () => {
		const { handle, statements } = await applierUnderTest();
		const good = [supplyCreated(), supplyCreated(), supplyCreated()];
		// A supply without its owner: the replica's NOT NULL refuses it.
		const bad = supplyCreated();
		delete (bad.payload as Record<string, unknown>).userId;
		const first = handle({ source: A, lane: 0, events: [good[0]] });
		const outcomes = await Promise.allSettled([
			first,
			handle({ source: A, lane: 1, events: [good[1]] }),
			handle({ source: A, lane: 2, events: [bad] }),
			handle({ source: A, lane: 3, events: [good[2]] }),
		]);
		expect(outcomes.map(o => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
		// One call for the three that waited, refused as a whole; then each alone.
		expect(statements).toEqual(["apply-events", "apply-deliveries", "apply-events", "apply-events", "apply-events"]);
		expect(await supplyCount(good.map(e => e.aggregateId))).toBe(3);
		expect(await supplyCount([bad.aggregateId])).toBe(0);
	});
});
