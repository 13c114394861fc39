// What repeated drills of one scenario add up to: each timing's spread, how many runs met its target, and whether
// every run was safe. Timings vary by seconds from run to run on a busy machine, so one run says little about a target.

/** The figures of one drill run that a summary reads. */
export interface RunFigures {
	scenario: string;
	detectedMs: number | null;
	servedAgainMs: number | null;
	failbackMs: number | null;
	durability: string;
	ackedLost: number;
	doubleClaims: number;
	negativeBalances: number;
	otherViolations: number;
	regionsEqual: boolean;
}

/** The history checker's kinds for an acknowledged write the databases do not show (src/checker/history-check.ts). */
const ACKED_LOST = ["ack-missing", "ack-differs", "ack-not-applied"];
const DOUBLE = ["overlapping-claims", "key-two-claims"];
const NEGATIVE = /negative|exceeds|available/i;

/**
 * A drill's safety figures from the checkers' findings: acknowledged writes lost (a 201 claim, a 200 completion,
 * cancellation or release), double claims, negative balances, and everything else.
 */
export function safetyFigures(history: { kind: string }[], invariants: unknown[]): Pick<RunFigures, "ackedLost" | "doubleClaims" | "negativeBalances" | "otherViolations"> {
	const count = (kinds: string[]) => history.filter(v => kinds.includes(v.kind)).length;
	const negative = invariants.filter(v => NEGATIVE.test(JSON.stringify(v))).length;
	return {
		ackedLost: count(ACKED_LOST),
		doubleClaims: count(DOUBLE),
		negativeBalances: negative,
		otherViolations: history.length - count([...ACKED_LOST, ...DOUBLE]) + invariants.length - negative,
	};
}

/** Brief §7: detected ≤ 3 s, served again ≤ 5 s, owned again by the returning region ≤ 15 s. */
export const TARGETS_MS = { detectedMs: 3_000, servedAgainMs: 5_000, failbackMs: 15_000 } as const;

export interface Spread {
	runs: number;
	min: number;
	median: number;
	max: number;
	withinTarget: number;
}

export interface Summary {
	scenario: string;
	runs: number;
	timings: Partial<Record<keyof typeof TARGETS_MS, Spread>>;
	/** Runs with a double claim, a negative balance, an unequal region, another violation, or (replicated) a lost claim. */
	unsafeRuns: number;
}

function spread(values: number[], target: number): Spread | undefined {
	if (values.length === 0) return undefined;
	const v = [...values].sort((a, b) => a - b);
	const mid = Math.floor(v.length / 2);
	return {
		runs: v.length,
		min: v[0],
		median: v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2,
		max: v[v.length - 1],
		withinTarget: v.filter(x => x <= target).length,
	};
}

/** One summary per scenario, in the order the scenarios first ran. A timing a run did not have (—) is left out. */
export function summarize(rows: RunFigures[]): Summary[] {
	const scenarios = [...new Set(rows.map(r => r.scenario))];
	return scenarios.map(scenario => {
		const runs = rows.filter(r => r.scenario === scenario);
		const timings: Summary["timings"] = {};
		for (const key of Object.keys(TARGETS_MS) as (keyof typeof TARGETS_MS)[]) {
			const s = spread(
				runs.map(r => r[key]).filter((x): x is number => x !== null),
				TARGETS_MS[key],
			);
			if (s) timings[key] = s;
		}
		const unsafe = (r: RunFigures) =>
			r.doubleClaims > 0 || r.negativeBalances > 0 || r.otherViolations > 0 || !r.regionsEqual || (r.durability === "replicated" && r.ackedLost > 0);
		return { scenario, runs: runs.length, timings, unsafeRuns: runs.filter(unsafe).length };
	});
}

const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** One line a scenario: "kill ×5: fail-back 12.6 / 13.4 / 14.2 s (min / median / max), 5 of 5 within 15 s; ...". */
export function summaryLines(rows: RunFigures[]): string[] {
	const names = { detectedMs: "detected", servedAgainMs: "served again", failbackMs: "fail-back" } as const;
	return summarize(rows).map(s => {
		const parts = (Object.keys(names) as (keyof typeof names)[])
			.filter(k => s.timings[k])
			.map(k => {
				const t = s.timings[k]!;
				return `${names[k]} ${s1(t.min)} / ${s1(t.median)} / ${s1(t.max)} (min / median / max), ${t.withinTarget} of ${t.runs} within ${s1(TARGETS_MS[k])}`;
			});
		return `${s.scenario} ×${s.runs}: ${parts.join("; ") || "no timing"}; ${s.unsafeRuns === 0 ? "every run safe" : `${s.unsafeRuns} run(s) NOT safe`}`;
	});
}
