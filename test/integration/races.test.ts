// Races a region must win: the sweeper against complete and release at the moment a hold runs out; supply writes
// (lower the amount, pause, close) against claims on the same supply; cancel and expiry against claims; one key
// replayed at once through two gateways. Each test first proves that the race really happened (both sides won
// some, or lock waits were seen), then that every acknowledged answer matches the final state and the books hold.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item, type Reply } from "../helpers/http";
import { lockWaits } from "../helpers/seed";

let region: Region & { db: TestDatabase };

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nats: true,
		nodes: [["api"], ["api"], ["supply", "order"], ["claiming"], ["claiming"]],
		env: { CLAIM_HOLD_SEC: "1", SWEEP_INTERVAL_MS: "50", RATE_LIMIT: "100000" },
	});
}, 60_000);

afterAll(async () => {
	await region?.stop();
});

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const tally = (replies: Reply[]) =>
	replies.reduce<Record<string, number>>((t, r) => {
		const k = r.status < 300 ? String(r.status) : `${r.status} ${r.body?.error?.code}`;
		t[k] = (t[k] ?? 0) + 1;
		return t;
	}, {});

/** Samples row-lock waits in the region's database while `run` goes on; returns the most seen at once. */
async function whileSamplingLocks<T>(run: () => Promise<T>): Promise<{ result: T; maxWaits: number }> {
	let on = true;
	let maxWaits = 0;
	const sampler = (async () => {
		while (on) {
			maxWaits = Math.max(maxWaits, await lockWaits(region.db.pool));
			await sleep(1);
		}
	})();
	try {
		return { result: await run(), maxWaits };
	} finally {
		on = false;
		await sampler;
	}
}

async function expectBooksClean() {
	const report = await checkInvariants(region.db.pool);
	expect(report.violations).toEqual([]);
}

