// Failpoints: named places in the code where a test or a drill can make the process stop for a while, so a
// crash can be injected at an exact step of a protocol (docs/multi-region.md, "Crash points"). Set by
// FAILPOINTS ("after-hold=pause:3000,..."); refused in production.
export type Failpoints = Record<string, { pauseMs: number }>;

export const FAILPOINT_NAMES = ["after-hold"] as const;

export function parseFailpoints(raw: string | undefined): Failpoints {
	const out: Failpoints = {};
	for (const part of (raw ?? "").split(",").map(s => s.trim()).filter(Boolean)) {
		const m = /^([a-z-]+)=pause:(\d{1,6})$/.exec(part);
		if (!m || !(FAILPOINT_NAMES as readonly string[]).includes(m[1]))
			throw new Error(`FAILPOINTS entry "${part}" must be NAME=pause:MS with NAME one of ${FAILPOINT_NAMES.join(", ")}`);
		out[m[1]] = { pauseMs: Number(m[2]) };
	}
	return out;
}

/** Waits here if the failpoint is set, saying so first (a drill waits for that line before it strikes). */
export async function failpoint(points: Failpoints, name: (typeof FAILPOINT_NAMES)[number], log?: (line: string) => void): Promise<void> {
	const p = points[name];
	if (!p) return;
	log?.(`Failpoint ${name}: pausing ${p.pauseMs} ms`);
	await new Promise(r => setTimeout(r, p.pauseMs));
}
