// Failover (brief §5, docs/multi-region.md "Failover"): the watcher, leases, takeover and fail-back, wired to
// Moleculer. Every WATCH_INTERVAL_MS this region pings every other over the region link; a ping carries the
// region's ownership rows (a higher epoch wins everywhere) and the renewal of the leases it holds; the answers
// feed the watcher and, from a majority, extend the leases in the database, where every write checks them.
// The decisions are pure (src/regions/watcher.ts, lease.ts, failover.ts); this service carries them out.
// One active per region: any number of nodes may run this file, and the one that holds the region's role lock
// (src/regions/role-lock.ts) creates the `regions` service; the others stand by and take over when it dies.
import { Errors, type Context, type Service, type ServiceSchema } from "moleculer";
import type { FailoverConfig } from "../config";
import { appConfig } from "../mixins/config";
import { DbMixin, type DbThis } from "../mixins/db.mixin";
import { ROLE_TAKEN } from "../mixins/role-follower.mixin";
import type { WalletService } from "../mixins/schema";
import { acquireDatabase, releaseDatabase, withTx, type Database } from "../src/db";
import { waitPublished } from "../src/store/outbox";
import { M } from "../src/lib/metrics";
import { serviceContext } from "../src/lib/request-context";
import { nextSteps, newerRows, type OwnerRow, type Step } from "../src/regions/failover";
import { concludes, leaseAfter, majority, type Owner, Promises, successorOf } from "../src/regions/lease";
import { regionLink } from "../src/regions/link";
import { RoleLock, roleLockName } from "../src/regions/role-lock";
import { type HealthDecision, Watcher } from "../src/regions/watcher";
import type { LogPosition } from "../src/replication/event-log";
import { APPLIED_ASK_MAX, type ReplicationStatus } from "./replication.service";

type Row = Owner & { home: string };

interface PingParams {
	from: string;
	rows: Row[];
	renew: { home: string; epoch: number }[];
}

interface PingAnswer {
	region: string;
	rows: Row[];
	granted: string[];
	refused: Record<string, string>;
}

export interface RegionsStatus {
	region: string;
	failover: boolean;
	health: Record<string, { health: string; sinceMs: number }>;
	ownership: { homeRegion: string; owner: string; epoch: number; leaseRemainingMs: number | null }[];
}

