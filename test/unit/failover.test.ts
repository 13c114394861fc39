// What failover does next (src/regions/failover.ts), from rows, health and the time.
import { describe, expect, it } from "vitest";
import { FAILBACK_BACKLOG, newerRows, nextSteps, type OwnerRow, type Situation } from "../../src/regions/failover";
import type { RegionHealth } from "../../src/regions/watcher";

const cfg = { order: ["a", "b", "c"], failback: true, failbackAfterMs: 3000 };
const up = (since = 0): RegionHealth => ({ health: "up", since, failures: 0, successes: 0, flaps: 0 });
const down = (since = 0): RegionHealth => ({ ...up(since), health: "down" });
const rows = (...r: [string, string, number][]): OwnerRow[] => r.map(([home, owner, epoch]) => ({ home, owner, epoch }));
const at = (me: string, s: Partial<Situation>): Situation => ({
	me,
	rows: rows(["a", "a", 1], ["b", "b", 1], ["c", "c", 1]),
	health: {},
	startedAt: 0,
	backlog: {},
	now: 60_000,
	...s,
});

describe("failover's next steps", () => {
	it("the successor of a down region takes it over at the next epoch; no one else does", () => {
		const health = { a: up(), b: up(), c: down() };
		expect(nextSteps(at("a", { health }), cfg)).toEqual([{ kind: "takeover", home: "c", from: "c", epoch: 2, reason: "c is down" }]);
		expect(nextSteps(at("b", { health }), cfg)).toEqual([]);
	});

	it("skips a successor that is down itself", () => {
		expect(nextSteps(at("b", { health: { a: down(), c: down() } }), cfg).map(s => [s.kind, s.home])).toEqual([
			["takeover", "a"],
			["takeover", "c"],
		]);
	});

	it("nothing while every region is up and owns its own", () => {
		expect(nextSteps(at("a", { health: { b: up(), c: up() } }), cfg)).toEqual([]);
	});

	it("a home region that is back takes its entities back once both have been up long enough and it is nearly caught up", () => {
		const taken = rows(["a", "a", 1], ["b", "b", 1], ["c", "a", 2]);
		const base = at("c", { rows: taken, health: { a: up(0), b: up(0) }, backlog: { a: 0 } });
		expect(nextSteps(base, cfg)).toEqual([{ kind: "failback", home: "c", from: "a", epoch: 3, reason: "c is up and caught up with a (0 events behind)" }]);
		// Just started (its own uptime counts), or a just came back: not yet.
		expect(nextSteps({ ...base, startedAt: 58_000 }, cfg)).toEqual([]);
		expect(nextSteps({ ...base, health: { a: up(58_000), b: up() } }, cfg)).toEqual([]);
		// Too far behind, or not known: not yet.
		expect(nextSteps({ ...base, backlog: { a: FAILBACK_BACKLOG + 1 } }, cfg)).toEqual([]);
		expect(nextSteps({ ...base, backlog: {} }, cfg)).toEqual([]);
		expect(nextSteps({ ...base, backlog: { a: FAILBACK_BACKLOG } }, cfg)).toHaveLength(1);
		// Fail-back off; or someone else's home.
		expect(nextSteps(base, { ...cfg, failback: false })).toEqual([]);
		expect(nextSteps({ ...base, me: "b" }, cfg)).toEqual([]);
	});

	it("adopts only rows of a higher epoch", () => {
		const mine = rows(["a", "a", 1], ["c", "a", 2]);
		expect(newerRows(mine, [{ home: "a", owner: "b", epoch: 1 }, { home: "c", owner: "c", epoch: 3 }, { home: "d", owner: "d", epoch: 1 }])).toEqual([
			{ home: "c", owner: "c", epoch: 3 },
			{ home: "d", owner: "d", epoch: 1 },
		]);
	});
});
