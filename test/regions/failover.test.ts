// Failover with three regions in this process (the in-process link and event log, as the embedded default):
// leases before the first write, a lost region's entities served by its successor under the next epoch, the
// lost region's return (its rows learned from the others) and the fail-back to it, then every region equal
// and the checkers clean. The same over processes and Kafka: test/regions/cluster.test.ts and `npm run drill`.
import { randomUUID } from "node:crypto";
import type { Service } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import type { RegionsStatus } from "../../services/regions.service";
import { serviceContext } from "../../src/lib/request-context";
import type { EventLog, ReplEvent } from "../../src/replication/event-log";
import { toReplEvent, type OutboxRelay } from "../../src/replication/relay";
import { createSupply } from "../../src/store/creates";
import { Client, item } from "../helpers/http";
import { converged, startTestRegions, type TestRegion, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({
		count: 3,
		env: { FAILOVER: "on", LINK: "memory", WATCH_INTERVAL_MS: "200", WATCH_TIMEOUT_MS: "150", LEASE_MS: "1000", LEASE_SAFETY_MS: "100", FAILBACK_AFTER_MS: "1000" },
	});
}, 60_000);
afterAll(async () => rs?.stop());

// An internal action: called as one of the region's own services would.
const status = (r: TestRegion) => serviceContext(r.broker.getLocalService("api") as Service).call<RegionsStatus>("regions.status");
const replicationOf = (r: TestRegion) => r.broker.getLocalService("replication") as unknown as { owned: { log: EventLog }; relay: OutboxRelay };
const ownerOf = async (r: TestRegion, home: string) => (await status(r)).ownership.find(o => o.homeRegion === home);

