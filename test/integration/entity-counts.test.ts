// The status counts behind the orders and supplies gauges (entity_counts, folded from entity_count_deltas) against a
// real PostgreSQL: whatever writes the rows (batched creations, another region's events applied set-based or one by
// one, repeated deliveries that insert nothing, status changes), the folded counts equal counting the tables.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplEvent } from "../../src/replication/event-log";
import { ensureOwnership } from "../../src/store/commands";
import { createOrders, createSupplies } from "../../src/store/creates";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";

let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
	await ensureOwnership(db.pool, ["us-central1", "europe-west1"]);
});
afterAll(async () => db?.drop());

const HOME = "us-central1";
const OTHER = "europe-west1";
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

function orderEvent(id: string, version: number, status: string): ReplEvent {
	return {
		eventId: randomUUID(), aggregateType: "order", aggregateId: id, version, type: "Order", region: OTHER, homeRegion: OTHER, epoch: 1,
		txId: String(version), schemaVersion: 1, createdAt: t(version),
		payload: { id, userId: "buyer", asset: "ETH", items: [{ sku: "s", name: "n", unitPrice: "0.5", quantity: 1 }], amount: "0.5", status, claimId: null, claimerId: null, homeRegion: OTHER, version, expiresAt: t(999), createdAt: t(0), updatedAt: t(version) },
	};
}

function supplyEvent(id: string, version: number, status: string): ReplEvent {
	return {
		eventId: randomUUID(), aggregateType: "supply", aggregateId: id, version, type: "Supply", region: OTHER, homeRegion: OTHER, epoch: 1,
		txId: String(version), schemaVersion: 1, createdAt: t(version),
		payload: { id, userId: "shopper", asset: "ETH", amount: "1", reserved: "0", spent: "0", status, homeRegion: OTHER, version, createdAt: t(0), updatedAt: t(version) },
	};
}

const apply = (events: ReplEvent[]) => db.pool.query(`SELECT apply_events($1::jsonb)`, [JSON.stringify({ source: OTHER, lane: 0, region: HOME, events })]);

/** The counts as the gauges read them, and as counting the tables says: status → n, zeros left out. */
async function counts() {
	await db.pool.query("SELECT fold_entity_counts()");
	const folded = await db.pool.query<{ k: string; n: number }>(`SELECT kind || ':' || status AS k, n::int FROM entity_counts WHERE n <> 0 ORDER BY 1`);
	const counted = await db.pool.query<{ k: string; n: number }>(
		`SELECT k, count(*)::int AS n FROM (SELECT 'order:' || status AS k FROM orders UNION ALL SELECT 'supply:' || status FROM supplies
		 UNION ALL SELECT 'claim:' || status FROM claims) x GROUP BY k ORDER BY k`,
	);
	return { folded: folded.rows, counted: counted.rows };
}

describe("entity counts", () => {
	it("follow batched creations, applied runs, repeated deliveries and status changes", async () => {
		await createSupplies(db.pool, HOME, Array.from({ length: 3 }, () => ({ id: randomUUID(), userId: "shopper", asset: "ETH", amount: "2" })));
		const items = [{ sku: "s", name: "n", unitPrice: "0.5", quantity: 1 }];
		await createOrders(db.pool, HOME, Array.from({ length: 2 }, () => ({ id: randomUUID(), userId: "buyer", asset: "ETH", items, amount: "0.5", ttlSec: 600 })));
		// Another region's creations: a run of six (applied set-based), then the same events again (nothing inserted).
		const orders = Array.from({ length: 4 }, () => randomUUID());
		const supplies = Array.from({ length: 2 }, () => randomUUID());
		const created = [...orders.map(id => orderEvent(id, 1, "open")), ...supplies.map(id => supplyEvent(id, 1, "active"))];
		await apply(created);
		await apply(created);
		// Two of those orders cancelled, one supply paused; one order created and cancelled in one delivery.
		const late = randomUUID();
		await apply([orderEvent(orders[0], 2, "cancelled"), orderEvent(orders[1], 2, "cancelled"), supplyEvent(supplies[0], 2, "paused"), orderEvent(late, 1, "open"), orderEvent(late, 2, "cancelled")]);
		const c = await counts();
		expect(c.counted).toEqual([
			{ k: "order:cancelled", n: 3 },
			{ k: "order:open", n: 4 },
			{ k: "supply:active", n: 4 },
			{ k: "supply:paused", n: 1 },
		]);
		expect(c.folded).toEqual(c.counted);
	});
});
