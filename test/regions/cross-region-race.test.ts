// Shoppers homed in every region race for orders homed in every region, through every region; afterwards every
// region holds the same rows and the history checker finds nothing wrong over all of them.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { History } from "../../src/checker/history";
import { checkHistory } from "../../src/checker/history-check";
import { checkInvariants } from "../../src/checker/invariants";
import { Client, item } from "../helpers/http";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 3, env: { RATE_LIMIT: "100000" } });
});
afterAll(async () => rs?.stop());

const SHOPPERS = 6;
const ORDERS = 36;

describe("a race across three regions", () => {
	it("never claims an order twice, never overdraws, and converges", async () => {
		const history = new History();
		const n = rs.regions.length;
		const via = (i: number) => rs.regions[i % n].apiUrl;
		const shoppers = await Promise.all(Array.from({ length: SHOPPERS }, (_, i) => Promise.all(rs.regions.map(r => Client.as(r.apiUrl, `racer-${i}`)))));
		const buyers = await Promise.all(Array.from({ length: 3 }, (_, i) => Promise.all(rs.regions.map(r => Client.as(r.apiUrl, `payer-${i}`)))));
		// Shopper i's supply is homed in region i % 3; each can pay for about 3 orders of 0.3.
		const supplies = await Promise.all(
			shoppers.map((c, i) =>
				history.record({ op: "createSupply", userId: `racer-${i}`, node: via(i) }, () => c[i % n].post("/api/v1/supplies", { asset: "ETH", amount: "1" })),
			),
		);
		const orders = await Promise.all(
			Array.from({ length: ORDERS }, (_, i) =>
				history.record({ op: "createOrder", userId: `payer-${i % 3}`, node: via(i) }, () =>
					buyers[i % 3][i % n].post("/api/v1/orders", { asset: "ETH", items: [item("0.1", 3)] }),
				),
			),
		);
		expect(supplies.every(s => s.status === 201) && orders.every(o => o.status === 201)).toBe(true);
		await converged(rs);

		// Every shopper tries every order, through a region picked per attempt; one key per (shopper, order),
		// sent twice through different regions.
		const attempts: (() => Promise<unknown>)[] = [];
		for (let o = 0; o < ORDERS; o++)
			for (let s = 0; s < SHOPPERS; s++) {
				const key = randomUUID();
				const body = { orderId: orders[o].body.id, supplyId: supplies[s].body.id };
				for (const r of [o + s, o + s + 1])
					attempts.push(() =>
						history.record({ op: "claim", userId: `racer-${s}`, idempotencyKey: key, orderId: body.orderId, supplyId: body.supplyId, node: via(r) }, () =>
							shoppers[s][r % n].post("/api/v1/claims", body, { "Idempotency-Key": key }),
						),
					);
			}
		// 48 in flight at a time; an answer that does not come is an unknown outcome (recorded as 0), not a failure.
		const queue = [...attempts];
		await Promise.all(Array.from({ length: 48 }, async () => {
			while (queue.length) await queue.shift()!().catch(() => undefined);
		}));
		await converged(rs);

		// Half the claimed orders complete, the other half's claims are released, each through some region.
		const claimed = history.ops.filter(op => op.op === "claim" && op.status === 201 && !op.replayed);
		await Promise.all(
			claimed.map((op, i) => {
				const c = op.body as { id: string; orderId: string };
				const buyer = orders.findIndex(o => o.body.id === c.orderId) % 3;
				const shopper = Number(op.userId.split("-")[1]);
				return i % 2
					? history.record({ op: "complete", userId: `payer-${buyer}`, orderId: c.orderId, node: via(i) }, () =>
							buyers[buyer][i % n].post(`/api/v1/orders/${c.orderId}/complete`),
						)
					: history.record({ op: "release", userId: op.userId, claimId: c.id, orderId: c.orderId, node: via(i) }, () =>
							shoppers[shopper][i % n].post(`/api/v1/claims/${c.id}/release`),
						);
			}),
		);
		const rows = await converged(rs);

		const statuses = (kind: string) =>
			history.ops.filter(o => o.op === kind).reduce<Record<string, number>>((t, o) => ((t[o.status] = (t[o.status] ?? 0) + 1), t), {});
		const claims = statuses("claim");
		console.log(`cross-region race: claims ${JSON.stringify(claims)}, complete ${JSON.stringify(statuses("complete"))}, release ${JSON.stringify(statuses("release"))}`);
		// The race happened: some won, many lost to another claimer or to an empty supply, none failed.
		expect(claims["201"]).toBeGreaterThanOrEqual(ORDERS / 2);
		expect(claims["409"]).toBeGreaterThan(ORDERS);
		// Under load a claim may be shed or time out (503, retryable: the checker holds it as an unknown outcome);
		// any other 5xx is a bug.
		expect(Object.keys(claims).filter(s => Number(s) >= 500 && s !== "503")).toEqual([]);
		// Cross-region claims happened (supply and order homed apart) and so did same-region ones.
		const won = rows.claims;
		const home = (id: string, list: { id: string; home_region: string }[]) => list.find(x => x.id === id)!.home_region;
		const across = won.filter(c => home(c.order_id, rows.orders) !== home(c.supply_id, rows.supplies)).length;
		expect(across).toBeGreaterThan(0);
		expect(won.length - across).toBeGreaterThan(0);
		expect(statuses("complete")["200"] + statuses("release")["200"]).toBe(claimed.length);

		const pools = rs.regions.map(r => r.db.pool);
		const report = await checkHistory(pools, history);
		console.log(report.summary);
		if (report.violations.length) console.log(JSON.stringify(report.violations.slice(0, 8), null, 1));
		expect(report.violations).toEqual([]);
		expect((await checkInvariants(pools)).violations).toEqual([]);
		// Every hold in a supply's region ended with its claim.
		for (const r of rs.regions) {
			const open = await r.db.pool.query(`SELECT count(*)::int AS n FROM holds WHERE status IN ('held','confirmed')`);
			expect(open.rows[0].n).toBe(0);
		}
	});
});
