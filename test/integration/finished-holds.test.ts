// end_finished_holds, which every sweep runs: a hold whose claim has ended (settled or released in the order's
// region) while no region could end the hold (the supply's region lost, or not yet owning it again) is ended by
// the region that writes the supply, once, with the supply's event; a hold whose claim is still live, or whose
// supply another region writes, is left alone.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureOwnership } from "../../src/store/commands";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";
import { seedOrder, seedSupply } from "../helpers/seed";

const HERE = "europe-west1";
const THERE = "us-central1";
let db: TestDatabase;
beforeAll(async () => {
	db = await createMigratedDatabase();
	// Each region owns its own home region (no leases here): this database is europe-west1's.
	await ensureOwnership(db.pool, [HERE, THERE]);
});
afterAll(async () => db?.drop());

/** A hold on `supply` for a claim written in THERE (as its replica here), the claim in `claimStatus`. */
async function holdFor(supply: string, holdStatus: "held" | "confirmed", claimStatus: "active" | "settled" | "released") {
	const claimId = randomUUID();
	const order = await seedOrder(db.pool, "buyer", "1", { home: THERE });
	await db.pool.query(
		`INSERT INTO holds (claim_id, supply_id, order_id, claimer_id, amount, order_region, status) VALUES ($1, $2, $3, 'shopper', 1, $4, $5)`,
		[claimId, supply, order, THERE, holdStatus],
	);
	await db.pool.query(
		`INSERT INTO claims (id, order_id, claimer_id, supply_id, amount, idempotency_key, region, epoch, expires_at, status)
		 VALUES ($1, $2, 'shopper', $3, 1, $6, $4, 1, now() + interval '5 minutes', $5)`,
		[claimId, order, supply, THERE, claimStatus, `key-${claimId}`],
	);
	await db.pool.query(`UPDATE supplies SET reserved = reserved + 1 WHERE id = $1`, [supply]);
	return claimId;
}

const holdStatus = async (claimId: string) => (await db.pool.query(`SELECT status FROM holds WHERE claim_id = $1`, [claimId])).rows[0].status;
const balance = async (supply: string) =>
	(await db.pool.query(`SELECT reserved::float8 AS reserved, spent::float8 AS spent FROM supplies WHERE id = $1`, [supply])).rows[0];

describe("end_finished_holds (run by every sweep)", () => {
	it("ends the standing holds of ended claims on supplies this region writes, once, and leaves the others", async () => {
		const mine = await seedSupply(db.pool, "shopper", "10", { home: HERE });
		const theirs = await seedSupply(db.pool, "shopper", "10", { home: THERE });
		const settled = await holdFor(mine, "confirmed", "settled");
		const released = await holdFor(mine, "held", "released");
		const live = await holdFor(mine, "confirmed", "active");
		const elsewhere = await holdFor(theirs, "confirmed", "settled");

		const ended = await db.pool.query(`SELECT end_finished_holds($1, 100) AS n`, [HERE]);
		expect(ended.rows[0].n).toBe(2);
		expect(await holdStatus(settled)).toBe("settled");
		expect(await holdStatus(released)).toBe("released");
		expect(await holdStatus(live)).toBe("confirmed");
		expect(await holdStatus(elsewhere)).toBe("confirmed");
		// The settled hold's funds are spent, the released one's given back; the live one stays reserved.
		expect(await balance(mine)).toEqual({ reserved: 1, spent: 1 });
		expect(await balance(theirs)).toEqual({ reserved: 1, spent: 0 });
		// Each change leaves as the supply's event, naming the claim, for the other regions.
		const { rows } = await db.pool.query(
			`SELECT event_type, payload->>'claimId' AS claim, payload->>'holdAmount' AS amount FROM outbox WHERE aggregate_id = $1 ORDER BY id`,
			[mine],
		);
		expect(rows).toEqual([
			{ event_type: "SupplySpent", claim: settled, amount: "1" },
			{ event_type: "SupplyReleased", claim: released, amount: "1" },
		]);

		// Once: the next sweep finds nothing to end.
		expect((await db.pool.query(`SELECT end_finished_holds($1, 100) AS n`, [HERE])).rows[0].n).toBe(0);
		expect(await balance(mine)).toEqual({ reserved: 1, spent: 1 });
	});
});
