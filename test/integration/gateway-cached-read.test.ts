// GET of one order, supply or claim is answered by the gateway from the cache when it can (docs/gateway.md,
// "Cached reads"): the same answer the action gives, to the same callers, after the same writes; and every
// answer the cache cannot give (hidden, missing scope, bad token, miss) still comes from the action.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceBroker } from "moleculer";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item } from "../helpers/http";
import { metricValue } from "../helpers/nodes";
import { RateLimiter } from "../../src/lib/rate-limit";

type TestRegion = Region & { db: TestDatabase };

const CACHED = "wallet.gateway.cached.reads.total";

/** How many GETs the gateway of `broker` answered from the cache, for `entity`. */
const served = (broker: ServiceBroker, entity: string) => metricValue(broker, CACHED, { entity });

/** The headers a client can tell apart (Date and the rate limit's remaining count move with every request). */
function headersOf(reply: { headers: Headers }) {
	const h: Record<string, string> = {};
	reply.headers.forEach((v, k) => {
		if (!["date", "x-ratelimit-remaining", "x-request-id", "content-length"].includes(k)) h[k] = v;
	});
	return h;
}

describe.each([
	{ name: "one node, memory cache", redis: false, nodes: [["api", "supply", "order", "claiming"]] as const },
	{ name: "a gateway node without the services, Redis cache", redis: true, nodes: [["api"], ["supply", "order", "claiming"]] as const },
])("cached reads: $name", ({ redis, nodes }) => {
	let region: TestRegion;
	let gateway: ServiceBroker;
	let bob: Client, alice: Client, carol: Client;

	beforeAll(async () => {
		region = await startTestRegion({ nodes: nodes.map(n => [...n]), ...(redis ? { redisUrl: REDIS_URL } : {}) });
		gateway = region.brokers[0];
		[bob, alice, carol] = await Promise.all(["cr-bob", "cr-alice", "cr-carol"].map(u => Client.as(region.apiUrl, u)));
	});

	afterAll(async () => {
		await region?.stop();
	});

	it("answers a repeated GET from the cache, with the action's status, body and headers", async () => {
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] });
		expect(order.status).toBe(201);
		const path = `/api/v1/orders/${order.body.id}`;
		const before = served(gateway, "order");
		const first = await bob.get(path, { "X-Request-ID": "cr-first" });
		const [gets, hits] = [metricValue(gateway, "moleculer.cacher.get.total"), metricValue(gateway, "moleculer.cacher.found.total")];
		const second = await bob.get(path, { "X-Request-ID": "cr-second" });
		// The first filled the cache through the action; the second came from it, a cache hit like any other.
		expect(served(gateway, "order")).toBe(before + 1);
		expect([metricValue(gateway, "moleculer.cacher.get.total"), metricValue(gateway, "moleculer.cacher.found.total")]).toEqual([gets + 1, hits + 1]);
		expect(second.status).toBe(200);
		expect(second.body).toEqual(first.body);
		expect(second.body).toEqual(order.body);
		expect(headersOf(second)).toEqual(headersOf(first));
		expect(second.headers.get("x-region")).toBe(region.cfg.region);
		expect(second.headers.get("content-type")).toBe("application/json; charset=utf-8");
		expect(second.headers.get("x-request-id")).toBe("cr-second");
		// Counted against the user's budget like any request.
		expect(Number(second.headers.get("x-ratelimit-remaining"))).toBe(Number(first.headers.get("x-ratelimit-remaining")) - 1);
	});

	it("shows another user what the action shows them, and hides what it hides", async () => {
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.25")] });
		const path = `/api/v1/orders/${order.body.id}`;
		await bob.get(path); // fills the cache
		const before = served(gateway, "order");
		// An open order is public to order:read, without its buyer's id.
		const seen = await alice.get(path);
		expect(seen.status).toBe(200);
		expect(seen.body.userId).toBeUndefined();
		expect(seen.body).toEqual(Object.fromEntries(Object.entries(order.body).filter(([k]) => k !== "userId")));
		expect(served(gateway, "order")).toBe(before + 1);

		// Claimed by carol, it is no longer alice's to see: 404 from the action, not the cache's copy.
		const supply = await carol.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		const claim = await carol.post("/api/v1/claims", { orderId: order.body.id, supplyId: supply.body.id }, { "Idempotency-Key": `cr-${order.body.id}` });
		expect(claim.status).toBe(201);
		expect((await carol.get(path)).body.status).toBe("claimed");
		const n = served(gateway, "order");
		const hidden = await alice.get(path);
		expect(hidden.status).toBe(404);
		expect(hidden.body.error.code).toBe("ORDER_NOT_FOUND");
		expect(served(gateway, "order")).toBe(n);

		// A supply and a claim are their owner's alone.
		const supplyPath = `/api/v1/supplies/${supply.body.id}`;
		const claimPath = `/api/v1/claims/${claim.body.id}`;
		expect((await carol.get(supplyPath)).status).toBe(200);
		expect((await carol.get(claimPath)).status).toBe(200);
		const [supplies, claims] = [served(gateway, "supply"), served(gateway, "claiming")];
		const mine = await carol.get(supplyPath);
		expect(mine.body).toMatchObject({ id: supply.body.id, reserved: "0.25" });
		expect((await carol.get(claimPath)).body).toMatchObject({ id: claim.body.id, status: "active" });
		expect([served(gateway, "supply"), served(gateway, "claiming")]).toEqual([supplies + 1, claims + 1]);
		for (const [p, code] of [[supplyPath, "SUPPLY_NOT_FOUND"], [claimPath, "CLAIM_NOT_FOUND"]]) {
			const other = await alice.get(p);
			expect(other.status).toBe(404);
			expect(other.body.error.code).toBe(code);
		}
		expect([served(gateway, "supply"), served(gateway, "claiming")]).toEqual([supplies + 1, claims + 1]);
	});

	it("reads what the last write left, never the copy from before it", async () => {
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")] });
		const path = `/api/v1/orders/${order.body.id}`;
		await bob.get(path);
		expect((await bob.get(path)).body.status).toBe("open"); // from the cache
		expect((await bob.post(`${path}/cancel`)).status).toBe(200);
		const after = await bob.get(path);
		expect(after.body.status).toBe("cancelled");
		expect(after.body.version).toBe(order.body.version + 1);
	});

	it("leaves a missing scope, a bad token and a missing token to the action's 403 and 401", async () => {
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.3")] });
		const path = `/api/v1/orders/${order.body.id}`;
		await bob.get(path);
		expect((await bob.get(path)).status).toBe(200);
		const before = served(gateway, "order");
		const noScope = await Client.as(region.apiUrl, "cr-noscope", ["supply:read"]);
		const refused = await noScope.get(path);
		expect(refused.status).toBe(403);
		expect(refused.body.error.code).toBe("MISSING_SCOPE");
		const forged = await new Client(region.apiUrl, "not.a.token").get(path);
		expect(forged.status).toBe(401);
		expect(forged.body.error.code).toBe("INVALID_TOKEN");
		expect((await new Client(region.apiUrl).get(path)).status).toBe(401);
		expect(served(gateway, "order")).toBe(before);
	});

	it("refuses a user over their rate limit with the action path's 429", async () => {
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.2")] });
		const path = `/api/v1/orders/${order.body.id}`;
		await bob.get(path);
		const api = gateway.getLocalService("api") as any;
		const limiter = api.rateLimiter;
		api.rateLimiter = new RateLimiter({ points: 1, windowSec: 3600, keyPrefix: "cr-test" });
		try {
			const before = served(gateway, "order");
			expect((await bob.get(path)).status).toBe(200);
			const limited = await bob.get(path);
			expect(limited.status).toBe(429);
			expect(limited.body.error.code).toBe("RATE_LIMITED");
			expect(limited.headers.get("x-region")).toBe(region.cfg.region);
			expect(limited.headers.get("x-ratelimit-remaining")).toBe("0");
			expect(served(gateway, "order")).toBe(before + 1);
		} finally {
			api.rateLimiter = limiter;
		}
	});
});

describe("cached reads turned off (CACHED_READS=false)", () => {
	let region: TestRegion;
	afterAll(async () => {
		await region?.stop();
	});

	it("answers every GET through the action", async () => {
		region = await startTestRegion({ nodes: [["api", "supply", "order", "claiming"]], env: { CACHED_READS: "false" } });
		const bob = await Client.as(region.apiUrl, "cr-off-bob");
		const order = await bob.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] });
		for (let i = 0; i < 3; i++) expect((await bob.get(`/api/v1/orders/${order.body.id}`)).body).toEqual(order.body);
		expect(served(region.brokers[0], "order")).toBe(0);
	});
});
