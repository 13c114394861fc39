// A hand-back parts a claim from its supply's writer: us-central1 owned asia-east1's entities for a while and made
// claims that reserved funds directly (the order and the supply both its to write then). After it hands asia-east1
// back, one region writes the order and another the supply; whichever ends the claim counts on a hold in the
// supply's region. hold_direct_reservations, run in the hand-back's transaction, creates those holds, so the funds
// move exactly once when the claim's end reaches the supply's owner (the postgres drill of 2026-12-06 left them
// reserved for ever before it).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pool } from "pg";
import { migrate } from "../../src/db/migrate";
import { applyDelivery } from "../../src/replication/applier";
import { OUTBOX_COLUMNS, toReplEvent } from "../../src/replication/relay";
import { ensureOwnership, runCommands, type CommandContext } from "../../src/store/commands";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { seedOrder, seedSupply } from "../helpers/seed";

const US = "us-central1";
const ASIA = "asia-east1";
let us: TestDatabase;
let asia: TestDatabase;

beforeAll(async () => {
	[us, asia] = await Promise.all([createTestDatabase(), createTestDatabase()]);
	await Promise.all([migrate(us.pool), migrate(asia.pool)]);
	await Promise.all([ensureOwnership(us.pool, [US, ASIA]), ensureOwnership(asia.pool, [US, ASIA])]);
});
afterAll(async () => Promise.all([us?.drop(), asia?.drop()]));

const owner = (pool: Pool, home: string, region: string, epoch: number) =>
	pool.query(`UPDATE ownership_leases SET owner = $2, epoch = $3, lease_until = NULL WHERE home_region = $1`, [home, region, epoch]);

/** Everything us-central1 wrote, applied in asia-east1 as its applier would (one lane: the order they were written in). */
async function replicateToAsia() {
	const { rows } = await us.pool.query(`SELECT ${OUTBOX_COLUMNS} FROM outbox ORDER BY id`);
	await applyDelivery(asia.pool, ASIA, { source: US, lane: 0, events: rows.map(toReplEvent) });
}

const supplyIn = async (pool: Pool, id: string) =>
	(await pool.query(`SELECT reserved::float8 AS reserved, spent::float8 AS spent FROM supplies WHERE id = $1`, [id])).rows[0];
const holdIn = async (pool: Pool, claimId: string) => (await pool.query(`SELECT status FROM holds WHERE claim_id = $1`, [claimId])).rows[0]?.status;

describe("a hand-back turns the reservations it parts from their claims into holds", () => {
	it("and the supply's owner moves the funds once when the claim ends in the order's region", async () => {
		// us-central1 owns asia-east1's entities at epoch 2 (it took them over).
		await owner(us.pool, ASIA, US, 2);
		const cc: CommandContext = { region: US, epochs: { [US]: 1, [ASIA]: 2 }, holdSec: 300 };
		// Claims it makes as the writer of both sides: an order of its own on an asia-east1 supply, an asia-east1 order
		// on a supply of its own, and (unaffected) one entirely its own.
		const asiaSupply = await seedSupply(us.pool, "shopper", "10", { home: ASIA });
		const usSupply = await seedSupply(us.pool, "shopper", "10", { home: US });
		const usOrder = await seedOrder(us.pool, "buyer", "0.5", { home: US });
		const asiaOrder = await seedOrder(us.pool, "buyer", "0.25", { home: ASIA });
		const ownOrder = await seedOrder(us.pool, "buyer", "1", { home: US });
		const outs = await runCommands(us.pool, cc, [
			{ op: "claim", orderId: usOrder, supplyId: asiaSupply, userId: "shopper", key: "k1" },
			{ op: "claim", orderId: asiaOrder, supplyId: usSupply, userId: "shopper", key: "k2" },
			{ op: "claim", orderId: ownOrder, supplyId: usSupply, userId: "shopper", key: "k3" },
		]);
		expect(outs.map(o => o.ok)).toEqual([true, true, true]);
		const [c1, c2, c3] = outs.map(o => (o.ok ? o.value.claim!.id : ""));

		// The hand-back's transaction: the two claims that now straddle the regions get holds, the third does not.
		const adopted = await us.pool.query(`SELECT hold_direct_reservations($1, $2) AS n`, [ASIA, US]);
		expect(adopted.rows[0].n).toBe(2);
		expect([await holdIn(us.pool, c1), await holdIn(us.pool, c2), await holdIn(us.pool, c3)]).toEqual(["confirmed", "confirmed", undefined]);
		// No funds move: the claims reserved them already.
		expect(await supplyIn(us.pool, asiaSupply)).toEqual({ reserved: 0.5, spent: 0 });
		const events = await us.pool.query(
			`SELECT aggregate_id, home_region, epoch::int, payload->>'claimId' AS claim, payload->>'holdAmount' AS amount, payload->>'orderRegion' AS "orderRegion"
			   FROM outbox WHERE event_type = 'SupplyReserved' AND payload ? 'adopted' ORDER BY home_region`,
		);
		// Each written as that supply's owner: asia-east1's under the epoch us-central1 holds it at, its own under its own.
		expect(events.rows).toEqual([
			{ aggregate_id: asiaSupply, home_region: ASIA, epoch: 2, claim: c1, amount: "0.5", orderRegion: US },
			{ aggregate_id: usSupply, home_region: US, epoch: 1, claim: c2, amount: "0.25", orderRegion: ASIA },
		]);
		// Asked by the supply's region to resolve such a hold, the order's region answers that its claim exists.
		expect((await us.pool.query(`SELECT void_claim($1) AS o`, [c1])).rows[0].o).toBe("claimed");
		// Once: a second run finds nothing left to adopt.
		expect((await us.pool.query(`SELECT hold_direct_reservations($1, $2) AS n`, [ASIA, US])).rows[0].n).toBe(0);
		await owner(us.pool, ASIA, ASIA, 3);

		// us-central1 completes its own order: the supply is asia-east1's to write now, so it does not touch it.
		const done = await runCommands(us.pool, { ...cc, epochs: { [US]: 1 } }, [{ op: "complete", orderId: usOrder, userId: "buyer" }]);
		expect(done[0].ok).toBe(true);
		expect(await supplyIn(us.pool, asiaSupply)).toEqual({ reserved: 0.5, spent: 0 });

		// asia-east1, owner of its supply again, applies what us-central1 wrote: the claim's end settles the hold.
		await owner(asia.pool, ASIA, ASIA, 3);
		await replicateToAsia();
		expect(await holdIn(asia.pool, c1)).toBe("settled");
		expect(await supplyIn(asia.pool, asiaSupply)).toEqual({ reserved: 0, spent: 0.5 });
		const spent = await asia.pool.query(
			`SELECT event_type, payload->>'claimId' AS claim FROM outbox WHERE aggregate_id = $1 ORDER BY id`,
			[asiaSupply],
		);
		expect(spent.rows).toEqual([{ event_type: "SupplySpent", claim: c1 }]);
		// Applied again (a redelivery), nothing moves twice.
		await replicateToAsia();
		expect(await supplyIn(asia.pool, asiaSupply)).toEqual({ reserved: 0, spent: 0.5 });
	});
});
