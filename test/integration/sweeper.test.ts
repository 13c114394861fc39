// The sweeper releases claims whose hold ran out: in batches, one statement per batch, spread over every
// node that sweeps (SKIP LOCKED), each item on its own so one failing row is reported and skipped instead of
// stopping every later sweep.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { ensureOwnership, sweep, type SweepResult } from "../../src/store/commands";
import { createMigratedDatabase, type TestDatabase } from "../helpers/db";
import { lockWaits, seedExpiredHolds, seedOrder } from "../helpers/seed";

const HOLDS = 3000;
let db: TestDatabase;
let nodes: pg.Pool[];

beforeAll(async () => {
	db = await createMigratedDatabase();
	await ensureOwnership(db.pool, ["us-central1", "europe-west1"]);
	nodes = [1, 2].map(i => new pg.Pool({ connectionString: db.url, max: 2, application_name: `sweeper-${i}` }));
});

afterAll(async () => {
	await Promise.all(nodes.map(p => p.end()));
	await db?.drop();
});

/** One node's sweeper loop: batches until nothing is due for it. */
async function sweepUntilDone(pool: pg.Pool, limit: number) {
	const all: SweepResult = { released: [], expired: [], failed: [] };
	for (;;) {
		const r = await sweep(pool, "us-central1", limit);
		all.released.push(...r.released);
		all.expired.push(...r.expired);
		all.failed.push(...r.failed);
		// Fewer than `limit` may mean the other node holds the rest: only an empty batch means done.
		if (r.released.length === 0) return all;
	}
}

describe("the sweeper", () => {
	it("releases every expired hold once, across two nodes, skipping a failing row", async () => {
		await seedExpiredHolds(db.pool, HOLDS);
		// Another region's expired hold: not ours to release.
		await seedExpiredHolds(db.pool, 5, "europe-west1");
		await db.pool.query(`UPDATE ownership SET owner = 'europe-west1' WHERE home_region = 'europe-west1'`);
		// A row that fails (a bug, a corrupt row): every update of it raises.
		const { rows: victim } = await db.pool.query(
			`SELECT c.id FROM claims c JOIN orders o ON o.id = c.order_id WHERE o.home_region = 'us-central1' ORDER BY c.expires_at LIMIT 1 OFFSET 17`,
		);
		await db.pool.query(`CREATE FUNCTION fail_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'corrupt row'; END $$`);
		await db.pool.query(`CREATE TRIGGER sabotage BEFORE UPDATE ON claims FOR EACH ROW WHEN (OLD.id = '${victim[0].id}') EXECUTE FUNCTION fail_claim()`);

		// Sample lock waits while both sweep: SKIP LOCKED means a node never waits for the other's rows.
		let sampling = true;
		let maxWaits = 0;
		const sampler = (async () => {
			while (sampling) {
				maxWaits = Math.max(maxWaits, await lockWaits(db.pool));
				await new Promise(r => setTimeout(r, 2));
			}
		})();
		const [a, b] = await Promise.all(nodes.map(p => sweepUntilDone(p, 200)));
		sampling = false;
		await sampler;
		expect(maxWaits).toBe(0);
		const released = [...a.released, ...b.released].map(r => r.claimId);
		console.log(`sweeper: node 1 released ${a.released.length}, node 2 released ${b.released.length}; failed ${a.failed.length + b.failed.length}`);
		// Work was spread, nothing twice, everything but the corrupt row.
		expect(a.released.length).toBeGreaterThan(0);
		expect(b.released.length).toBeGreaterThan(0);
		expect(new Set(released).size).toBe(released.length);
		expect(released.length).toBe(HOLDS - 1);
		expect(released).not.toContain(victim[0].id);
		const failed = [...a.failed, ...b.failed];
		expect(failed.length).toBeGreaterThan(0);
		expect(failed.every(f => f.id === victim[0].id && /corrupt row/.test(f.message))).toBe(true);

		const { rows } = await db.pool.query(
			`SELECT (SELECT count(*)::int FROM claims WHERE status = 'active') AS active,
			        (SELECT count(*)::int FROM outbox WHERE event_type = 'ClaimReleased') AS events,
			        (SELECT count(*)::int FROM outbox WHERE event_type = 'ClaimReleased' AND payload->>'reason' = 'expired') AS expired`,
		);
		// The corrupt row and the other region's 5 are still active; one release event per released claim.
		expect(rows[0]).toEqual({ active: 6, events: HOLDS - 1, expired: HOLDS - 1 });
		expect((await checkInvariants(db.pool)).violations).toEqual([]);
		await db.pool.query("DROP TRIGGER sabotage ON claims; DROP FUNCTION fail_claim()");
	});

	it("expires open orders past their time, and only those", async () => {
		const late = await seedOrder(db.pool, "buyer", "1", { expiresInSec: -1 });
		const fresh = await seedOrder(db.pool, "buyer", "1", { expiresInSec: 3600 });
		const r = await sweep(nodes[0], "us-central1", 100);
		expect(r.expired).toEqual([{ id: late, buyerId: "buyer" }]);
		const { rows } = await db.pool.query(`SELECT id, status, version FROM orders WHERE id IN ($1, $2) ORDER BY status`, [late, fresh]);
		expect(rows.map(x => [x.id, x.status, x.version])).toEqual([
			[late, "expired", 2],
			[fresh, "open", 1],
		]);
	});
});
