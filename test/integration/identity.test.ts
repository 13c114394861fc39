// Who may act, as seen from the transporter (docs/security.md): a region of three nodes over NATS
// (gateway; supply+order; claiming), and a bare ServiceBroker on the same namespace, as any process
// on the bus (or `npm run repl`) would be. Nothing it merely states (meta.user, caller) is believed.
import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { NATS_URL, TEST_INTERNAL_SECRET } from "../helpers/env";
import { Client, item, tokenFor } from "../helpers/http";
import { identityFor } from "../../src/lib/identity";

let region: Region & { db: TestDatabase };
let peer: ServiceBroker;
let shopper: Client, buyer: Client;

const admin = { id: "buyer-1", scopes: ["admin"] };
const forgedUser = { meta: { user: admin } };

beforeAll(async () => {
	region = await startTestRegion({
		nats: true,
		nodes: [["api"], ["supply", "order"], ["claiming"]],
		env: { SWEEP_INTERVAL_MS: "100", RATE_LIMIT: "10000" },
	});
	shopper = await Client.as(region.apiUrl, "shopper-1");
	buyer = await Client.as(region.apiUrl, "buyer-1");
	peer = new ServiceBroker({
		namespace: region.namespace,
		nodeID: `peer-${randomBytes(3).toString("hex")}`,
		transporter: { type: "NATS", options: { url: NATS_URL } },
		logger: false,
		requestTimeout: 5000,
		// A raw peer: without Moleculer's own Fallback, which would try a remote action's fallback here.
		internalMiddlewares: false,
	});
	await peer.start();
	await peer.waitForServices(["supply", "order", "claiming"], 15_000);
}, 60_000);

afterAll(async () => {
	await peer?.stop();
	await region?.stop();
});

async function created(r: { status: number; body: any }) {
	expect(r.status, JSON.stringify(r.body)).toBe(201);
	return r.body;
}

/** A supply of shopper-1, an order of buyer-1, and shopper-1's claim on it, all through REST. */
async function claimedOrder() {
	const s = await created(await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "5" }));
	const o = await created(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] }));
	const key = randomBytes(8).toString("hex");
	const c = await created(await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": key }));
	return { s, o, c };
}

/** An assertion as a forger would build one: any claims, any key (the right one only in control cases). */
function assertion(o: { typ: string; sub: string; rid: string; key?: string; exp?: number; node?: string; scope?: string[] }) {
	return new SignJWT({ rid: o.rid, ...(o.scope ? { scope: o.scope } : {}), ...(o.node ? { node: o.node } : {}) })
		.setProtectedHeader({ alg: "HS256", typ: o.typ })
		.setSubject(o.sub)
		.setAudience(region.namespace)
		.setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 30)
		.sign(new TextEncoder().encode(o.key ?? TEST_INTERNAL_SECRET));
}
const userAssertion = (o: Omit<Parameters<typeof assertion>[0], "typ">) => assertion({ ...o, typ: "wallet-user+jwt" });
const serviceAssertion = (o: Omit<Parameters<typeof assertion>[0], "typ">) => assertion({ ...o, typ: "wallet-service+jwt" });
const WRONG_KEY = "not-the-internal-secret-0123456789abcdef";

describe("a peer on the transporter with a forged meta.user", () => {
	it("cannot complete an order, run the order actor, or read a supply, even as admin", async () => {
		const { s, o } = await claimedOrder();
		await expect(peer.call("order.complete", { id: o.id }, forgedUser)).rejects.toMatchObject({ code: 401 });
		await expect(peer.call("claiming.command", { op: "complete", orderId: o.id }, forgedUser)).rejects.toMatchObject({
			code: 403,
			type: "INTERNAL_ACTION",
		});
		await expect(peer.call("supply.get", { id: s.id }, { meta: { user: { id: "shopper-1", scopes: ["supply:read"] } } })).rejects.toMatchObject({
			code: 401,
		});
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
	});

	it("is ignored in-process too (npm start -- --repl): a top-level call is no service, and meta.user no credential", async () => {
		const { s, o } = await claimedOrder();
		const node = region.brokers[1]; // supply + order
		await expect(node.call("supply.get", { id: s.id }, { meta: { user: { id: "shopper-1", scopes: ["admin"] } } })).rejects.toMatchObject({
			code: 401,
		});
		await expect(node.call("supply.find", { id: s.id }, { caller: "supply" })).rejects.toMatchObject({ code: 403 });
		await expect(node.call("order.complete", { id: o.id }, forgedUser)).rejects.toMatchObject({ code: 401 });
	});

	it("cannot pass for a service by naming itself as the caller", async () => {
		const { s, o } = await claimedOrder();
		await expect(
			peer.call("claiming.command", { op: "complete", orderId: o.id }, { ...forgedUser, caller: "order" }),
		).rejects.toMatchObject({ code: 403, type: "INTERNAL_ACTION" });
		// Read once through REST, so a stale copy exists for supply.find's fallback to answer with.
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).status).toBe(200);
		await expect(peer.call("supply.find", { id: s.id }, { caller: "supply" })).rejects.toMatchObject({
			code: 403,
			type: "INTERNAL_ACTION",
		});
		await expect(peer.call("claiming.command", { op: "release", orderId: o.id }, { caller: "claiming" })).rejects.toMatchObject({
			code: 403,
		});
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
	});
});