interface RegionsThis extends DbThis {
	/** The region role that created this service on this node (FAILOVER=on). */
	role?: RoleThis;
	/** Whether this node may act as its region now: the role lock seen held within the last holdMs. */
	holds(): boolean;
	cfg: FailoverConfig;
	me: string;
	regions: string[];
	watcher: Watcher;
	promises: Promises;
	startedAt: number;
	/** Whether this region has had an answer from another yet (see tick). */
	linked: boolean;
	timer?: NodeJS.Timeout;
	ticking?: Promise<void>;
	stopping: boolean;
	/** The last failure of a ping per region (logged with a health decision). */
	pingErrors: Map<string, string>;
	/** Home regions with a takeover or fail-back under way (one at a time each). */
	moving: Set<string>;
	readRows(): Promise<OwnerRow[]>;
	adopt(rows: Row[], why: string, mine?: OwnerRow[]): Promise<OwnerRow[]>;
	repairLost(): Promise<void>;
	tick(): Promise<void>;
	renew(sentAt: number, rows: OwnerRow[], answers: (PingAnswer | undefined)[]): Promise<void>;
	carryOut(step: Step): Promise<void>;
	takeOver(step: Step, view: Owner): Promise<void>;
	failBack(step: Step): Promise<void>;
	backlog(): Promise<Record<string, number | undefined>>;
	caughtUpWith(source: string, timeoutMs: number): Promise<boolean>;
	fenceOff(source: string, home: string, epoch: number, timeoutMs: number): Promise<boolean>;
	decided(what: string, details: Record<string, unknown>): void;
	changed(): void;
	call<T>(region: string, action: string, params: unknown, timeout: number): Promise<T>;
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const roleMoving = (region: string) => new Errors.MoleculerRetryableError(`${region}'s failover role is moving to another node`, 503, "ROLE_MOVING");
const HEALTH_VALUE = { up: 1, suspect: 0.5, down: 0 } as const;

const RegionsService: WalletService<RegionsThis> = {
	name: "regions",
	mixins: [DbMixin],
	actions: {
		/** Another region's ping: its rows (adopted where newer) and its lease renewals (granted or refused). */
		ping: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: {
				from: { type: "string", min: 1, max: 64 },
				rows: { type: "array", max: 64, items: { type: "object", props: { home: "string", owner: "string", epoch: "number" } } },
				renew: { type: "array", max: 64, items: { type: "object", props: { home: "string", epoch: "number" } } },
			},
			async handler(this: RegionsThis, ctx: Context<PingParams>): Promise<PingAnswer> {
				if (!this.cfg?.enabled) throw new Errors.MoleculerError("Failover is off in this region", 409, "FAILOVER_OFF");
				if (!this.holds()) throw roleMoving(this.me);
				const { from, rows, renew } = ctx.params;
				const mine = await this.adopt(rows, `ping from ${from}`);
				// Grants are promises: made only while this node surely acts for the region (checked again after the reads).
				if (!this.holds()) throw roleMoving(this.me);
				const now = Date.now();
				const granted: string[] = [];
				const refused: Record<string, string> = {};
				for (const r of renew) {
					const view = mine.find(x => x.home === r.home);
					const why = this.promises.renew(r.home, from, r.epoch, view, now);
					if (why) refused[r.home] = why;
					else granted.push(r.home);
				}
				return { region: this.me, rows: mine.map(({ home, owner, epoch }) => ({ home, owner, epoch })), granted, refused };
			},
		},
		/** A successor asks for this region's vote to own `home` at `epoch`; a yes is recorded here at once. */
		vote: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: { home: { type: "string", min: 1, max: 64 }, candidate: { type: "string", min: 1, max: 64 }, epoch: { type: "number", integer: true, positive: true } },
			async handler(this: RegionsThis, ctx: Context<{ home: string; candidate: string; epoch: number }>) {
				if (!this.cfg?.enabled) throw new Errors.MoleculerError("Failover is off in this region", 409, "FAILOVER_OFF");
				if (!this.holds()) throw roleMoving(this.me);
				const { home, candidate, epoch } = ctx.params;
				const view = (await this.readRows()).find(r => r.home === home);
				const down = (r: string) => r !== this.me && this.watcher.health(r) === "down";
				const why = this.promises.vote(home, candidate, epoch, view, { ownerDown: !!view && down(view.owner), successor: view && successorOf(view.owner, this.cfg.order, down) }, Date.now());
				if (why) return { ok: false, reason: why };
				// Recorded before the yes leaves: from now on this region grants the old owner nothing.
				const u = await this.pool.query(
					`UPDATE ownership_leases SET owner = $2, epoch = $3, lease_until = NULL, updated_at = now()
					  WHERE home_region = $1 AND (epoch < $3 OR (epoch = $3 AND owner = $2))`,
					[home, candidate, epoch],
				);
				if (!u.rowCount) return { ok: false, reason: `${home} moved past epoch ${epoch} here` };
				if (view?.epoch !== epoch) {
					this.decided("voted", { home, candidate, epoch, from: view?.owner });
					this.changed();
				}
				this.promises.renew(home, candidate, epoch, { owner: candidate, epoch }, Date.now());
				return { ok: true };
			},
		},
		/**
		 * The home region is back and caught up: this region stops writing `home` (its row names the home region at
		 * the next epoch, in one statement), and answers once everything it wrote is in the event log.
		 */
		handBack: {
			permission: "internal",
			visibility: "public",
			timeout: 30_000,
			params: { home: { type: "string", min: 1, max: 64 }, epoch: { type: "number", integer: true, positive: true } },
			async handler(this: RegionsThis, ctx: Context<{ home: string; epoch: number }>) {
				const { home, epoch } = ctx.params;
				if (!this.holds()) throw roleMoving(this.me);
				// In the transaction that gives the home region up, while this region still writes it: the claims whose
				// supply and order now part ways get holds (migrations/*_hand-back-holds.sql), so whichever region ends
				// such a claim, the supply's owner moves its funds.
				const { r, adopted } = await withTx(this.pool, async c => {
					const adopted = (await c.query<{ n: number }>(`SELECT hold_direct_reservations($1, $2) AS n`, [home, this.me])).rows[0].n;
					const r = await c.query(
						`UPDATE ownership_leases SET owner = $1, epoch = $2 + 1, lease_until = NULL, updated_at = now()
						  WHERE home_region = $1 AND owner = $3 AND epoch = $2`,
						[home, epoch, this.me],
					);
					// Not this region's to give (any more): nothing adopted either.
					if (!r.rowCount) throw Object.assign(new Error("not the owner"), { notOwner: true });
					return { r, adopted };
				}).catch((err: Error & { notOwner?: boolean }) => {
					if (err.notOwner) return { r: { rowCount: 0 }, adopted: 0 };
					throw err;
				});
				const row = (await this.readRows()).find(x => x.home === home);
				if (r.rowCount === 0 && !(row?.owner === home && row.epoch === epoch + 1))
					throw new Errors.MoleculerError(`${this.me} does not own ${home} at epoch ${epoch}`, 409, "NOT_OWNER_AT_EPOCH", { row });
				if (r.rowCount) {
					this.decided("handed back", { home, to: home, epoch: epoch + 1, holdsAdopted: adopted });
					this.broker.metrics.increment(M.FAILBACKS, { home });
					this.changed();
				}
				// Everything written under the old epoch leaves before the home region writes again (only that: this
				// region's own writes go on meanwhile).
				if (!(await waitPublished(this.pool, { homeRegion: home, epoch }, Date.now() + 25_000)))
					throw new Errors.MoleculerRetryableError("The outbox is not published yet", 503, "NOT_PUBLISHED");
				return { epoch: epoch + 1 };
			},
		},
		/** Health as this region's watcher sees it, and the ownership rows with what is left of each lease. */
		status: {
			permission: "internal",
			visibility: "public",
			async handler(this: RegionsThis): Promise<RegionsStatus> {
				const now = Date.now();
				const health = this.watcher ? this.watcher.view() : {};
				const rows = this.pool ? await this.readRows() : [];
				return {
					region: this.me,
					failover: !!this.cfg?.enabled,
					health: Object.fromEntries(Object.entries(health).map(([r, h]) => [r, { health: h.health, sinceMs: now - h.since }])),
					ownership: rows.map(r => ({
						homeRegion: r.home,
						owner: r.owner,
						epoch: r.epoch,
						leaseRemainingMs: r.owner === this.me && r.leaseUntil !== undefined ? r.leaseUntil - now : null,
					})),
				};
			},
		},
	},
	methods: {
		holds(this: RegionsThis) {
			return !this.cfg?.enabled || (!!this.role && this.role.holds());
		},
		async readRows(this: RegionsThis): Promise<OwnerRow[]> {
			// The lease's end in epoch ms (float8: -Infinity for a row born without a lease).
			const { rows } = await this.pool.query<{ home_region: string; owner: string; epoch: string; lease_ms: number | null }>(
				`SELECT home_region, owner, epoch, (extract(epoch FROM lease_until) * 1000)::float8 AS lease_ms FROM ownership_leases ORDER BY home_region`,
			);
			return rows.map(r => ({ home: r.home_region, owner: r.owner, epoch: Number(r.epoch), leaseUntil: r.lease_ms ?? undefined }));
		},
		/**
		 * Rows of a higher epoch than this region's replace them (another region took over, or handed back). A row
		 * that named this region means it was taken over while away: the epoch is recorded as lost (its events still
		 * unpublished never leave), and repairLost() sorts them out with the successor. Returns this region's rows
		 * as they are now (`mine`: as read before).
		 */
		async adopt(this: RegionsThis, rows: Row[], why: string, mine?: OwnerRow[]) {
			mine ??= await this.readRows();
			let moved = 0;
			for (const r of newerRows(mine, rows)) {
				// A row that names this region comes only from this region's own decisions, never from gossip.
				if (r.owner === this.me) continue;
				const before = mine.find(x => x.home === r.home);
				const lost = before?.owner === this.me;
				const adopted = await withTx(this.pool, async c => {
					const u = await c.query(
						`UPDATE ownership_leases SET owner = $2, epoch = $3, lease_until = NULL, updated_at = now() WHERE home_region = $1 AND epoch < $3`,
						[r.home, r.owner, r.epoch],
					);
					if (u.rowCount && lost) await c.query(`INSERT INTO lost_epochs (home_region, epoch) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [r.home, before!.epoch]);
					return !!u.rowCount;
				});
				if (!adopted) continue;
				moved++;
				this.decided("ownership learned", { home: r.home, owner: r.owner, epoch: r.epoch, why, ...(lost ? { lostEpoch: before!.epoch } : {}) });
			}
			if (!moved) return mine;
			this.changed();
			return this.readRows();
		},
		/**
		 * Once per lost epoch (see adopt): its events still unpublished here are sorted with the current owner. Those
		 * the owner applied (the log took them before the takeover's cut, though this region never marked them, its
		 * database or lease gone) count as published. The others were never seen by anyone and never will be (the cut
		 * skips them): superseded, counted, their holds dropped; and this region takes the owner's rows for every
		 * aggregate they touched.
		 */
		async repairLost(this: RegionsThis) {
			const { rows: lost } = await this.pool.query<{ home_region: string; epoch: string; owner: string }>(
				`SELECT l.home_region, l.epoch, w.owner FROM lost_epochs l JOIN ownership_leases w USING (home_region)
				  WHERE l.repaired_at IS NULL AND w.owner <> $1`,
				[this.me],
			);
			for (const l of lost) {
				const { rows: pending } = await this.pool.query<{ id: string }>(
					`SELECT event_id::text AS id FROM outbox WHERE published_at IS NULL AND home_region = $1 AND epoch <= $2`,
					[l.home_region, l.epoch],
				);
				const seen: string[] = [];
				for (let i = 0; i < pending.length; i += APPLIED_ASK_MAX)
					seen.push(...(await this.call<string[]>(l.owner, "replication.applied", { eventIds: pending.slice(i, i + APPLIED_ASK_MAX).map(p => p.id) }, 5000)));
				const superseded = await withTx(this.pool, async c => {
					if (seen.length) await c.query(`UPDATE outbox SET published_at = now() WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL`, [seen]);
					const gone = await c.query<{ event_type: string; claim_id: string | null; aggregateType: string; aggregateId: string }>(
						`UPDATE outbox SET superseded_at = now(), published_at = now()
						  WHERE published_at IS NULL AND home_region = $1 AND epoch <= $2
						 RETURNING event_type, payload->>'claimId' AS claim_id, aggregate_type AS "aggregateType", aggregate_id AS "aggregateId"`,
						[l.home_region, l.epoch],
					);
					const holds = gone.rows.filter(g => g.event_type === "SupplyReserved" && g.claim_id).map(g => g.claim_id);
					if (holds.length) await c.query(`UPDATE holds SET status = 'released', updated_at = now() WHERE claim_id = ANY($1::uuid[])`, [holds]);
					return gone.rows;
				});
				if (pending.length) {
					this.decided("reconciled", { home: l.home_region, lostEpoch: Number(l.epoch), superseded: superseded.length, seenBySuccessor: seen.length, owner: l.owner });
					this.broker.metrics.increment(M.RECONCILED, { home: l.home_region }, superseded.length);
				}
				// What this pass superseded, and (a pass that failed after its transaction) what an earlier one did.
				const { rows: before } = await this.pool.query<{ aggregateType: string; aggregateId: string }>(
					`SELECT DISTINCT aggregate_type AS "aggregateType", aggregate_id AS "aggregateId" FROM outbox
					  WHERE superseded_at IS NOT NULL AND home_region = $1 AND epoch = $2`,
					[l.home_region, l.epoch],
				);
				const aggregates = [...new Map([...before, ...superseded].map(a => [`${a.aggregateType}:${a.aggregateId}`, { aggregateType: a.aggregateType, aggregateId: a.aggregateId }])).values()];
				const theirs = aggregates.length ? await this.call<Record<string, unknown>[]>(l.owner, "replication.snapshot", { aggregates }, 5000) : [];
				await withTx(this.pool, async c => {
					for (const e of theirs) await c.query(`SELECT take_row($1::jsonb)`, [JSON.stringify(e)]);
					await c.query(`UPDATE lost_epochs SET repaired_at = now() WHERE home_region = $1 AND epoch = $2`, [l.home_region, l.epoch]);
				});
				this.decided("repaired", { home: l.home_region, lostEpoch: Number(l.epoch), from: l.owner, aggregates: aggregates.length });
			}
		},
		async call<T>(this: RegionsThis, region: string, action: string, params: unknown, timeout: number): Promise<T> {
			const link = regionLink(this.broker);
			if (!link) throw new Error("no region link");
			return link.call<T>(region, action, params, { meta: {}, asRegion: true, timeout, caller: serviceContext(this) });
		},
		async tick(this: RegionsThis) {
			if (!this.holds()) return;
			const sentAt = Date.now();
			const rows = await this.readRows();
			const others = this.regions.filter(r => r !== this.me);
			const params: PingParams = {
				from: this.me,
				rows: rows.map(({ home, owner, epoch }) => ({ home, owner, epoch })),
				renew: rows.filter(r => r.owner === this.me).map(r => ({ home: r.home, epoch: r.epoch })),
			};
			const answers = await Promise.all(
				others.map(r =>
					this.call<PingAnswer>(r, "regions.ping", params, this.cfg.timeoutMs).then(
						a => a,
						(err: Error) => {
							this.logger.debug(`Ping of ${r} failed: ${err.message}`);
							this.pingErrors.set(r, err.message);
							return undefined;
						},
					),
				),
			);
			if (this.stopping || !this.holds()) return;
			const now = Date.now();
			// Until this region has reached another once (its link joins the others after it starts), unanswered
			// pings say nothing about them: at start-up every region would see every other down.
			if (!this.linked) {
				if (answers.every(a => a === undefined)) return;
				this.linked = true;
				this.decided("linked", { after: now - this.startedAt });
			}
			others.forEach((r, i) => {
				const d: HealthDecision | undefined = this.watcher.observe(r, answers[i] !== undefined, now);
				if (d) {
					const { region: peer, ...rest } = d;
					this.decided("health", { peer, ...rest, ...(answers[i] ? {} : { lastError: this.pingErrors.get(r) }) });
				}
				this.broker.metrics.set(M.REGION_HEALTH, HEALTH_VALUE[this.watcher.health(r)], { peer: r });
			});
			this.broker.metrics.set(M.REGION_HEALTH, 1, { peer: this.me });
			// One read of the rows for the whole tick, again only when an answer moved one.
			let current = rows;
			for (const a of answers) if (a) current = await this.adopt(a.rows, `ping answer from ${a.region}`, current);
			await this.repairLost().catch(err => this.logger.warn(`Repair after a lost epoch failed (next tick tries again): ${(err as Error).message}`));
			// Renewals move leases only, not owners or epochs: `current` stays what the next steps need.
			await this.renew(sentAt, current, answers);
			// The backlog (a call to the event log, slow when it is out of reach) only matters for a fail-back.
			const away = current.some(r => r.home === this.me && r.owner !== this.me);
			const steps = nextSteps(
				{ me: this.me, rows: current, health: this.watcher.view(), startedAt: this.startedAt, backlog: away ? await this.backlog() : {}, now: Date.now() },
				this.cfg,
			);
			for (const step of steps) {
				if (this.moving.has(step.home)) continue;
				this.moving.add(step.home);
				// In the background: a takeover waits for its votes and a catch-up, and pings go on meanwhile.
				this.carryOut(step)
					.catch(err => this.logger.warn(`${step.kind} of ${step.home} failed: ${(err as Error).message}`))
					.finally(() => this.moving.delete(step.home));
			}
		},
		/** The leases granted by a majority (this region included) run from the pings' sending. */
		async renew(this: RegionsThis, sentAt: number, rows: OwnerRow[], answers: (PingAnswer | undefined)[]) {
			const now = Date.now();
			for (const row of rows.filter(r => r.owner === this.me)) {
				const self = this.promises.renew(row.home, this.me, row.epoch, row, now) === undefined ? 1 : 0;
				const granted = self + answers.filter(a => a?.granted.includes(row.home)).length;
				const until = leaseAfter(sentAt, granted, this.regions.length, this.cfg);
				if (until !== undefined)
					await this.pool.query(
						`UPDATE ownership_leases SET lease_until = to_timestamp($3 / 1000.0)
						  WHERE home_region = $1 AND owner = $2 AND epoch = $4 AND (lease_until IS NULL OR lease_until < to_timestamp($3 / 1000.0))`,
						[row.home, this.me, until, row.epoch],
					);
				const left = (until ?? row.leaseUntil ?? Number.NEGATIVE_INFINITY) - now;
				this.broker.metrics.set(M.LEASE_AGE, Number.isFinite(left) ? left : -1, { home: row.home });
			}
			for (const row of rows) this.broker.metrics.set(M.OWNER_EPOCH, row.epoch, { home: row.home, owner: row.owner });
		},
		async carryOut(this: RegionsThis, step: Step) {
			if (step.kind === "failback") return this.failBack(step);
			const view = (await this.readRows()).find(r => r.home === step.home);
			if (!view || view.owner !== step.from || view.epoch + 1 !== step.epoch) return;
			return this.takeOver(step, view);
		},
		async takeOver(this: RegionsThis, step: Step, view: Owner) {
			const down = (r: string) => r !== this.me && this.watcher.health(r) === "down";
			if (Date.now() < this.promises.freeAt(step.home)) return; // this region's promise to the old owner runs on
			// Everything the lost region published is applied here before this region writes what it wrote
			// (CLAIM_DURABILITY=replicated: every acknowledged claim is in the log, so none is lost). First, so that
			// the votes, which grant the first lease, are fresh when the row is written.
			const waitMs = this.cfg.durability === "replicated" ? 60_000 : this.cfg.leaseMs;
			const caughtUp = await this.caughtUpWith(view.owner, waitMs);
			if (!caughtUp && this.cfg.durability === "replicated") {
				this.logger.warn(`Takeover of ${step.home} waits: ${view.owner}'s log is not applied here to its end`);
				return;
			}
			const sentAt = Date.now();
			const self = this.promises.vote(step.home, this.me, step.epoch, view, { ownerDown: down(view.owner), successor: successorOf(view.owner, this.cfg.order, down) }, sentAt);
			if (self) {
				this.logger.debug(`Not taking ${step.home} over: ${self}`);
				return;
			}
			const voters = this.regions.filter(r => r !== this.me && r !== view.owner);
			const votes = await Promise.all(
				voters.map(r =>
					this.call<{ ok: boolean; reason?: string }>(r, "regions.vote", { home: step.home, candidate: this.me, epoch: step.epoch }, this.cfg.timeoutMs).catch(
						(err: Error) => ({ ok: false, reason: err.message }),
					),
				),
			);
			const yes = 1 + votes.filter(v => v.ok).length;
			// A vote stands for leaseMs: a round that took longer concludes nothing (src/regions/lease.ts).
			if (!concludes(sentAt, Date.now(), this.cfg)) return;
			if (yes < majority(this.regions.length)) {
				this.logger.debug(`Takeover of ${step.home} at epoch ${step.epoch}: ${yes} of ${this.regions.length} votes`, { votes: votes.map((v, i) => ({ region: voters[i], ...v })) });
				return;
			}
			// The old owner's lease is surely over: its log is cut here, and applied to the cut, before the first write.
			if (!(await this.fenceOff(view.owner, step.home, step.epoch, Math.max(waitMs, 10_000)))) {
				this.logger.warn(`Takeover of ${step.home} waits: ${view.owner}'s log is not fenced and applied here yet`);
				return;
			}
			if (!this.holds()) return;
			// The votes are the first lease's grants (a voter promises the new owner as a renewal would).
			const u = await this.pool.query(
				`UPDATE ownership_leases SET owner = $2, epoch = $3, lease_until = to_timestamp($4 / 1000.0), updated_at = now()
				  WHERE home_region = $1 AND epoch < $3`,
				[step.home, this.me, step.epoch, sentAt + this.cfg.leaseMs],
			);
			if (!u.rowCount) return;
			this.decided("took over", { home: step.home, from: view.owner, epoch: step.epoch, votes: yes, caughtUp, reason: step.reason });
			this.broker.metrics.increment(M.FAILOVERS, { home: step.home });
			this.changed();
		},
		async failBack(this: RegionsThis, step: Step) {
			// Not before this region has taken the successor's rows for what it lost.
			const { rows: unrepaired } = await this.pool.query(`SELECT 1 FROM lost_epochs WHERE home_region = $1 AND repaired_at IS NULL`, [step.home]);
			if (unrepaired.length) return;
			const answer = await this.call<{ epoch: number }>(step.from, "regions.handBack", { home: step.home, epoch: step.epoch - 1 }, 30_000);
			// What the other region wrote until it stopped is applied here first.
			if (!(await this.fenceOff(step.from, step.home, answer.epoch, 30_000))) {
				this.logger.warn(`Fail-back of ${step.home}: ${step.from}'s log is not applied here yet; the next tick tries again`);
				return;
			}
			if (!this.holds()) return;
			const u = await this.pool.query(
				`UPDATE ownership_leases SET owner = $2, epoch = $3, lease_until = '-infinity', updated_at = now() WHERE home_region = $1 AND epoch < $3`,
				[step.home, this.me, answer.epoch],
			);
			if (!u.rowCount) return;
			this.decided("failed back", { home: step.home, from: step.from, epoch: answer.epoch, reason: step.reason });
			this.changed();
		},
		async backlog(this: RegionsThis) {
			// An internal action: asked as this service (src/lib/request-context.ts).
			const status = await serviceContext(this)
				.call<ReplicationStatus, undefined>("replication.status", undefined, { timeout: 3000 })
				.catch((err: Error) => {
					this.logger.debug(`Replication status unknown: ${err.message}`);
					return undefined;
				});
			return Object.fromEntries((status?.sources ?? []).map(s => [s.source, s.backlog ?? undefined]));
		},
		/**
		 * Whether this region has applied everything `source` had published when this was asked (its log may go on
		 * growing: a region handing back keeps writing its own entities), within `timeoutMs`.
		 */
		async caughtUpWith(this: RegionsThis, source: string, timeoutMs: number) {
			const ask = <T>(action: string, params: unknown) =>
				serviceContext(this).call<T, unknown>(action, params, { timeout: 5000 });
			const upTo = await ask<LogPosition>("replication.ends", { source }).catch(() => undefined);
			if (!upTo) return false;
			for (const until = Date.now() + timeoutMs; !this.stopping; await sleep(50)) {
				if ((await ask<number>("replication.behind", { source, upTo }).catch(() => undefined)) === 0) return true;
				if (Date.now() > until) return false;
			}
			return false;
		},
		/**
		 * Cuts `source`'s log for `home` at `epoch` (a marker in each of its partitions: services/replication.service.ts
		 * `fence`) and waits until this region has applied it to the markers: from here on no region applies what
		 * `source` wrote of `home` under an older epoch, and this region has everything before.
		 */
		async fenceOff(this: RegionsThis, source: string, home: string, epoch: number, timeoutMs: number) {
			try {
				await serviceContext(this).call("replication.fence", { source, homeRegion: home, epoch }, { timeout: 15_000 });
			} catch (err) {
				this.logger.warn(`Fencing ${source}'s log for ${home} at epoch ${epoch} failed: ${(err as Error).message}`);
				return false;
			}
			this.decided("fenced", { home, source, epoch });
			return this.caughtUpWith(source, timeoutMs);
		},
		/** One structured log line per decision: what, and the figures that led to it. */
		decided(this: RegionsThis, what: string, details: Record<string, unknown>) {
			this.logger.info(`Failover: ${what}`, { decision: what, region: this.me, ...details });
		},
		/** The nodes of this region reload the epochs they write under (services/claiming.service.ts). */
		changed(this: RegionsThis) {
			this.broker.broadcast("ownership.changed");
		},
	},
	created(this: RegionsThis) {
		this.moving = new Set();
		this.pingErrors = new Map();
		this.stopping = false;
		this.linked = false;
	},
	async started(this: RegionsThis) {
		const cfg = appConfig(this.broker);
		this.cfg = cfg.failover;
		this.me = cfg.region;
		this.regions = cfg.regions;
		this.startedAt = Date.now();
		this.watcher = new Watcher(
			cfg.regions.filter(r => r !== cfg.region),
			{ failuresToDown: this.cfg.failuresToDown, successesToUp: this.cfg.successesToUp, flapWindowMs: this.cfg.flapWindowMs },
			this.startedAt,
		);
		if (this.cfg.enabled && !this.role) throw new Error("With FAILOVER=on the regions service is created by the region role (this file's default export), which holds the region's role lock");
		// A node that takes the role over knows nothing of what the last one promised, which went on promising until
		// it last saw the lock (at most holdMs before this node took it): no vote for a lease's length after that.
		this.promises = new Promises(cfg.region, this.cfg, this.startedAt + (this.role?.holdMs ?? 0));
		// Known series start at 0 (dashboards show 0, not "no data"); this region is up as far as it knows.
		const m = this.broker.metrics;
		m.set(M.REGION_HEALTH, 1, { peer: cfg.region });
		for (const home of cfg.regions) for (const name of [M.FAILOVERS, M.FAILBACKS, M.RECONCILED]) m.increment(name, { home }, 0);
		if (!this.cfg.enabled) return;
		const loop = async () => {
			try {
				this.ticking = this.tick();
				await this.ticking;
			} catch (err) {
				this.logger.warn(`Failover tick failed: ${(err as Error).message}`);
			} finally {
				this.ticking = undefined;
				if (!this.stopping) this.timer = setTimeout(loop, Math.max(0, this.cfg.intervalMs - ((Date.now() - this.startedAt) % this.cfg.intervalMs)));
			}
		};
		this.timer = setTimeout(loop, 0);
		this.logger.info(`Failover on: watching ${this.watcher ? cfg.regions.filter(r => r !== cfg.region).join(", ") : ""} every ${this.cfg.intervalMs} ms, leases of ${this.cfg.leaseMs} ms`);
	},
	async stopped(this: RegionsThis) {
		this.stopping = true;
		clearTimeout(this.timer);
		await this.ticking?.catch(() => undefined);
	},
};

interface RoleThis extends Service {
	db?: Database;
	lock?: RoleLock;
	/** How long a lock seen held lets the active node act (a verification every holdMs / 4). */
	holdMs: number;
	stopping: boolean;
	running?: Promise<void>;
	holds(): boolean;
	serve(cfg: FailoverConfig): Promise<void>;
	announce(): Promise<void>;
}

/**
 * The region role: with FAILOVER=on, the node that holds the region's role lock runs the `regions` service, and
 * the others (k8s runs two replicas) stand by; a standby takes the lock within pollMs of the active node's death,
 * before the other regions see this one down (WATCH_FAILURES pings) or its lease runs out. Without failover, the
 * `regions` service (status only) runs on every node that runs this file.
 */
const RegionRole: WalletService<RoleThis> = {
	name: "region-role",
	methods: {
		holds(this: RoleThis) {
			return !!this.lock && Date.now() - this.lock.seenAt < this.holdMs;
		},
		/**
		 * Once `regions` is registered here, the region's nodes hear of it at once (Moleculer sends a node's new services
		 * after a second's debounce), then forget the node that had it (mixins/role-follower.mixin.ts): it may have died
		 * unannounced, and calls balanced onto it would time out until the heartbeat timeout.
		 */
		async announce(this: RoleThis) {
			const registry = this.broker.registry as unknown as { services: { has(name: string, nodeID: string): boolean }; discoverer: { sendLocalNodeInfo(): Promise<void> } };
			for (const until = Date.now() + 10_000; !registry.services.has("regions", this.broker.nodeID); await sleep(10))
				if (Date.now() > until || this.stopping) return;
			await registry.discoverer.sendLocalNodeInfo();
			await this.broker.broadcast(ROLE_TAKEN, { node: this.broker.nodeID });
		},
		/** Takes the lock, runs `regions` while it holds, and stands by again if the lock is lost. */
		async serve(this: RoleThis, cfg: FailoverConfig) {
			const role = this;
			while (!this.stopping) {
				const waitedFrom = Date.now();
				if (!(await this.lock!.acquire(() => this.stopping, m => this.logger.info(m)))) return;
				this.broker.metrics.set(M.ROLE_ACTIVE, 1);
				this.logger.info("Failover: role taken", { decision: "role taken", region: appConfig(this.broker).region, node: this.broker.nodeID, waitedMs: Date.now() - waitedFrom });
				const svc = this.broker.createService({
					...RegionsService,
					mixins: [...(RegionsService.mixins ?? []), { created(this: RegionsThis) { this.role = role; } }],
				} as ServiceSchema);
				await this.announce();
				while (!this.stopping && (await this.lock!.verify())) await sleep(this.holdMs / 4);
				if (this.stopping) return;
				this.broker.metrics.set(M.ROLE_ACTIVE, 0);
				this.logger.warn("Failover: role lost", { decision: "role lost", region: appConfig(this.broker).region, node: this.broker.nodeID, reason: this.lock!.lost });
				await this.broker.destroyService(svc).catch((err: Error) => this.logger.warn(`Stopping the regions service: ${err.message}`));
				await sleep(cfg.intervalMs);
			}
		},
	},
	created(this: RoleThis) {
		this.stopping = false;
	},
	async started(this: RoleThis) {
		const cfg = appConfig(this.broker);
		this.holdMs = 2 * cfg.failover.intervalMs;
		if (!cfg.failover.enabled) {
			this.broker.metrics.set(M.ROLE_ACTIVE, 1);
			this.broker.createService(RegionsService as ServiceSchema);
			return;
		}
		this.broker.metrics.set(M.ROLE_ACTIVE, 0);
		this.db = await acquireDatabase(cfg, m => this.logger.info(m));
		this.lock = new RoleLock({ url: this.db.url, name: roleLockName(cfg.region), holder: this.broker.nodeID, pollMs: cfg.failover.intervalMs / 2 });
		this.running = this.serve(cfg.failover).catch(err => this.logger.error(`The region role stopped: ${(err as Error).message}`));
	},
	async stopped(this: RoleThis) {
		this.stopping = true;
		// The broker stops `regions` itself; from the release on, it acts no more (holds() is false).
		await this.lock?.release();
		this.broker.metrics.set(M.ROLE_ACTIVE, 0);
		await this.running;
		if (this.db) await releaseDatabase(this.db);
	},
};

export { RegionsService };
export default RegionRole;
