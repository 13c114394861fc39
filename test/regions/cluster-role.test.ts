// The region role on nodes of its own, as processes (`npm run cluster -- up --failover --watchers 2`, as README says):
// SIGKILL the node that acts for a region, and its standby takes the role over before any other region sees the
// region down; nothing moves and the region's writes go on. The drill `npm run drill -- watcher` does the same under
// load and checks the histories.
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roleHolder } from "../../src/regions/role-lock";
import { topicFor } from "../../src/replication/event-log";
import { clusterUp, type LocalCluster } from "../helpers/local-cluster";

let cl: LocalCluster;

beforeAll(async () => {
	// One partition a region's topic, as the lag bench runs it (the cluster's other tests keep the default four).
	cl = await clusterUp({ regions: 3, nodes: 1, up: ["--failover", "--durability", "replicated", "--watchers", "2", "--partitions", "1"] });
}, 240_000);
afterAll(async () => cl?.down(), 60_000);

interface RegionsView {
	regions: { name: string; health: string; owner: string; epoch: number; leaseRemainingMs?: number | null }[];
}

describe("the region role on two nodes of its own, one active (local cluster, processes)", () => {
	it("runs each region's event topic with the partitions `up --partitions` asked for", async () => {
		const status = JSON.parse((await cl.cmd("status")).stdout);
		expect(status.kafka.partitions).toBe(1);
		const admin = new Kafka({ brokers: status.kafka.bootstrap, logLevel: logLevel.NOTHING }).admin();
		await admin.connect();
		try {
			const { topics } = await admin.fetchTopicMetadata({ topics: cl.regions.map(r => topicFor(cl.name, r.name)) });
			const byName = (a: [string, number], b: [string, number]) => a[0].localeCompare(b[0]);
			expect(topics.map((t): [string, number] => [t.name, t.partitions.length]).sort(byName)).toEqual(cl.regions.map((r): [string, number] => [topicFor(cl.name, r.name), 1]).sort(byName));
		} finally {
			await admin.disconnect();
		}
	});

	it("moves to the standby when the active node is killed, before another region sees the region down", async () => {
		const [a, b, c] = cl.regions;
		const pool = cl.pools[2];
		const active = await roleHolder(pool, c.name);
		expect([`${c.name}-w0`, `${c.name}-w1`]).toContain(active);
		const standby = active === `${c.name}-w0` ? `${c.name}-w1` : `${c.name}-w0`;
		const views = async () =>
			Promise.all(
				[a, b].map(async r => ((await (await cl.as(r, "role-watch")).get("/api/v1/regions")).body as RegionsView).regions.find(x => x.name === c.name)!),
			);
		expect((await views()).map(v => v.health)).toEqual(["up", "up"]);

		const killedAt = Date.now();
		cl.killNodeNow(active!);
		await expect.poll(() => roleHolder(pool, c.name), { timeout: 5000, interval: 20 }).toBe(standby);
		console.log(`region role moved from ${active} to ${standby} in ${Date.now() - killedAt} ms`);
		// For three watch intervals and more (WATCH_FAILURES = 3 pings), neither survivor marks the region down, and
		// no one takes its entities over.
		const seen = new Set<string>();
		for (const until = killedAt + 4000; Date.now() < until; await new Promise(r => setTimeout(r, 100)))
			for (const v of await views()) {
				seen.add(v.health);
				expect(v).toMatchObject({ owner: c.name, epoch: 1 });
			}
		expect(seen.has("down")).toBe(false);
		// The region still writes its own entities (under a lease the new active node renews).
		const write = await (await cl.as(c, "role-shopper")).post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(write.status).toBe(201);
		const own = ((await (await cl.as(c, "role-watch")).get("/api/v1/regions")).body as RegionsView).regions.find(x => x.name === c.name)!;
		expect(own.leaseRemainingMs).toBeGreaterThan(0);
	}, 60_000);

	it("brings the killed node back as the standby", async () => {
		const c = cl.regions[2];
		const before = await roleHolder(cl.pools[2], c.name);
		await cl.cmd("start", c.name);
		const status = JSON.parse((await cl.cmd("status")).stdout) as { regions: { name: string; activeRole: string; nodes: { nodeID: string; alive: boolean }[] }[] };
		const region = status.regions.find(r => r.name === c.name)!;
		expect(region.nodes.every(n => n.alive)).toBe(true);
		expect(region.activeRole).toBe(before);
	}, 60_000);
});
