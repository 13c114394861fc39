// The history checker without a database: a generated region (rows and outbox) that a generated
// history of claims ran against, served by a stand-in pool. A consistent world has no violation; each
// forgery (a replay answered with another claim, a lost claim, a foreign delta) is reported, alone.
import { fc, test } from "@fast-check/vitest";
import type { Pool } from "pg";
import { describe, expect, it } from "vitest";
import { checkHistory, type HistoryReport } from "../../src/checker/history-check";
import { History, type Operation } from "../../src/checker/history";
import { formatAmount } from "../../src/domain/money";

interface World {
	supplies: any[];
	orders: any[];
	claims: any[];
	outbox: any[];
	ops: Operation[];
}

const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString().padStart(12, "0")}`;

/** One supply; `claims` orders each claimed once, with `answers[i]` 201 answers for claim i's key. */
function buildWorld(prices: bigint[], answers: number[]): World {
	const w: World = { supplies: [], orders: [], claims: [], outbox: [], ops: [] };
	let tx = 100;
	let eventId = 1;
	const emit = (type: string, aggregate: string, id: string, version: number, payload: object, txId: number) =>
		w.outbox.push({
			id: String(w.outbox.length + 1),
			event_id: uuid(10_000 + eventId++),
			aggregate_type: aggregate,
			aggregate_id: id,
			aggregate_version: version,
			event_type: type,
			region: "r1",
			epoch: "1",
			tx_id: String(txId),
			payload,
		});
	const total = prices.reduce((a, b) => a + b, 0n) * 2n;
	const supply = { id: uuid(1), amount: formatAmount(total), reserved: "0", spent: "0", status: "active", version: 1 };
	emit("SupplyCreated", "supply", supply.id, 1, { ...supply, amount: formatAmount(total) }, tx++);
	let reserved = 0n;
	prices.forEach((price, i) => {
		const orderId = uuid(100 + i);
		const claimId = uuid(200 + i);
		const items = [{ sku: "a", name: "A", unitPrice: formatAmount(price), quantity: 1 }];
		emit("OrderCreated", "order", orderId, 1, { id: orderId, status: "open", version: 1, claimId: null, amount: formatAmount(price) }, tx++);
		const t = tx++;
		reserved += price;
		const claim = { id: claimId, orderId, supplyId: supply.id, amount: formatAmount(price), status: "active", version: 1 };
		emit("ClaimCreated", "claim", claimId, 1, claim, t);
		emit("OrderClaimed", "order", orderId, 2, { id: orderId, status: "claimed", version: 2, claimId }, t);
		supply.version++;
		emit("SupplyReserved", "supply", supply.id, supply.version, { ...supply, reserved: formatAmount(reserved) }, t);
		w.orders.push({ id: orderId, items, amount: formatAmount(price), status: "claimed", claim_id: claimId, version: 2 });
		w.claims.push({
			id: claimId,
			order_id: orderId,
			claimer_id: "shopper",
			supply_id: supply.id,
			amount: formatAmount(price),
			status: "active",
			idempotency_key: `k${i}`,
			version: 1,
		});
		const h = new History();
		for (let a = 0; a < answers[i]; a++)
			h.begin({ op: "claim", userId: "shopper", idempotencyKey: `k${i}`, orderId, supplyId: supply.id })(201, { ...claim, claimerId: "shopper" }, a > 0);
		w.ops.push(...h.ops);
	});
	w.supplies.push({ ...supply, reserved: formatAmount(reserved) });
	w.ops.forEach((o, i) => (o.index = i));
	return w;
}

/** Answers the four queries checkHistory makes, from the world's tables. */
const poolOf = (w: World) =>
	({
		query: async (sql: string) => {
			const table = /FROM (supplies|orders|claims|outbox)\b/.exec(sql)![1] as keyof World;
			return { rows: structuredClone(w[table]) };
		},
	}) as unknown as Pool;

const kinds = (r: HistoryReport) => [...new Set(r.violations.map(v => v.kind))].sort();
const worlds = fc.tuple(
	fc.array(fc.bigInt({ min: 1n, max: 10n ** 20n }), { minLength: 1, maxLength: 8 }),
	fc.array(fc.integer({ min: 2, max: 4 }), { minLength: 8, maxLength: 8 }),
);

describe("checkHistory on generated worlds", () => {
	test.prop([worlds])("a consistent world and history has no violation, and every count adds up", async ([prices, answers]) => {
		const w = buildWorld(prices, answers);
		const r = await checkHistory(poolOf(w), w.ops);
		expect(r.violations).toEqual([]);
		const acked = answers.slice(0, prices.length).reduce((a, b) => a + b, 0);
		expect(r.counts).toMatchObject({
			operations: acked,
			acknowledgedClaims: acked,
			replays: acked - prices.length,
			keys: prices.length,
			events: 1 + prices.length * 4,
			suppliesRebuilt: 1,
			ordersSummed: prices.length,
			claimLifetimes: prices.length,
		});
		expect(r.summary).toContain(`${acked} acknowledged claims, ${acked - prices.length} replays`);
		expect(r.summary).toMatch(/; 0 violations$/);
	});

	test.prop([worlds, fc.nat(), fc.nat()])("a 201 whose claim id differs from its replay is reported", async ([prices, answers], which, other) => {
		const w = buildWorld(prices, answers);
		const i = which % prices.length;
		const forged = w.ops.filter(o => o.idempotencyKey === `k${i}`)[1 + (other % (answers[i] - 1))];
		forged.body = { ...(forged.body as object), id: uuid(999) };
		const r = await checkHistory(poolOf(w), w.ops);
		// The forged answer names a claim the database never had, and disagrees with the first answer.
		expect(kinds(r)).toEqual(["ack-missing", "replay-differs"]);
		expect(r.violations.find(v => v.kind === "replay-differs")!.id).toBe(`k${i}`);
	});

	test.prop([worlds, fc.nat()])("the same replay with another amount is reported too", async ([prices, answers], which) => {
		const w = buildWorld(prices, answers);
		const i = which % prices.length;
		const forged = w.ops.filter(o => o.idempotencyKey === `k${i}`)[1];
		forged.body = { ...(forged.body as any), amount: formatAmount(prices[i] + 1n) };
		const r = await checkHistory(poolOf(w), w.ops);
		expect(kinds(r)).toEqual(["ack-differs", "replay-differs"]);
		expect(r.violations.map(v => v.id).sort()).toEqual([uuid(200 + i), `k${i}`].sort());
	});

	test.prop([worlds, fc.nat(), fc.constantFrom(409, 404, 403)])("a retry refused while or after its key's claim won is reported", async ([prices, answers], which, status) => {
		const w = buildWorld(prices, answers);
		const i = which % prices.length;
		const win = w.ops.find(o => o.idempotencyKey === `k${i}`)!;
		const retry = (start: number, end: number): Operation => ({ ...win, index: w.ops.length, status, body: { error: { code: "ORDER_NOT_OPEN" } }, start, end });
		// A refusal that ended before the winning attempt began is an earlier, separate outcome: allowed.
		w.ops.push(retry(win.start - 20, win.start - 10));
		expect((await checkHistory(poolOf(w), w.ops)).violations).toEqual([]);
		// One that overlapped it (the slow first transaction of issue 6 item 1) is not.
		w.ops.push(retry(win.start - 5, win.start + 5));
		const r = await checkHistory(poolOf(w), w.ops);
		expect(kinds(r)).toEqual(["replay-refused"]);
		expect(r.violations.map(v => v.id)).toEqual([`k${i}`]);
	});

	test.prop([worlds, fc.nat()])("a claim event explained by no event of its supply is an orphan", async ([prices, answers], which) => {
		const w = buildWorld(prices, answers);
		const i = which % prices.length;
		// Move the claim's creation to a transaction of its own: its delta no longer belongs to the supply's event.
		w.outbox.find(e => e.event_type === "ClaimCreated" && e.aggregate_id === uuid(200 + i)).tx_id = "999999";
		const r = await checkHistory(poolOf(w), w.ops);
		expect(kinds(r)).toEqual(["orphan-event", "supply-rebuild"]);
		expect(r.violations.find(v => v.kind === "orphan-event")!.id).toBe(uuid(200 + i));
	});

	it("reads every pool, one per region, and checks the union", async () => {
		const w = buildWorld([5n, 7n], [2, 2]);
		const half = (keep: (i: number) => boolean): World => ({ ...w, outbox: w.outbox.filter((_, i) => keep(i)) });
		// Each region holds part of the events: alone the second one looks broken (the supply's chain starts
		// at version 3, rows have no events), together they are whole.
		const a = poolOf(half(i => i < 5));
		const b = poolOf(half(i => i >= 5));
		expect(kinds(await checkHistory([b], w.ops))).toEqual(["row-differs", "supply-rebuild", "version-gap"]);
		const both = await checkHistory([a, b], w.ops);
		expect(both.violations).toEqual([]);
		expect(both.counts.regions).toBe(2);
		expect(both.counts.events).toBe(w.outbox.length);
	});

	it("counts statuses per operation and records unknown outcomes as 0", async () => {
		const h = new History();
		h.begin({ op: "claim", userId: "u", idempotencyKey: "k", orderId: uuid(1), supplyId: uuid(2) })(409, { error: { code: "ORDER_NOT_OPEN" } });
		await expect(h.record({ op: "release", userId: "u", claimId: uuid(3) }, () => Promise.reject(new Error("socket hang up")))).rejects.toThrow("socket hang up");
		const r = await checkHistory(poolOf({ supplies: [], orders: [], claims: [], outbox: [], ops: [] }), h);
		expect(r.counts.statuses).toEqual({ claim: { "409": 1 }, release: { "0": 1 } });
		expect(r.counts.conflicts).toBe(1);
		expect(h.ops[1]).toMatchObject({ status: 0, body: { error: "Error: socket hang up" } });
		expect(typeof h.ops[1].end).toBe("number");
	});
});
