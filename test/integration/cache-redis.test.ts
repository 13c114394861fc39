// The Redis cache under load of keys: one write's invalidation costs the same few exact-key commands
// with 10 keys in Redis and with 100,000 (MONITOR counts them on a private redis-server), a user's
// write leaves other users' cached lists alone, and a read that raced a write stores nothing.
import Redis from "ioredis";
import pg from "pg";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegion, type Region } from "../helpers/cluster";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { item, tokenFor } from "../helpers/http";
import { freePort, RedisServer } from "../helpers/redis-server";
import { writePlan } from "../../src/lib/cache-keys";
import type { SafeRedisCacher } from "../../src/lib/safe-redis-cacher";

let db: TestDatabase;
let redis: RedisServer;
let region: Region;
let broker: ServiceBroker;
let client: Redis;
let monitor: Redis;
const seen: string[][] = [];

beforeAll(async () => {
	db = await createTestDatabase();
	redis = new RedisServer(await freePort());
	await redis.start();
	region = await startRegion({
		databaseUrl: db.url,
		redisUrl: redis.url,
		nodes: [["api", "supply", "order", "claiming"]],
		env: { SWEEP_INTERVAL_MS: "600000", METRICS_ENABLED: "false" },
	});
	broker = region.brokers[0];
	client = new Redis(redis.url);
	client.on("error", () => undefined);
	// A connection in monitor mode from its start, its errors handled before it connects: ioredis's own monitor()
	// rejected (a failed suite, once in a full run) when another client's command was echoed in the same read as
	// MONITOR's OK, before ioredis had switched the connection's mode.
	monitor = new Redis(redis.url, { monitor: true });
	monitor.on("error", () => undefined);
	await new Promise(resolve => monitor.once("monitoring", resolve));
	monitor.on("monitor", (_time: string, args: string[]) => seen.push(args));
}, 60_000);

afterAll(async () => {
	monitor?.disconnect();
	client?.disconnect();
	await region?.stop();
	await redis?.kill();
	await db?.drop();
});

/** Calls an action as a user, the way the REPL does: with a token. */
async function as<T = any>(userId: string, action: string, params: Record<string, unknown>): Promise<T> {
	return broker.call(action, params, { meta: { token: await tokenFor(userId) } });
}

/** The Redis commands `write` sends (MONITOR sees every client; only the cacher talks to Redis here). */
async function commandsOf(write: () => Promise<unknown>): Promise<string[][]> {
	// Markers on both sides, sent on the cacher's own connection after what it already issued: earlier commands (a
	// read's cache set is not awaited, and leaves with the next tick's pipeline) stay out.
	const mark = async () => {
		const marker = `mark-${Math.random()}`;
		await (broker.cacher as any).client.echo(marker);
		await expect.poll(() => seen.findIndex(a => a[0] === "echo" && a[1] === marker), { timeout: 5000 }).toBeGreaterThan(-1);
		return seen.findIndex(a => a[0] === "echo" && a[1] === marker);
	};
	const from = await mark();
	await write();
	const to = await mark();
	return seen.slice(from + 1, to);
}

async function fill(n: number, prefix: string) {
	for (let i = 0; i < n; i += 1000) {
		const kv: string[] = [];
		for (let j = i; j < Math.min(n, i + 1000); j++) kv.push(`${prefix}unrelated.find:${j}`, "x");
		await client.mset(...kv);
	}
}

/** One claim (with its cached order, supply and lists warm), returning the commands it cost. */
async function claimCost(tag: string) {
	const shopper = `shopper-${tag}`;
	const buyer = `buyer-${tag}`;
	const s = await as(shopper, "supply.create", { asset: "ETH", amount: "5" });
	const o = await as(buyer, "order.create", { asset: "ETH", items: [item("1")] });
	await as(buyer, "order.get", { id: o.id });
	await as(shopper, "supply.get", { id: s.id });
	await as(shopper, "supply.list", {});
	await as(buyer, "order.list", { mine: true });
	await as(shopper, "order.list", {});
	const claim = await commandsOf(() => as(shopper, "claiming.claim", { orderId: o.id, supplyId: s.id, idempotencyKey: `k-${tag}` }));
	const supplyWrite = await commandsOf(() => as(shopper, "supply.update", { id: s.id, amount: "6" }));
	const create = await commandsOf(() => as(shopper, "supply.create", { asset: "ETH", amount: "1" }));
	return { claim, supplyWrite, create };
}

