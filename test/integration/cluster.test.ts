// Many shoppers race for many orders through two gateways, over NATS, with three claiming nodes:
// retries, repeated Idempotency-Keys and concurrent duplicates. Afterwards the invariant checker
// reads PostgreSQL and must find nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkInvariants } from "../../src/checker/invariants";
import { normalize } from "../../src/domain/money";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item, type Reply } from "../helpers/http";
import { inPool } from "../helpers/pool";
import { currentContext } from "../../src/lib/request-context";

const SHOPPERS = 20;
const BUYERS = 10;
const ORDERS = 200;
const CONTENDERS = 4; // shoppers racing for each order
const IN_FLIGHT = 40;

let db: TestDatabase;
let region: Region & { db: TestDatabase };
/** Each command's mailbox run: on which node, sent from which node (ctx.nodeID: the caller's), and which op. */
const routed: { node: string; orderId: string; from?: string; op?: string }[] = [];

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nats: true,
		nodes: [["api"], ["api"], ["supply", "order"], ["claiming"], ["claiming"], ["claiming"]],
		env: { RATE_LIMIT: "100000" },
	});
	db = region.db;
	// Record which node's mailbox ran each order command (a spy on the real mailbox).
	for (const b of region.brokers) {
		const svc = b.getLocalService("claiming") as any;
		if (!svc) continue;
		const run = svc.mailbox.run.bind(svc.mailbox);
		svc.mailbox.run = (key: string, task: () => Promise<unknown>, deadline?: number) => {
			const ctx = currentContext() as { nodeID?: string; params?: { op?: string } } | undefined;
			routed.push({ node: b.nodeID, orderId: key, from: ctx?.nodeID, op: ctx?.params?.op });
			return run(key, task, deadline);
		};
	}
});

afterAll(async () => {
	await region?.stop();
});


