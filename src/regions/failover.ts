// What failover should do next, decided from this region's ownership rows, the watcher's view and the time.
// Pure: services/regions.service.ts carries the decisions out (link calls, SQL); test/unit/failover.test.ts.
import type { FailoverConfig } from "../../config";
import { type Owner, successorOf } from "./lease";
import type { Health, RegionHealth } from "./watcher";

/** A row of ownership_leases. */
export interface OwnerRow extends Owner {
	home: string;
	/** Epoch ms; undefined: no lease (not this region's row, or FAILOVER=off). */
	leaseUntil?: number;
}

export type Step =
	| { kind: "takeover"; home: string; from: string; epoch: number; reason: string }
	| { kind: "failback"; home: string; from: string; epoch: number; reason: string };

export interface Situation {
	me: string;
	rows: OwnerRow[];
	health: Record<string, RegionHealth>;
	/** When this region's failover loop started. */
	startedAt: number;
	/** Events of each other region not applied here yet (undefined: not known now). */
	backlog: Record<string, number | undefined>;
	now: number;
}

/** A home region starts taking its entities back once it is at most this many events behind their owner. */
export const FAILBACK_BACKLOG = 500;

const healthOf = (s: Situation, r: string): Health => (r === s.me ? "up" : (s.health[r]?.health ?? "up"));

/**
 * Takeovers: every home region owned by a region that is down here, whose successor (by the configured order,
 * skipping regions down here) is this region. Fail-back: this region's own home, owned by another region that
 * is up, once both have been up for failbackAfterMs and this region is nearly caught up with the owner.
 */
export function nextSteps(s: Situation, cfg: Pick<FailoverConfig, "order" | "failback" | "failbackAfterMs">): Step[] {
	const steps: Step[] = [];
	const down = (r: string) => healthOf(s, r) === "down";
	for (const row of s.rows) {
		if (row.owner === s.me) continue;
		if (down(row.owner)) {
			if (successorOf(row.owner, cfg.order, down) === s.me)
				steps.push({ kind: "takeover", home: row.home, from: row.owner, epoch: row.epoch + 1, reason: `${row.owner} is down` });
			continue;
		}
		if (!cfg.failback || row.home !== s.me) continue;
		const owner = s.health[row.owner];
		const upFor = Math.min(s.now - s.startedAt, owner && owner.health === "up" ? s.now - owner.since : 0);
		if (owner?.health !== "up" || upFor < cfg.failbackAfterMs) continue;
		// Nearly caught up: the exact catch-up (to what the owner published before it stopped) follows the hand-back.
		const behind = s.backlog[row.owner];
		if (behind === undefined || behind > FAILBACK_BACKLOG) continue;
		steps.push({ kind: "failback", home: row.home, from: row.owner, epoch: row.epoch + 1, reason: `${s.me} is up and caught up with ${row.owner} (${behind} events behind)` });
	}
	return steps;
}

/** Rows of another region's view that win over this region's: a higher epoch, whoever sent it. */
export function newerRows(mine: OwnerRow[], theirs: (Owner & { home: string })[]): (Owner & { home: string })[] {
	return theirs.filter(t => {
		const m = mine.find(r => r.home === t.home);
		return !m || t.epoch > m.epoch;
	});
}