describe("the Redis cost of a write", () => {
	it("is the same few exact-key commands with 10 keys in Redis and with 100,000, and never a scan", async () => {
		const prefix: string = (broker.cacher as any).prefix;
		await client.flushdb();
		await fill(10, prefix);
		const small = await claimCost("small");
		const keysSmall = await client.dbsize();

		await fill(100_000, prefix);
		const large = await claimCost("large");
		const keysLarge = await client.dbsize();

		const names = (cmds: string[][]) => cmds.map(c => c[0]);
		console.log(
			`claim: ${small.claim.length} commands with ${keysSmall} keys in Redis, ${large.claim.length} with ${keysLarge}: ${names(large.claim).join(" ")}\n` +
				`supply update: ${small.supplyWrite.length} commands with ${keysSmall} keys, ${large.supplyWrite.length} with ${keysLarge}: ${names(large.supplyWrite).join(" ")}`,
		);
		expect(keysLarge).toBeGreaterThan(100_000);
		for (const cmds of [small.claim, large.claim, small.supplyWrite, large.supplyWrite]) {
			expect(names(cmds).filter(n => /^(scan|keys|sscan|hscan|flushdb|flushall)$/.test(n))).toEqual([]);
			// One MULTI: everything between its multi and exec.
			expect(names(cmds)[0], JSON.stringify(cmds)).toBe("multi");
			expect(names(cmds).at(-1)).toBe("exec");
		}
		expect(names(large.claim)).toEqual(names(small.claim));
		expect(names(large.supplyWrite)).toEqual(names(small.supplyWrite));
		// multi, one DEL of the three find keys, three stale tombstones, four generations, exec.
		expect(small.claim.length).toBe(10);
		// multi, del, tombstone, the owner's supply-list generation, exec.
		expect(small.supplyWrite.length).toBe(5);
		// A creation: nothing of the new supply can be cached but its absence, so no tombstone.
		expect(names(small.create)).toEqual(["multi", "del", "incr", "exec"]);
		expect(large.supplyWrite.filter(c => c[0] === "incr").map(c => c[1])).toEqual([expect.stringMatching(/~gen:supply:own:shopper-large$/)]);
	}, 120_000);
});

describe("list invalidation", () => {
	it("a supply write leaves other users' cached supply lists alone, and refreshes the writer's", async () => {
		const sql = new pg.Client({ connectionString: db.url });
		await sql.connect();
		try {
			const a = await as("iso-a", "supply.create", { asset: "ETH", amount: "1" });
			expect((await as("iso-a", "supply.list", {})).rows[0].amount).toBe("1");
			// Behind the cache's back: a cached list keeps showing 1.
			await sql.query(`UPDATE supplies SET amount = 7 WHERE id = $1`, [a.id]);
			expect((await as("iso-a", "supply.list", {})).rows[0].amount).toBe("1");

			await as("iso-b", "supply.create", { asset: "ETH", amount: "2" });
			await as("iso-b", "supply.pause", { id: (await as("iso-b", "supply.list", {})).rows[0].id });
			expect((await as("iso-a", "supply.list", {})).rows[0].amount).toBe("1");

			await as("iso-a", "supply.create", { asset: "ETH", amount: "3" });
			const own = await as("iso-a", "supply.list", {});
			expect(own.total).toBe(2);
			expect(own.rows.map((r: any) => r.amount).sort()).toEqual(["3", "7"]);
		} finally {
			await sql.end();
		}
	});
});

describe("stale copies in Redis", () => {
	it("a claim tombstones the order's stale copy; the next read stores the claimed state", async () => {
		const cacher = broker.cacher as unknown as SafeRedisCacher;
		const s = await as("stale-shopper", "supply.create", { asset: "ETH", amount: "5" });
		const o = await as("stale-buyer", "order.create", { asset: "ETH", items: [item("1")] });
		expect((await as("stale-buyer", "order.get", { id: o.id })).status).toBe("open");
		expect(await cacher.readStale(`order.stale:${o.id}`)).toMatchObject({ status: "open" });
		await as("stale-shopper", "claiming.claim", { orderId: o.id, supplyId: s.id, idempotencyKey: "stale-r" });
		expect(await cacher.readStale(`order.stale:${o.id}`)).toBeUndefined();
		expect((await as("stale-buyer", "order.get", { id: o.id })).status).toBe("claimed");
		expect(await cacher.readStale(`order.stale:${o.id}`)).toMatchObject({ status: "claimed" });
	});
});

