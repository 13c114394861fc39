// One active failover role per region (services/regions.service.ts, src/regions/role-lock.ts): two nodes of one
// region run the region role over real NATS and PostgreSQL; one holds the role lock and runs `regions`, the other
// stands by and takes over when the active one's database session ends or its node stops. The drill
// `npm run drill -- watcher` kills the active node's process on the local cluster.
import { randomBytes } from "node:crypto";
import { type Service, ServiceBroker, type ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerOptions } from "../../moleculer.config";
import RegionRole, { type RegionsStatus } from "../../services/regions.service";
import type { Promises } from "../../src/regions/lease";
import { type RoleLock, roleHolder } from "../../src/regions/role-lock";
import { serviceContext } from "../../src/lib/request-context";
import { RoleFollowerMixin } from "../../mixins/role-follower.mixin";
import { testConfig } from "../helpers/cluster";
import { createTestDatabase, type TestDatabase } from "../helpers/db";

const REGION = "asia-east1";
const REGIONS = "us-central1,europe-west1,asia-east1";

type RegionsLocal = Service & { startedAt: number; promises: Promises; holds(): boolean; role: { lock: RoleLock; holdMs: number } };

let db: TestDatabase;
let namespace: string;
const brokers = new Map<string, ServiceBroker>();

function node(nodeID: string, only?: ServiceSchema) {
	const cfg = testConfig({
		databaseUrl: db.url,
		namespace,
		nats: true,
		env: { REGIONS, REGION, FAILOVER: "on", LINK: "memory", REPLICATION: "memory", WATCH_INTERVAL_MS: "200", WATCH_TIMEOUT_MS: "150", LEASE_MS: "1000", LEASE_SAFETY_MS: "100" },
	});
	const b = new ServiceBroker(brokerOptions(cfg, { nodeID, skipProcessEventRegistration: true }));
	b.createService(only ?? (RegionRole as ServiceSchema));
	brokers.set(nodeID, b);
	return b;
}

/** The nodes a broker would send `regions.ping` to. */
const endpoints = (b: ServiceBroker) => (b.registry.getActionEndpoints("regions.ping")?.endpoints ?? []).filter(ep => ep.node.available).map(ep => ep.node.id);
const local = (id: string) => brokers.get(id)?.getLocalService("regions") as RegionsLocal | undefined;
/** The node that runs `regions` (undefined: none, or more than one). */
const active = () => {
	const running = ["role-a", "role-b"].filter(id => brokers.get(id)!.started && local(id));
	return running.length === 1 ? running[0] : undefined;
};
/** Who holds the lock, as PostgreSQL sees it: the session's application_name is the node id. */
const holder = () => roleHolder(db.pool, REGION);

beforeAll(async () => {
	db = await createTestDatabase();
	namespace = `t${randomBytes(4).toString("hex")}`;
	await node("role-a").start();
	await node("role-b").start();
	// A node that calls `regions` (as the link and the gateway do).
	const probe = node("caller", { name: "probe", mixins: [RoleFollowerMixin] });
	await probe.start();
	await Promise.all(["role-a", "role-b"].map(id => brokers.get(id)!.waitForServices("probe", 10_000)));
}, 30_000);
afterAll(async () => {
	await Promise.all([...brokers.values()].filter(b => b.started).map(b => b.stop().catch(() => undefined)));
	await db?.drop();
});

describe("the region role: one active node per region, a standby beside it", () => {
	it("runs `regions` on the node that holds the lock; the standby's callers reach it there", async () => {
		await expect.poll(active, { timeout: 10_000 }).toBeDefined();
		const first = active()!;
		expect(await holder()).toBe(first);
		const other = first === "role-a" ? "role-b" : "role-a";
		expect(local(other)).toBeUndefined();
		// Called by a service of the standby's node (an internal action), it runs on the active node, over NATS.
		const caller = serviceContext({ broker: brokers.get(other)!, name: "api" }); // as that node's gateway would
		await expect.poll(() => caller.call<RegionsStatus>("regions.status").then(s => s.region), { timeout: 5000 }).toBe(REGION);
	});

	it("moves to the standby when the active node's session ends, and the old node stops acting before it knows", async () => {
		const first = active()!;
		const other = first === "role-a" ? "role-b" : "role-a";
		const old = local(first)!;
		// The caller also knows a `regions` node that died without a word (it will be dropped only at the heartbeat
		// timeout): a copy of the active node's description from a node id that never speaks again.
		const caller = brokers.get("caller")!;
		const info = brokers.get(first)!.registry.getLocalNodeInfo(true) as unknown as Record<string, unknown>;
		caller.registry.processNodeInfo({ ...structuredClone(info), sender: "ghost", instanceID: "ghost-1" });
		expect(endpoints(caller)).toContain("ghost");
		// The active node's session ends (its database connection broke): PostgreSQL frees the lock at once.
		const ended = Date.now();
		await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [first]);
		await expect.poll(active, { timeout: 5000, interval: 20 }).toBe(other);
		const movedMs = Date.now() - ended;
		expect(await holder()).toBe(other);
		// The old node gave the role up: its `regions` service is gone, and it acts no more.
		expect(old.holds()).toBe(false);
		// The new one knows nothing of what the old one promised until it last saw the lock: it votes for no one for a
		// lease's length after that (holdMs after its own start).
		const now = local(other)!;
		expect(now.promises.freeAt(REGION)).toBeGreaterThanOrEqual(now.startedAt + now.role.holdMs + 1000);
		console.log(`region role moved in ${movedMs} ms`);
		// The new holder's word reached the caller: it calls only the new holder (not the ghost, whose calls would time out).
		await expect.poll(() => endpoints(caller), { timeout: 2000, interval: 20 }).toEqual([other]);
	});

	it("refuses pings and votes once its lock was last seen more than holdMs ago", async () => {
		const id = active()!;
		const svc = local(id)!;
		// As another region's ping and vote arrive (over the link, signed: here as a trusted service of the node).
		const caller = serviceContext({ broker: brokers.get(id)!, name: "api" });
		const ping = () => caller.call("regions.ping", { from: "us-central1", rows: [], renew: [{ home: "us-central1", epoch: 1 }] }, { nodeID: id });
		const vote = () => caller.call("regions.vote", { home: "us-central1", candidate: "europe-west1", epoch: 2 }, { nodeID: id });
		await expect(ping()).resolves.toMatchObject({ region: REGION });
		// As if its session had broken a moment ago and its next check had not run yet.
		const seenAt = svc.role.lock.seenAt;
		svc.role.lock.seenAt = Date.now() - svc.role.holdMs - 1;
		try {
			await expect(ping()).rejects.toMatchObject({ type: "ROLE_MOVING", code: 503 });
			await expect(vote()).rejects.toMatchObject({ type: "ROLE_MOVING", code: 503 });
		} finally {
			svc.role.lock.seenAt = Math.max(seenAt, svc.role.lock.seenAt);
		}
	});

	it("moves back when the active node stops (a rolling restart)", async () => {
		const first = active()!;
		const other = first === "role-a" ? "role-b" : "role-a";
		await brokers.get(first)!.stop();
		await expect.poll(active, { timeout: 5000, interval: 20 }).toBe(other);
		expect(await holder()).toBe(other);
	});
});