describe("failover between three regions", () => {
	it("a region writes only under a lease granted by a majority; an expired lease fences writes in the database", async () => {
		const [a] = rs.regions;
		await expect.poll(async () => (await ownerOf(a, a.name))?.leaseRemainingMs ?? -1, { timeout: 10_000 }).toBeGreaterThan(0);
		const write = () => Client.as(a.apiUrl, "lou").then(c => c.post("/api/v1/supplies", { asset: "ETH", amount: "1" }));
		expect((await write()).status).toBe(201);
		const supply = { userId: "lou", asset: "ETH", amount: "1", region: a.name };
		await rs.restart(a.name, async () => {
			// Stopped (no renewals), its lease runs out: the write's own statement refuses it, whoever calls.
			await a.db.pool.query(`UPDATE ownership_leases SET lease_until = now() - interval '1 millisecond' WHERE home_region = $1`, [a.name]);
			await expect(createSupply(a.db.pool, { id: randomUUID(), ...supply })).rejects.toMatchObject({ type: "NOT_OWNER", code: 503 });
			// Renewed again (as the next majority would), the same statement writes.
			await a.db.pool.query(`UPDATE ownership_leases SET lease_until = now() + interval '1 minute' WHERE home_region = $1`, [a.name]);
			await expect(createSupply(a.db.pool, { id: randomUUID(), ...supply })).resolves.toMatchObject({ homeRegion: a.name });
			// A row born under failover has no lease at all until its first renewal.
			await a.db.pool.query(`DELETE FROM ownership_leases WHERE home_region = $1`, [a.name]);
		});
		// Restarted: its row is made again without a lease, and the first renewal (a majority) lets it write.
		await expect.poll(async () => (await write()).status, { timeout: 10_000, interval: 100 }).toBe(201);
		expect((await ownerOf(a, a.name))!.leaseRemainingMs).toBeGreaterThan(0);
	});

	it("a lost region's entities are written by its successor under the next epoch, and go back when it returns", async () => {
		const [a, b, c] = rs.regions;
		const supply = (await (await Client.as(c.apiUrl, "max")).post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		const order = (await (await Client.as(a.apiUrl, "max-buyer")).post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })).body;
		await converged(rs, 15_000);
		const before = (await ownerOf(b, c.name))!;
		expect(before).toMatchObject({ owner: c.name });

		const lostAt = Date.now();
		await c.broker.stop();
		// The successor of asia-east1 in the order us-central1, europe-west1, asia-east1 is us-central1.
		await expect.poll(async () => (await status(a)).health[c.name]?.health, { timeout: 10_000, interval: 50 }).toBe("down");
		const detectedMs = Date.now() - lostAt;
		await expect.poll(async () => (await ownerOf(a, c.name))?.owner, { timeout: 15_000, interval: 50 }).toBe(a.name);
		const takenMs = Date.now() - lostAt;
		expect((await ownerOf(a, c.name))!.epoch).toBe(before.epoch + 1);
		// The other survivor knows it too (it voted), so it forwards c's writes to a.
		expect(await ownerOf(b, c.name)).toMatchObject({ owner: a.name, epoch: before.epoch + 1 });
		console.log(`asia-east1 lost: down after ${detectedMs} ms, taken over after ${takenMs} ms`);

		// A change c wrote under its old epoch that its log takes only now (a publish in flight when c was cut off)
		// counts for no one: the takeover fenced c's log, so both survivors skip it.
		const copy = (await a.db.pool.query(`SELECT api_supply(s) AS p FROM supplies s WHERE id = $1`, [supply.id])).rows[0].p;
		const late: ReplEvent = {
			eventId: randomUUID(), aggregateType: "supply", aggregateId: supply.id, version: copy.version + 1, type: "SupplyPaused", region: c.name,
			homeRegion: c.name, epoch: before.epoch, txId: "1", schemaVersion: 1, createdAt: new Date().toISOString(), payload: { ...copy, status: "paused", version: copy.version + 1 },
		};
		await replicationOf(a).owned.log.publish(c.name, [late]);
		const fencedIn = async (r: TestRegion) =>
			(await r.db.pool.query(`SELECT coalesce(sum(skipped), 0)::int AS n FROM log_fences WHERE source = $1 AND home_region = $1 AND epoch = $2`, [c.name, before.epoch + 1])).rows[0].n;
		await expect.poll(() => fencedIn(a), { timeout: 10_000 }).toBe(1);
		await expect.poll(() => fencedIn(b), { timeout: 10_000 }).toBe(1);
		for (const r of [a, b])
			expect((await r.db.pool.query(`SELECT status, version FROM supplies WHERE id = $1`, [supply.id])).rows).toEqual([{ status: "active", version: copy.version }]);

		// c's supply is written again, through either survivor, by the successor; a claim uses it locally in a.
		const pause = await (await Client.as(b.apiUrl, "max")).post(`/api/v1/supplies/${supply.id}/pause`);
		expect([pause.status, pause.body]).toEqual([200, expect.anything()]);
		expect(pause.headers.get("x-region")).toBe(a.name);
		expect(pause.body).toMatchObject({ status: "paused", homeRegion: c.name });
		expect((await (await Client.as(a.apiUrl, "max")).post(`/api/v1/supplies/${supply.id}/resume`)).status).toBe(200);
		const claim = await (await Client.as(b.apiUrl, "max")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": randomUUID() });
		expect(claim.status).toBe(201);
		const rows = await converged({ ...rs, regions: [a, b] }, 15_000);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.500000000000000000", version: 4 });

		// c returns: it learns who owns its entities, catches up, and gets them back under the epoch after.
		const backAt = Date.now();
		await rs.restart(c.name);
		await expect
			.poll(async () => (({ owner, epoch }) => ({ owner, epoch }))((await ownerOf(c, c.name))!), { timeout: 30_000, interval: 100 })
			.toEqual({ owner: c.name, epoch: before.epoch + 2 });
		console.log(`asia-east1 back: owns its entities again after ${Date.now() - backAt} ms`);
		await expect.poll(async () => (await ownerOf(a, c.name))?.owner, { timeout: 10_000 }).toBe(c.name);
		await expect.poll(async () => (await ownerOf(b, c.name))?.owner, { timeout: 10_000 }).toBe(c.name);
		// Its first writes carry the new epoch; every region ends equal, and the checkers find nothing.
		await expect.poll(async () => (await (await Client.as(c.apiUrl, "max")).post(`/api/v1/supplies/${supply.id}/pause`)).status, { timeout: 10_000 }).toBe(200);
		const final = await converged(rs, 20_000);
		expect(final.supplies.find(s => s.id === supply.id)).toMatchObject({ status: "paused", version: 6 });
		// a's claim reserved c's supply directly while a wrote it; handing it back, a made that reservation a hold
		// (version 5), so c moves the funds when the claim ends, wherever it ends.
		for (const r of rs.regions)
			expect((await r.db.pool.query(`SELECT amount::text, status FROM holds WHERE claim_id = $1`, [claim.body.id])).rows).toEqual([
				{ amount: "0.500000000000000000", status: expect.stringMatching(/^(held|confirmed)$/) },
			]);
		// Who wrote each version, under which epoch: c created it, a wrote it while c was away, c again after.
		const written = async (r: TestRegion) =>
			(await r.db.pool.query(`SELECT aggregate_version, epoch FROM outbox WHERE aggregate_id = $1 ORDER BY aggregate_version`, [supply.id])).rows.map(x => [
				x.aggregate_version,
				Number(x.epoch),
			]);
		expect(await written(c)).toEqual([
			[1, before.epoch],
			[6, before.epoch + 2],
		]);
		expect(await written(a)).toEqual([
			[2, before.epoch + 1],
			[3, before.epoch + 1],
			[4, before.epoch + 1],
			[5, before.epoch + 1],
		]);
		const pools = rs.regions.map(r => r.db.pool);
		expect((await checkInvariants(pools)).violations).toEqual([]);
		expect((await checkHistory(pools)).violations).toEqual([]);
	});

	it("a returning region keeps what the log took before the cut though it never marked it, and supersedes only the rest", async () => {
		const [a, , c] = rs.regions;
		const rue = await Client.as(c.apiUrl, "rue");
		const supply = (await rue.post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		await converged(rs, 15_000);
		// c's relay stops; of two changes, the log takes the first (a batch published, then c lost before marking it).
		await replicationOf(c).relay.stop();
		expect((await rue.post(`/api/v1/supplies/${supply.id}/pause`)).status).toBe(200);
		expect((await rue.post(`/api/v1/supplies/${supply.id}/resume`)).status).toBe(200);
		const { rows } = await c.db.pool.query(
			`SELECT id::text, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, tx_id::text,
			        schema_version, created_at, payload FROM outbox WHERE aggregate_id = $1 AND published_at IS NULL ORDER BY id`,
			[supply.id],
		);
		expect(rows.map(r => r.aggregate_version)).toEqual([2, 3]);
		await replicationOf(c).owned.log.publish(c.name, [toReplEvent(rows[0])]);
		const versionIn = async (r: TestRegion) => (await r.db.pool.query(`SELECT status, version FROM supplies WHERE id = $1`, [supply.id])).rows[0];
		await expect.poll(() => versionIn(a), { timeout: 10_000 }).toEqual({ status: "paused", version: 2 });

		let taken = 0;
		await rs.restart(c.name, async () => {
			// Taken over while away; the successor writes on top of what it saw (version 2).
			await expect.poll(async () => (await ownerOf(a, c.name))?.owner, { timeout: 15_000, interval: 50 }).toBe(a.name);
			taken = (await ownerOf(a, c.name))!.epoch;
			const resumed = await (await Client.as(a.apiUrl, "rue")).post(`/api/v1/supplies/${supply.id}/resume`);
			expect([resumed.status, resumed.body.version]).toEqual([200, 3]);
		});
		// Back, c's own row still names it (under the lost epoch) until it learns better: wait for the fail-back's epoch.
		await expect
			.poll(async () => (({ owner, epoch }) => ({ owner, epoch }))((await ownerOf(c, c.name))!), { timeout: 30_000, interval: 100 })
			.toEqual({ owner: c.name, epoch: taken + 1 });
		// Its version 2 was seen by the others: published, not superseded. Its version 3 was not: superseded.
		const { rows: mine } = await c.db.pool.query(
			`SELECT aggregate_version AS v, published_at IS NOT NULL AS published, superseded_at IS NOT NULL AS superseded FROM outbox
			  WHERE aggregate_id = $1 AND region = $2 ORDER BY id`,
			[supply.id, c.name],
		);
		expect(mine).toEqual([
			{ v: 1, published: true, superseded: false },
			{ v: 2, published: true, superseded: false },
			{ v: 3, published: true, superseded: true },
		]);
		const final = await converged(rs, 20_000);
		expect(final.supplies.find(s => s.id === supply.id)).toMatchObject({ status: "active", version: 3 });
		const pools = rs.regions.map(r => r.db.pool);
		expect((await checkInvariants(pools)).violations).toEqual([]);
		expect((await checkHistory(pools)).violations).toEqual([]);
	});
});