describe("a failed invalidation", () => {
	it("is sent again with the next write", async () => {
		const cacher = broker.cacher as unknown as SafeRedisCacher;
		const redisClient = (cacher as any).client;
		const multi = redisClient.multi;
		redisClient.multi = function (this: unknown, ...args: unknown[]) {
			redisClient.multi = multi;
			const m = multi.apply(this, args);
			m.exec = () => Promise.reject(new Error("Command timed out"));
			return m;
		};
		const [a0, b0] = (await cacher.readGenerations(["supply:own:fail-a", "supply:own:fail-b"]))!;
		await cacher.applyWrite(writePlan({ supply: { id: "sa", userId: "fail-a" } }));
		expect((await cacher.readGenerations(["supply:own:fail-a"]))![0]).toBe(a0);
		await cacher.applyWrite(writePlan({ supply: { id: "sb", userId: "fail-b" } }));
		const [a1, b1] = (await cacher.readGenerations(["supply:own:fail-a", "supply:own:fail-b"]))!;
		expect(a1).not.toBe(a0);
		expect(b1).not.toBe(b0);
	});
});

describe("invalidations of writes that finish together", () => {
	it("leave in one MULTI behind the one in flight, and each write's keys are gone when its call resolves", async () => {
		const cacher = broker.cacher as unknown as SafeRedisCacher;
		const redisClient = (cacher as any).client;
		// Each MULTI is held 30 ms before it leaves, so a call that resolved before its MULTI ran would be seen.
		const multi = redisClient.multi;
		redisClient.multi = function (this: unknown, ...args: unknown[]) {
			const m = multi.apply(this, args);
			const exec = m.exec.bind(m);
			m.exec = () => new Promise(r => setTimeout(r, 30)).then(() => exec());
			return m;
		};
		try {
			const users = Array.from({ length: 10 }, (_, i) => `group-${i}`);
			const keys = users.map(u => `supply:own:${u}`);
			const before = (await cacher.readGenerations(keys))!;
			const atResolve: (string | null)[] = [];
			const commands = await commandsOf(() =>
				Promise.all(
					users.map((u, i) =>
						cacher.applyWrite(writePlan({ supply: { id: `g${i}`, userId: u } })).then(async () => {
							atResolve[i] = await client.get(cacher.genPrefix + keys[i]);
						}),
					),
				),
			);
			// The first write's MULTI leaves at once; the nine that came while it was in flight leave together.
			expect(commands.filter(c => c[0] === "multi")).toHaveLength(2);
			expect(commands.filter(c => c[0] === "incr" && keys.some(k => c[1].endsWith(k)))).toHaveLength(10);
			users.forEach((_, i) => expect(atResolve[i] ?? "0").not.toBe(before[i]));
		} finally {
			redisClient.multi = multi;
		}
	});
});

describe("a read that raced a write", () => {
	it("stores neither the entity nor its stale copy", async () => {
		const cacher = broker.cacher as unknown as SafeRedisCacher;
		const id = "00000000-0000-4000-8000-00000000abcd";
		const find = { key: `order.find:${id}`, ttl: 30 };
		const stale = { key: `order.stale:${id}`, ttl: 60 };
		const before = await cacher.staleToken(stale.key);
		expect(before).toBe("");
		// The write commits and invalidates while the read is at the database.
		await cacher.applyWrite(writePlan({ order: id }));
		expect(await cacher.saveFound(find, stale, before!, { id, status: "open" })).toBe(false);
		expect(await cacher.readStale(stale.key)).toBeUndefined();
		expect(await cacher.get(find.key)).toBeUndefined();

		// A read that started after the write stores both.
		const after = await cacher.staleToken(stale.key);
		expect(await cacher.saveFound(find, stale, after!, { id, status: "claimed" })).toBe(true);
		expect(await cacher.readStale(stale.key)).toEqual({ id, status: "claimed" });
		expect(await cacher.get(find.key)).toEqual({ id, status: "claimed" });
	});
});
