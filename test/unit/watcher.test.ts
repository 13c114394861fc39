// The watcher's state machine (src/regions/watcher.ts) with an injected clock.
import { describe, expect, it } from "vitest";
import { Watcher } from "../../src/regions/watcher";

const O = { failuresToDown: 3, successesToUp: 2, flapWindowMs: 30_000 };
const fail = (w: Watcher, r: string, n: number, t: number) => Array.from({ length: n }, (_, i) => w.observe(r, false, t + i * 500)).filter(Boolean);
const ok = (w: Watcher, r: string, n: number, t: number) => Array.from({ length: n }, (_, i) => w.observe(r, true, t + i * 500)).filter(Boolean);

describe("the region watcher", () => {
	it("up → suspect at the first failed ping → down at the third in a row", () => {
		const w = new Watcher(["b"], O, 0);
		expect(w.health("b")).toBe("up");
		const ds = fail(w, "b", 3, 1000);
		expect(ds.map(d => [d!.from, d!.to, d!.at])).toEqual([
			["up", "suspect", 1000],
			["suspect", "down", 2000],
		]);
		expect(ds[1]).toMatchObject({ region: "b", reason: "ping failed", failures: 3 });
	});

	it("a suspect region answering again is up at once, and its failures start over", () => {
		const w = new Watcher(["b"], O, 0);
		fail(w, "b", 2, 0);
		expect(w.observe("b", true, 1000)).toMatchObject({ from: "suspect", to: "up" });
		expect(fail(w, "b", 2, 2000).map(d => d!.to)).toEqual(["suspect"]);
		expect(w.health("b")).toBe("suspect");
	});

	it("a down region needs successesToUp answered pings in a row; a failure in between starts over", () => {
		const w = new Watcher(["b"], O, 0);
		fail(w, "b", 3, 0);
		expect(w.observe("b", true, 5000)).toBeUndefined();
		expect(w.observe("b", false, 5500)).toBeUndefined();
		expect(w.observe("b", true, 6000)).toBeUndefined();
		expect(w.observe("b", true, 6500)).toMatchObject({ from: "down", to: "up", successes: 2, needed: 2 });
	});

	it("a registry disconnect marks the region down at once", () => {
		const w = new Watcher(["b", "c"], O, 0);
		expect(w.disconnected("b", 100)).toMatchObject({ from: "up", to: "down", reason: "node disconnected from the global registry" });
		expect(w.disconnected("b", 200)).toBeUndefined();
		expect(w.health("c")).toBe("up");
	});

	it("damping: a region that comes back within the flap window needs twice as many answers each time", () => {
		const w = new Watcher(["b"], O, 0);
		const cycle = (t: number) => {
			fail(w, "b", 3, t);
			const ups = ok(w, "b", 16, t + 2000);
			return ups.length ? ups[0]!.successes : undefined;
		};
		expect(cycle(0)).toBe(2); // up at 2.5 s
		expect(cycle(40_000)).toBe(2); // up at 42.5 s: 40 s after the last recovery, no flap
		expect(cycle(52_000)).toBe(2); // up at 54.5 s: 12 s after the last one, a flap (counted for next time)
		expect(cycle(70_000)).toBe(4); // one flap: twice the answers; up at 73.5 s, a second flap
		expect(cycle(90_000)).toBe(8);
		// Down again long after its last recovery: the flaps are forgotten.
		expect(cycle(300_000)).toBe(2);
	});

	it("refuses regions it does not know", () => {
		expect(() => new Watcher(["b"], O, 0).observe("x", true, 0)).toThrow(/unknown region x/);
	});
});