describe("races", () => {
	it("the sweeper against complete and release, at the moment holds run out", async () => {
		const [shopper, buyer] = await Promise.all([Client.as(region.apiUrls[0], "sw-shopper"), Client.as(region.apiUrls[1], "sw-buyer")]);
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "100" })).body;
		const N = 40;
		const orders = await Promise.all(Array.from({ length: N }, () => buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.5")] })));
		const claims: Reply[] = [];
		for (const o of orders) claims.push(await shopper.post("/api/v1/claims", { orderId: o.body.id, supplyId: s.id }, { "idempotency-key": `sw-${o.body.id}` }));
		expect(claims.every(c => c.status === 201)).toBe(true);
		// Each command is sent around its own hold's end, from 200 ms before to 250 ms after: some before the
		// sweeper, some after.
		const answers = await Promise.all(
			orders.map(async (o, i) => {
				await sleep(Math.max(0, Date.parse(claims[i].body.expiresAt) - 200 + ((i >> 1) % 10) * 50 - Date.now()));
				return i % 2 === 0
					? buyer.post(`/api/v1/orders/${o.body.id}/complete`)
					: shopper.post(`/api/v1/claims/${claims[i].body.id}/release`);
			}),
		);
		const completes = answers.filter((_, i) => i % 2 === 0);
		const releases = answers.filter((_, i) => i % 2 === 1);
		console.log(`races: sweeper vs complete ${JSON.stringify(tally(completes))}, vs release ${JSON.stringify(tally(releases))}`);
		// Both sides won some: the race happened.
		expect(completes.some(r => r.status === 200)).toBe(true);
		expect(completes.some(r => r.status === 409)).toBe(true);
		expect(releases.some(r => r.status === 200)).toBe(true);
		expect(releases.some(r => r.status === 409)).toBe(true);
		expect(Object.keys(tally(completes)).every(k => k === "200" || k === "409 ORDER_NOT_CLAIMED")).toBe(true);
		expect(Object.keys(tally(releases)).every(k => k === "200" || k === "409 CLAIM_NOT_ACTIVE")).toBe(true);
		// Every answer matches the final state: who won is written in the claim and its release event.
		await sleep(300); // the sweeper finishes the holds nobody touched
		for (const [i, r] of answers.entries()) {
			const { rows } = await region.db.pool.query(
				`SELECT c.status, (SELECT payload->>'reason' FROM outbox WHERE aggregate_id = c.id AND event_type = 'ClaimReleased') AS reason
				   FROM claims c WHERE c.id = $1`,
				[claims[i].body.id],
			);
			const expected = i % 2 === 0 ? (r.status === 200 ? ["settled", null] : ["released", "expired"]) : r.status === 200 ? ["released", "claimer"] : ["released", "expired"];
			expect([rows[0].status, rows[0].reason], `order ${i}: ${r.status}`).toEqual(expected);
		}
		await expectBooksClean();
	});

	it("supply writes (lower, pause, resume, close) against claims on the same supply", async () => {
		const [shopper, buyer] = await Promise.all([Client.as(region.apiUrls[0], "sup-shopper"), Client.as(region.apiUrls[1], "sup-buyer")]);
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "10" })).body;
		const N = 40;
		const orders = await Promise.all(Array.from({ length: N }, () => buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] })));
		const supplyWrites: (() => Promise<Reply>)[] = [];
		for (let k = 0; k < 6; k++)
			supplyWrites.push(
				() => shopper.patch(`/api/v1/supplies/${s.id}`, { amount: String(4 + k) }),
				() => shopper.post(`/api/v1/supplies/${s.id}/pause`),
				() => shopper.post(`/api/v1/supplies/${s.id}/resume`),
			);
		supplyWrites.push(() => shopper.post(`/api/v1/supplies/${s.id}/close`));
		const { result, maxWaits } = await whileSamplingLocks(() =>
			Promise.all([
				Promise.all(orders.map((o, i) => shopper.post("/api/v1/claims", { orderId: o.body.id, supplyId: s.id }, { "idempotency-key": `sup-${i}` }))),
				Promise.all(supplyWrites.map(async (w, i) => (await sleep(i * 4), w()))),
			]),
		);
		const [claimReplies, writeReplies] = result;
		console.log(`races: claims ${JSON.stringify(tally(claimReplies))}; supply writes ${JSON.stringify(tally(writeReplies))}; row-lock waits seen at once: ${maxWaits}`);
		expect(maxWaits).toBeGreaterThan(0);
		expect(claimReplies.some(r => r.status === 201)).toBe(true);
		expect(writeReplies.some(r => r.status === 200)).toBe(true);
		const allowedClaims = new Set(["201", "409 SUPPLY_NOT_ACTIVE", "409 INSUFFICIENT_SUPPLY"]);
		expect(Object.keys(tally(claimReplies)).filter(k => !allowedClaims.has(k))).toEqual([]);
		// Every acknowledged claim holds its funds; the supply's books add up.
		const won = claimReplies.filter(r => r.status === 201).map(r => r.body.id);
		// (Holds last 1 s in this region: by now the sweeper may have released some; the claims stay.)
		const { rows } = await region.db.pool.query(
			`SELECT count(*)::int AS n FROM claims WHERE id = ANY($1) AND supply_id = $2 AND amount = 0.4`,
			[won, s.id],
		);
		expect(rows[0].n).toBe(won.length);
		await expectBooksClean();
	});

	it("cancel and expiry against claims", async () => {
		const [shopper, buyer] = await Promise.all([Client.as(region.apiUrls[0], "exp-shopper"), Client.as(region.apiUrls[1], "exp-buyer")]);
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "100" })).body;
		const N = 30;
		const orders = await Promise.all(
			Array.from({ length: N }, () => buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.1")], expiresInSec: 3 })),
		);
		// Claim and cancel are sent together around each order's own expiry, from 300 ms before to 240 ms after.
		const fire = (i: number) => sleep(Math.max(0, Date.parse(orders[i].body.expiresAt) - 300 + (i % 10) * 60 - Date.now()));
		const [claims, cancels] = await Promise.all([
			Promise.all(orders.map(async (o, i) => (await fire(i), shopper.post("/api/v1/claims", { orderId: o.body.id, supplyId: s.id }, { "idempotency-key": `exp-${i}` })))),
			Promise.all(orders.map(async (o, i) => (await fire(i), buyer.post(`/api/v1/orders/${o.body.id}/cancel`)))),
		]);
		console.log(`races: claims ${JSON.stringify(tally(claims))}; cancels ${JSON.stringify(tally(cancels))}`);
		await sleep(300);
		const final = await region.db.pool.query(
			`SELECT o.id, o.status, (SELECT count(*)::int FROM claims c WHERE c.order_id = o.id) AS claims FROM orders o WHERE o.id = ANY($1)`,
			[orders.map(o => o.body.id)],
		);
		const statusOf = new Map(final.rows.map(r => [r.id, r.status]));
		const claimsOf = new Map(final.rows.map(r => [r.id, r.claims]));
		// All three sides won some orders: claims, cancels and expiry.
		expect(claims.some(r => r.status === 201)).toBe(true);
		expect(cancels.some(r => r.status === 200)).toBe(true);
		expect([...statusOf.values()]).toContain("expired");
		for (const [i, o] of orders.entries()) {
			const c = claims[i];
			const x = cancels[i];
			expect(c.status === 201 && x.status === 200, `order ${i}: claimed and cancelled`).toBe(false);
			// A won claim exists (its 1 s hold may since have run out, reopening and then expiring the order).
			if (c.status === 201) expect(claimsOf.get(o.body.id), `order ${i}`).toBe(1);
			if (c.status === 201) expect(["claimed", "expired"]).toContain(statusOf.get(o.body.id));
			if (x.status === 200) expect([statusOf.get(o.body.id), claimsOf.get(o.body.id)], `order ${i}`).toEqual(["cancelled", 0]);
			if (c.status !== 201 && x.status !== 200) expect([statusOf.get(o.body.id), claimsOf.get(o.body.id)], `order ${i}`).toEqual(["expired", 0]);
		}
		await expectBooksClean();
	});

	it("one key replayed at once through two gateways: one claim, every answer names it", async () => {
		const shoppers = await Promise.all(region.apiUrls.map(u => Client.as(u, "rep-shopper")));
		const buyer = await Client.as(region.apiUrls[0], "rep-buyer");
		const s = (await shoppers[0].post("/api/v1/supplies", { asset: "ETH", amount: "10" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		const replies = await Promise.all(
			Array.from({ length: 16 }, (_, i) => shoppers[i % 2].post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "rep-1" })),
		);
		expect(replies.map(r => r.status)).toEqual(Array(16).fill(201));
		expect(new Set(replies.map(r => r.body.id)).size).toBe(1);
		expect(replies.filter(r => !r.headers.get("idempotent-replayed"))).toHaveLength(1);
		await expectBooksClean();
	});
});
