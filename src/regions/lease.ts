// Ownership of each home region's entities under leases and epochs (docs/multi-region.md, "Failover").
// Pure arithmetic over a region's view, its promises and the time; services/regions.service.ts carries the
// decisions out (SQL, link calls). test/unit/lease.test.ts holds the rules, including a property test that no
// interleaving of renewals, expiries and takeovers lets two regions write one home region's entities at once.
//
// - The owner of a home region writes only under a lease: granted by a majority of all regions (itself
//   included), it runs from when the owner *sent* the renewal, so it ends before any grant's promise ends.
// - A region that grants promises, until leaseMs after it *received* the renewal, not to vote anyone else in.
// - The designated successor takes over only with the votes of a majority, each given once the voter's promise
//   to the old owner is over (plus safetyMs for clock rates), and only for the next epoch. Every lease majority
//   and every takeover majority share a region, so a takeover can only follow the old owner's last lease.
// - A voter that votes a new owner in records it, and so stops granting the old owner's renewals.

/** One region's belief about who writes a home region's entities. */
export interface Owner {
	owner: string;
	epoch: number;
}

export interface LeaseOptions {
	/** How long a granted lease lasts, from its renewal's sending. */
	leaseMs: number;
	/** Added to every promise before it is over: clock rate differences between regions, and a write in flight. */
	safetyMs: number;
}

export const majority = (regions: number) => Math.floor(regions / 2) + 1;

/** The lease an owner holds after a renewal sent at `sentAt` was granted by `granted` regions (itself included). */
export function leaseAfter(sentAt: number, granted: number, regions: number, o: LeaseOptions): number | undefined {
	return granted >= majority(regions) ? sentAt + o.leaseMs : undefined;
}

/**
 * Who takes over `lost`'s entities: the first region after it in `order` (wrapping around) that is not down. The
 * same order everywhere, so regions that see the same health name the same successor.
 */
export function successorOf(lost: string, order: string[], isDown: (region: string) => boolean): string | undefined {
	const i = order.indexOf(lost);
	for (let k = 1; k < order.length; k++) {
		const r = order[(i + k) % order.length];
		if (r !== lost && !isDown(r)) return r;
	}
	return undefined;
}

/** Whether a takeover asked at `sentAt` may still conclude at `now`: its votes stand for leaseMs. */
export const concludes = (sentAt: number, now: number, o: LeaseOptions) => now - sentAt < o.leaseMs;

/** Why a renewal or a vote is refused (undefined: granted). */
export type Refusal = string | undefined;

/**
 * What a region has promised: per home region, to whom and until when, and whom it voted in. Kept in memory only:
 * a region that starts knows nothing it may have promised before, so it refuses every vote for one lease after it
 * starts (a vote it gave others is in its view, a database row; its own candidacy dies with it).
 */
export class Promises {
	private readonly given = new Map<string, { to: string; epoch: number; until: number }>();
	/**
	 * The vote given per home region (one per epoch): while it stands, the old owner's renewals are refused. It
	 * lapses after leaseMs (a candidacy that failed must not block the owner for ever); a candidate concludes only
	 * within leaseMs of asking (`concludes`), so no vote it counts has lapsed.
	 */
	private readonly votes = new Map<string, { for: string; epoch: number; until: number }>();

	constructor(
		private readonly self: string,
		private readonly o: LeaseOptions,
		private readonly startedAt: number,
	) {}

	/** A renewal from `asker` for `home` at `epoch`, judged against this region's view of `home`. */
	renew(home: string, asker: string, epoch: number, view: Owner | undefined, now: number): Refusal {
		if (!view || view.owner !== asker || view.epoch !== epoch) return `${home} is owned by ${view?.owner ?? "nobody"} at epoch ${view?.epoch ?? 0} here`;
		const voted = this.votes.get(home);
		if (voted && voted.epoch > epoch && now < voted.until) return `voted ${voted.for} in at epoch ${voted.epoch}`;
		const until = now + this.o.leaseMs;
		const p = this.given.get(home);
		if (!p || p.to !== asker || p.epoch !== epoch || p.until < until) this.given.set(home, { to: asker, epoch, until });
		return undefined;
	}

	/** When this region may vote another owner in for `home` (its promises over, and its own start long enough ago). */
	freeAt(home: string): number {
		const p = this.given.get(home);
		return Math.max(p ? p.until : 0, this.startedAt + this.o.leaseMs) + this.o.safetyMs;
	}

	/**
	 * A vote for `candidate` to own `home` at `epoch`. Granted when the epoch is the next one after this region's
	 * view (or the candidate already holds it here: a repeated vote), the view's owner is not this region and is down
	 * here, the candidate is the successor this region would name, and every promise to the old owner is over.
	 */
	vote(home: string, candidate: string, epoch: number, view: Owner | undefined, c: { ownerDown: boolean; successor: string | undefined }, now: number): Refusal {
		if (view && view.owner === candidate && view.epoch === epoch) return undefined;
		if (!view || epoch !== view.epoch + 1) return `epoch ${epoch} is not next after ${view?.epoch ?? 0} here`;
		const voted = this.votes.get(home);
		if (voted?.epoch === epoch && now < voted.until) return voted.for === candidate ? undefined : `voted ${voted.for} in at epoch ${epoch}`;
		// Asked at all, the owner is alive and reachable: it renews its lease rather than hand over.
		if (view.owner === this.self) return `${this.self} owns ${home} and is alive`;
		if (!c.ownerDown) return `${view.owner} is not down here`;
		if (c.successor !== candidate) return `the successor here is ${c.successor ?? "nobody"}`;
		const free = this.freeAt(home);
		if (now < free) return `promised to ${view.owner} for ${free - now} ms more`;
		this.votes.set(home, { for: candidate, epoch, until: now + this.o.leaseMs });
		return undefined;
	}
}
