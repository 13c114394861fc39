import { describe, expect, it } from "vitest";
import { safetyFigures, summarize, summaryLines, type RunFigures } from "../../scripts/drill-summary";

const run = (over: Partial<RunFigures>): RunFigures => ({
	scenario: "kill",
	durability: "replicated",
	detectedMs: 1_700,
	servedAgainMs: 3_200,
	failbackMs: 13_000,
	ackedLost: 0,
	doubleClaims: 0,
	negativeBalances: 0,
	otherViolations: 0,
	regionsEqual: true,
	...over,
});

describe("repeated drills, summed up", () => {
	it("gives each timing's min, median and max, and how many runs met its target", () => {
		const [kill] = summarize([run({ failbackMs: 16_000 }), run({ failbackMs: 12_600 }), run({ failbackMs: 14_000, detectedMs: 3_100 })]);
		expect(kill.timings.failbackMs).toEqual({ runs: 3, min: 12_600, median: 14_000, max: 16_000, withinTarget: 2 });
		expect(kill.timings.detectedMs).toMatchObject({ max: 3_100, withinTarget: 2 });
		expect(kill.unsafeRuns).toBe(0);
	});

	it("takes the median of an even count as the mean of the middle two, and leaves out runs without the timing", () => {
		const [s] = summarize([run({ failbackMs: 10_000 }), run({ failbackMs: 14_000 }), run({ failbackMs: null }), run({ failbackMs: 20_000 }), run({ failbackMs: 12_000 })]);
		expect(s.timings.failbackMs).toEqual({ runs: 4, min: 10_000, median: 13_000, max: 20_000, withinTarget: 3 });
	});

	it("counts a run unsafe for any safety figure, and a lost acknowledged claim only in replicated mode", () => {
		const rows = [
			run({ doubleClaims: 1 }),
			run({ negativeBalances: 1 }),
			run({ regionsEqual: false }),
			run({ otherViolations: 2 }),
			run({ ackedLost: 1 }),
			run({ ackedLost: 1, durability: "local" }),
			run({}),
		];
		expect(summarize(rows)[0].unsafeRuns).toBe(5);
	});

	it("keeps scenarios apart, in the order they ran, and prints a line each", () => {
		const lines = summaryLines([run({}), run({ scenario: "redis", detectedMs: null, failbackMs: null, servedAgainMs: 0 }), run({ failbackMs: 15_500 })]);
		expect(lines).toEqual([
			"kill ×2: detected 1.7 s / 1.7 s / 1.7 s (min / median / max), 2 of 2 within 3.0 s; served again 3.2 s / 3.2 s / 3.2 s (min / median / max), 2 of 2 within 5.0 s; fail-back 13.0 s / 14.3 s / 15.5 s (min / median / max), 1 of 2 within 15.0 s; every run safe",
			"redis ×1: served again 0.0 s / 0.0 s / 0.0 s (min / median / max), 1 of 1 within 5.0 s; every run safe",
		]);
	});
});

describe("a drill's safety figures from the checkers", () => {
	it("counts every acknowledged write the databases do not show as lost: claims, and completions, cancellations and releases", () => {
		const f = safetyFigures(
			[{ kind: "ack-missing" }, { kind: "ack-differs" }, { kind: "ack-not-applied" }, { kind: "overlapping-claims" }, { kind: "key-two-claims" }, { kind: "hold-standing" }],
			[{ kind: "supply", problem: "available is negative" }, { kind: "order", problem: "claimed twice in the rows" }],
		);
		expect(f).toEqual({ ackedLost: 3, doubleClaims: 2, negativeBalances: 1, otherViolations: 2 });
	});

	it("finds nothing in a clean run", () => {
		expect(safetyFigures([], [])).toEqual({ ackedLost: 0, doubleClaims: 0, negativeBalances: 0, otherViolations: 0 });
	});
});
