// The health of each other region, decided from what this region observes of it: its own pings over the
// region link (the fast signal: Moleculer's heartbeat check notices a dead node only after 2.5-7 s) and the
// global registry's node events. Pure: fed with observations and the time, it returns its decisions, so the
// thresholds and the damping are tested with a fake clock (test/unit/watcher.test.ts).

export type Health = "up" | "suspect" | "down";

export interface WatcherOptions {
	/** Consecutive failed pings that mark a region down (the first one marks it suspect). */
	failuresToDown: number;
	/** Consecutive answered pings that mark a down region up again (before damping). */
	successesToUp: number;
	/**
	 * Damping: a region that comes back within this window of its last recovery has flapped; each flap doubles the
	 * successes it needs next time (up to 16×), so a flapping region does not bounce ownership. Flaps are forgotten
	 * after a window without one.
	 */
	flapWindowMs: number;
}

export interface RegionHealth {
	health: Health;
	/** When the health last changed. */
	since: number;
	failures: number;
	successes: number;
	flaps: number;
	lastUpAt?: number;
}

/** A change of health: one structured log line, and what failover acts on. */
export interface HealthDecision {
	region: string;
	from: Health;
	to: Health;
	at: number;
	reason: string;
	failures: number;
	successes: number;
	needed: number;
	flaps: number;
}

export class Watcher {
	private readonly state = new Map<string, RegionHealth>();

	constructor(
		regions: string[],
		private readonly o: WatcherOptions,
		now: number,
	) {
		// Every region starts up: a region is presumed alive until its pings say otherwise.
		for (const r of regions) this.state.set(r, { health: "up", since: now, failures: 0, successes: 0, flaps: 0 });
	}

	health(region: string): Health {
		return this.get(region).health;
	}

	view(): Record<string, RegionHealth> {
		return Object.fromEntries([...this.state].map(([r, s]) => [r, { ...s }]));
	}

	/** How many answered pings in a row a down region needs now (damping included). */
	needed(region: string): number {
		return this.o.successesToUp * 2 ** Math.min(this.get(region).flaps, 4);
	}

	/** A ping answered (`ok`) or not; `reason` says which signal it was. */
	observe(region: string, ok: boolean, now: number, reason = ok ? "ping answered" : "ping failed"): HealthDecision | undefined {
		const s = this.get(region);
		if (ok) {
			s.failures = 0;
			s.successes++;
			if (s.health === "suspect") return this.move(region, s, "up", now, reason);
			if (s.health === "down" && s.successes >= this.needed(region)) {
				// This recovery is a flap if the last one was recent: the next one will need more.
				const flapped = s.lastUpAt !== undefined && now - s.lastUpAt < this.o.flapWindowMs;
				const d = this.move(region, s, "up", now, reason);
				if (flapped) s.flaps++;
				s.lastUpAt = now;
				return d;
			}
			return undefined;
		}
		s.successes = 0;
		s.failures++;
		if (s.health !== "down" && s.failures >= this.o.failuresToDown) return this.move(region, s, "down", now, reason);
		if (s.health === "up") return this.move(region, s, "suspect", now, reason);
		return undefined;
	}

	/** The registry lost the region's node: as good as the failed pings that would follow. */
	disconnected(region: string, now: number): HealthDecision | undefined {
		const s = this.get(region);
		if (s.health === "down") return undefined;
		s.successes = 0;
		s.failures = Math.max(s.failures, this.o.failuresToDown);
		return this.move(region, s, "down", now, "node disconnected from the global registry");
	}

	private move(region: string, s: RegionHealth, to: Health, now: number, reason: string): HealthDecision {
		// A region that goes down long after its last recovery has stopped flapping: its flaps are forgotten.
		if (to === "down" && s.lastUpAt !== undefined && now - s.lastUpAt > 2 * this.o.flapWindowMs) s.flaps = 0;
		const d: HealthDecision = { region, from: s.health, to, at: now, reason, failures: s.failures, successes: s.successes, needed: this.needed(region), flaps: s.flaps };
		s.health = to;
		s.since = now;
		if (to === "up" && d.from === "suspect") s.successes = 0;
		return d;
	}

	private get(region: string): RegionHealth {
		const s = this.state.get(region);
		if (!s) throw new Error(`unknown region ${region}`);
		return s;
	}
}