describe("a region of six nodes under a concurrent claim race", () => {
	it("never claims an order twice and keeps every balance exact", async () => {
		const gateways = region.apiUrls;
		const shoppers = await Promise.all(
			Array.from({ length: SHOPPERS }, (_, i) => Client.as(gateways[i % gateways.length], `shopper-${i}`)),
		);
		const buyers = await Promise.all(
			Array.from({ length: BUYERS }, (_, i) => Client.as(gateways[(i + 1) % gateways.length], `buyer-${i}`)),
		);

		// Each shopper can afford only some of the orders they race for: INSUFFICIENT_SUPPLY happens too.
		const supplies = await Promise.all(shoppers.map(s => s.post("/api/v1/supplies", { asset: "ETH", amount: "3" })));
		expect(supplies.every(r => r.status === 201)).toBe(true);
		const orders = await inPool(
			Array.from({ length: ORDERS }, (_, i) => () =>
				buyers[i % BUYERS].post("/api/v1/orders", { asset: "ETH", items: [item(`0.${(i % 5) + 1}`, 1), item("0.01", i % 3)].filter(x => x.quantity > 0) }),
			),
			IN_FLIGHT,
		);
		expect(orders.every(r => r.status === 201)).toBe(true);

		type Attempt = { shopper: number; order: number; key: string; reply?: Reply };
		const attempts: Attempt[] = [];
		orders.forEach((_, o) => {
			const first = (o * 7) % SHOPPERS;
			for (let k = 0; k < CONTENDERS; k++) {
				const shopper = (first + k * 3) % SHOPPERS;
				const key = `race-${o}-${shopper}`;
				attempts.push({ shopper, order: o, key });
				// Every third attempt is retried with the same key; some retries are concurrent duplicates.
				if ((o + k) % 3 === 0) attempts.push({ shopper, order: o, key });
			}
		});
		// Shuffle deterministically so retries and contenders interleave.
		for (let i = attempts.length - 1; i > 0; i--) {
			const j = (i * 7919) % (i + 1);
			[attempts[i], attempts[j]] = [attempts[j], attempts[i]];
		}

		const attempt = async (a: Attempt): Promise<Reply> => {
			const body = { orderId: orders[a.order].body.id, supplyId: supplies[a.shopper].body.id };
			for (let tries = 0; ; tries++) {
				const r = await shoppers[a.shopper].post("/api/v1/claims", body, { "idempotency-key": a.key });
				// A timeout or 503 is an unknown outcome: retry with the same key, as a client must.
				if (r.status !== 503 || tries >= 3) return r;
			}
		};
		await inPool(
			attempts.map(a => async () => {
				a.reply = await attempt(a);
			}),
			IN_FLIGHT,
		);

		const tally: Record<string, number> = {};
		for (const a of attempts) {
			const r = a.reply!;
			const outcome =
				r.status === 201 ? (r.headers.get("idempotent-replayed") ? "replayed" : "won") : `${r.status} ${r.body?.error?.code}`;
			tally[outcome] = (tally[outcome] ?? 0) + 1;
		}
		console.log(`claim race: ${attempts.length} attempts`, tally);
		// A loser sees a claimed order as any stranger does: not found. A 409 ORDER_NOT_OPEN would mean a
		// shopper was refused an order they hold, i.e. a lost replay; it is not an allowed outcome.
		const allowed = new Set(["won", "replayed", "404 ORDER_NOT_FOUND", "409 INSUFFICIENT_SUPPLY"]);
		expect(Object.keys(tally).filter(k => !allowed.has(k))).toEqual([]);

		// One winner per order at most, and every answer for one key names the same claim.
		const winners = new Map<number, Set<string>>();
		const byKey = new Map<string, Set<string>>();
		for (const a of attempts.filter(x => x.reply!.status === 201)) {
			(winners.get(a.order) ?? winners.set(a.order, new Set()).get(a.order)!).add(a.reply!.body.id);
			(byKey.get(a.key) ?? byKey.set(a.key, new Set()).get(a.key)!).add(a.reply!.body.id);
		}
		expect([...winners.values()].every(ids => ids.size === 1)).toBe(true);
		expect([...byKey.values()].every(ids => ids.size === 1)).toBe(true);
		expect(tally.won).toBe(winners.size);
		// Every attempt with a winning key got that claim (201), and every 404 lost to another shopper.
		const winningKey = new Map<number, string>();
		for (const a of attempts) if (a.reply!.status === 201) winningKey.set(a.order, a.key);
		for (const a of attempts) {
			if (winningKey.get(a.order) === a.key) expect(a.reply!.status, `${a.key}: ${JSON.stringify(a.reply!.body)}`).toBe(201);
			if (a.reply!.status === 404) expect(winningKey.get(a.order), a.key).toBeDefined();
		}
		expect(tally["404 ORDER_NOT_FOUND"]).toBeGreaterThan(ORDERS);
		expect(tally.replayed).toBeGreaterThan(10);
		expect(tally.won).toBeGreaterThan(ORDERS / 2);
		expect(tally["409 INSUFFICIENT_SUPPLY"]).toBeGreaterThan(0);

		// The actor: all commands of one order ran on one node, and the work was spread over the nodes.
		const nodesPerOrder = new Map<string, Set<string>>();
		for (const r of routed) (nodesPerOrder.get(r.orderId) ?? nodesPerOrder.set(r.orderId, new Set()).get(r.orderId)!).add(r.node);
		expect([...nodesPerOrder.values()].every(n => n.size === 1)).toBe(true);
		expect(new Set(routed.map(r => r.node)).size).toBe(3);
		// A claim is routed by its order id like the command it sends, so it lands on the mailbox's node and the
		// command is a local call, never a second hop over NATS.
		const claims = routed.filter(r => r.op === "claim");
		expect(claims.length).toBeGreaterThan(ORDERS);
		expect(claims.filter(r => r.from !== r.node)).toEqual([]);

		// Settle half, release the rest, then check the books.
		const won = [...winners.entries()];
		await inPool(
			won.map(([o, ids], i) => async () => {
				const claimId = [...ids][0];
				const r =
					i % 2 === 0
						? await buyers[o % BUYERS].post(`/api/v1/orders/${orders[o].body.id}/complete`)
						: await shoppers[attempts.find(a => a.reply?.body?.id === claimId)!.shopper].post(`/api/v1/claims/${claimId}/release`);
				expect(r.status, JSON.stringify(r.body)).toBe(200);
			}),
			IN_FLIGHT,
		);

		const report = await checkInvariants(db.pool);
		console.log("invariant check:", JSON.stringify(report.counts), `violations: ${report.violations.length}`);
		expect(report.violations).toEqual([]);
		expect(report.counts.settled).toBe(Math.ceil(won.length / 2));

		// Every node's cache was invalidated: a gateway reads the final balances.
		for (const [i, s] of shoppers.entries()) {
			const r = await s.get(`/api/v1/supplies/${supplies[i].body.id}`);
			const { rows } = await db.pool.query("SELECT amount - reserved - spent AS available FROM supplies WHERE id = $1", [supplies[i].body.id]);
			expect(r.body.available).toBe(normalize(rows[0].available));
		}
	});
});