describe("a peer acting through a token (the REPL)", () => {
	it("acts as the token's user, and only as that user", async () => {
		const { s, o } = await claimedOrder();
		const shopperToken = await tokenFor("shopper-1");
		await expect(peer.call("supply.get", { id: s.id }, { meta: { token: shopperToken } })).resolves.toMatchObject({ id: s.id });
		// A token beats a forged meta.user next to it: the token's user is the one who acts.
		await expect(
			peer.call("supply.get", { id: s.id }, { meta: { token: await tokenFor("stranger-1"), user: { id: "shopper-1", scopes: ["admin"] } } }),
		).rejects.toMatchObject({ code: 404 });
		await expect(peer.call("order.complete", { id: o.id }, { meta: { token: shopperToken } })).rejects.toMatchObject({ code: 403 });
		// The buyer's token completes it: order (node 2) calls the order actor (node 3) as a service.
		const done: any = await peer.call("order.complete", { id: o.id }, { meta: { token: await tokenFor("buyer-1") } });
		expect(done.status).toBe("completed");
		expect((await shopper.get(`/api/v1/supplies/${s.id}`)).body).toMatchObject({ reserved: "0", spent: "0.5" });
	});

	it("still cannot call internal actions, admin token or not", async () => {
		const { o } = await claimedOrder();
		const root = await tokenFor("root", ["admin"]);
		await expect(peer.call("claiming.command", { op: "cancel", orderId: o.id }, { meta: { token: root } })).rejects.toMatchObject({
			code: 403,
			type: "INTERNAL_ACTION",
		});
	});
});

describe("forged assertions", () => {
	it("a user assertion is refused when signed with another key, expired, or for another request", async () => {
		const { s } = await claimedOrder();
		const claims = { sub: "shopper-1", scope: ["supply:read"], rid: "req-a" };
		const call = (a: string, requestID = "req-a") => peer.call("supply.get", { id: s.id }, { meta: { assertion: a }, requestID });
		const refused = { code: 401, type: "INVALID_ASSERTION" };
		await expect(call(await userAssertion({ ...claims, key: WRONG_KEY }))).rejects.toMatchObject(refused);
		await expect(call(await userAssertion({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 }))).rejects.toMatchObject(refused);
		await expect(call(await userAssertion(claims), "req-b")).rejects.toMatchObject(refused);
		// Control: the same assertion, right key, right request, works (so the refusals above are the key, expiry, request).
		await expect(call(await userAssertion(claims))).resolves.toMatchObject({ id: s.id });
	});

	it("a service assertion is refused when signed with another key or for another node", async () => {
		const { o } = await claimedOrder();
		const buyerToken = await tokenFor("buyer-1");
		const call = (a: string) =>
			peer.call("claiming.command", { op: "complete", orderId: o.id }, { meta: { token: buyerToken }, headers: { "x-wallet-service": a }, requestID: "req-s" });
		await expect(call(await serviceAssertion({ sub: "order", rid: "req-s", node: peer.nodeID, key: WRONG_KEY }))).rejects.toMatchObject({ code: 401 });
		await expect(call(await serviceAssertion({ sub: "order", rid: "req-s", node: "supply+order-1" }))).rejects.toMatchObject({ code: 401 });
		await expect(call(await serviceAssertion({ sub: "stranger", rid: "req-s", node: peer.nodeID }))).rejects.toMatchObject({ code: 403 });
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("claimed");
		// Control: a holder of INTERNAL_SECRET is a service.
		const done: any = await call(await serviceAssertion({ sub: "order", rid: "req-s", node: peer.nodeID }));
		expect(done.order.status).toBe("completed");
	});
});

describe("what must keep working", () => {
	it("the REST flow end to end across three nodes: supply, order, claim, release, claim again, complete", async () => {
		const { s, o, c } = await claimedOrder();
		expect((await shopper.get(`/api/v1/claims/${c.id}`)).body.status).toBe("active");
		expect((await shopper.post(`/api/v1/claims/${c.id}/release`)).body.status).toBe("released");
		expect((await buyer.get(`/api/v1/orders/${o.id}`)).body.status).toBe("open");
		await created(await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "again" }));
		const done = await buyer.post(`/api/v1/orders/${o.id}/complete`);
		expect(done.status, JSON.stringify(done.body)).toBe(200);
		expect(done.body.status).toBe("completed");
		const list = await shopper.get("/api/v1/supplies");
		expect(list.body.rows.map((r: any) => r.id)).toContain(s.id);
		const cancelled = await created(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] }));
		expect((await buyer.post(`/api/v1/orders/${cancelled.id}/cancel`)).body.status).toBe("cancelled");
	});

	it("the gateway verifies a bearer token once, then from its cache until the token expires", async () => {
		// Every broker of this region shares one configuration object, so one identity and one cache.
		const cache = identityFor(region.cfg).bearer.cache;
		const reader = await Client.as(region.apiUrl, `cache-reader-${randomBytes(3).toString("hex")}`);
		const [hits, misses] = [cache.hits, cache.misses];
		expect((await reader.get("/api/v1/supplies")).status).toBe(200);
		expect([cache.hits - hits, cache.misses - misses]).toEqual([0, 1]);
		expect((await reader.get("/api/v1/supplies")).status).toBe(200);
		expect((await reader.get("/api/v1/orders")).status).toBe(200);
		expect([cache.hits - hits, cache.misses - misses]).toEqual([2, 1]);
	});

	it("the sweeper, which acts for no user, still expires orders", async () => {
		const o = await created(await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")], expiresInSec: 1 }));
		const deadline = Date.now() + 10_000;
		let status = o.status;
		while (status !== "expired" && Date.now() < deadline) {
			await new Promise(r => setTimeout(r, 200));
			status = (await buyer.get(`/api/v1/orders/${o.id}`)).body.status;
		}
		expect(status).toBe("expired");
	});
});
