// Replication between regions (brief §5, docs/multi-region.md): the outbox relay publishes this region's
// committed events to the event log, and the applier applies every other region's events to this region's
// database, then makes the caches forget what changed. Moleculer wiring only: the work is in src/replication.
// Any number of nodes may run it: one relay per region is active at a time (an advisory lock), and the
// appliers of a region share the log's partitions in one consumer group.
import { randomUUID } from "node:crypto";
import { Errors, type Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { CacheMixin, type CacheThis } from "../mixins/cache.mixin";
import { appConfig } from "../mixins/config";
import { DbMixin, type DbThis } from "../mixins/db.mixin";
import { cacheChanges } from "../src/lib/cache-keys";
import { M } from "../src/lib/metrics";
import { Applier } from "../src/replication/applier";
import { applyGroup, eventLogFor, type OwnedLog } from "../src/replication";
import { fenceEvent, type LogPosition } from "../src/replication/event-log";
import { OutboxRelay } from "../src/replication/relay";

interface ReplicationThis extends DbThis, CacheThis {
	owned?: OwnedLog;
	relay?: OutboxRelay;
	pruning?: NodeJS.Timeout;
	applier?: Applier;
}

export interface SourceStatus {
	source: string;
	applied: number;
	skipped: number;
	lastEventAt: string | null;
	lastAppliedAt: string | null;
	lastLagMs: number | null;
	backlog: number | null;
}

export interface ReplicationStatus {
	region: string;
	mode: "kafka" | "memory" | "off";
	sources: SourceStatus[];
	/** Who writes each home region, under which epoch, as this region's database says. */
	ownership: { homeRegion: string; owner: string; epoch: number; leaseUntil: string | null }[];
	/** Outbox events of this region not yet published. */
	unpublished: number;
}

/** Most event ids one `applied` call takes. */
export const APPLIED_ASK_MAX = 5000;
/** How often the ids of applied events are pruned (migrations/*_log-fences.sql prune_applied_events). */
const PRUNE_EVERY_MS = 10_000;

const ReplicationService: WalletService<ReplicationThis> = {
	name: "replication",
	mixins: [DbMixin, CacheMixin],
	actions: {
		/** Where `source`'s log ends now (failover: "caught up with what it had published until now"). */
		ends: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: { source: { type: "string", min: 1, max: 64 } },
			async handler(this: ReplicationThis, ctx: Context<{ source: string }>): Promise<LogPosition> {
				if (!this.owned) throw new Errors.MoleculerError("Replication is off", 409, "REPLICATION_OFF");
				return this.owned.log.ends(ctx.params.source);
			},
		},
		/** How many of `source`'s events this region has yet to apply (only those before `upTo`, if given). */
		behind: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: { source: { type: "string", min: 1, max: 64 }, upTo: { type: "object", optional: true } },
			async handler(this: ReplicationThis, ctx: Context<{ source: string; upTo?: LogPosition }>): Promise<number> {
				if (!this.owned) throw new Errors.MoleculerError("Replication is off", 409, "REPLICATION_OFF");
				return this.owned.log.backlog(applyGroup(appConfig(this.broker)), ctx.params.source, ctx.params.upTo);
			},
		},
		/**
		 * This region owns `homeRegion` from `epoch` on: a marker in every partition of `source`'s log (its owner
		 * until now) makes every region skip what that log holds of it under an older epoch after this point.
		 */
		fence: {
			permission: "internal",
			visibility: "public",
			timeout: 15_000,
			params: { source: { type: "string", min: 1, max: 64 }, homeRegion: { type: "string", min: 1, max: 64 }, epoch: { type: "number", integer: true, positive: true } },
			async handler(this: ReplicationThis, ctx: Context<{ source: string; homeRegion: string; epoch: number }>): Promise<void> {
				if (!this.owned) throw new Errors.MoleculerError("Replication is off", 409, "REPLICATION_OFF");
				const { source, homeRegion, epoch } = ctx.params;
				await this.owned.log.fence(source, fenceEvent({ source, homeRegion, epoch, owner: appConfig(this.broker).region, eventId: randomUUID() }));
			},
		},
		/** Which of these events this region has applied (a returning region asks its successor: see repairLost). */
		applied: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: { eventIds: { type: "array", max: APPLIED_ASK_MAX, items: "uuid" } },
			async handler(this: ReplicationThis, ctx: Context<{ eventIds: string[] }>): Promise<string[]> {
				const { rows } = await this.pool.query<{ id: string }>(`SELECT event_id::text AS id FROM applied_events WHERE event_id = ANY($1::uuid[])`, [ctx.params.eventIds]);
				return rows.map(r => r.id);
			},
		},
		/** This region's rows of the given aggregates, as events would carry them (no payload: no such row here). */
		snapshot: {
			permission: "internal",
			visibility: "public",
			timeout: 5000,
			params: {
				aggregates: {
					type: "array",
					max: 10_000,
					items: { type: "object", props: { aggregateType: { type: "enum", values: ["supply", "order", "claim"] }, aggregateId: "uuid" } },
				},
			},
			async handler(this: ReplicationThis, ctx: Context<{ aggregates: { aggregateType: string; aggregateId: string }[] }>) {
				const { rows } = await this.pool.query(
					`SELECT a.t AS "aggregateType", a.id AS "aggregateId", coalesce(s.version, o.version, c.version) AS version,
					        CASE WHEN s.id IS NOT NULL THEN api_supply(s) WHEN o.id IS NOT NULL THEN api_order(o)
					             WHEN c.id IS NOT NULL THEN api_claim(c) END AS payload
					   FROM jsonb_to_recordset($1::jsonb) AS a(t text, id uuid)
					   LEFT JOIN supplies s ON a.t = 'supply' AND s.id = a.id
					   LEFT JOIN orders o ON a.t = 'order' AND o.id = a.id
					   LEFT JOIN claims c ON a.t = 'claim' AND c.id = a.id`,
					[JSON.stringify(ctx.params.aggregates.map(x => ({ t: x.aggregateType, id: x.aggregateId })))],
				);
				return rows.map(r => (r.payload ? r : { aggregateType: r.aggregateType, aggregateId: r.aggregateId }));
			},
		},
		/** What this region has applied from each other region, and what it has yet to. */
		status: {
			permission: "internal",
			visibility: "public",
			timeout: 3000,
			async handler(this: ReplicationThis): Promise<ReplicationStatus> {
				const cfg = appConfig(this.broker);
				// The lanes of a source summed; the lag of its newest apply.
				const { rows } = await this.pool.query(
					`SELECT source, sum(applied) AS applied, sum(skipped) AS skipped, max(last_event_at) AS last_event_at,
					        max(last_applied_at) AS last_applied_at,
					        (array_agg(last_lag_ms ORDER BY last_applied_at DESC NULLS LAST))[1] AS last_lag_ms
					   FROM replication_progress GROUP BY source`,
				);
				const backlog = await this.applier?.backlog().catch(() => undefined);
				const sources = cfg.regions
					.filter(r => r !== cfg.region)
					.map(source => {
						const r = rows.find(x => x.source === source);
						return {
							source,
							applied: Number(r?.applied ?? 0),
							skipped: Number(r?.skipped ?? 0),
							lastEventAt: r?.last_event_at?.toISOString() ?? null,
							lastAppliedAt: r?.last_applied_at?.toISOString() ?? null,
							lastLagMs: r?.last_lag_ms ?? null,
							backlog: backlog?.[source] ?? null,
						};
					});
				const owners = await this.pool.query(`SELECT home_region, owner, epoch, CASE WHEN isfinite(lease_until) THEN lease_until END AS lease_until FROM ownership_leases ORDER BY home_region`);
				// O(1): the unpublished rows are the tail of the outbox (its partial index), counted up to a bound.
				const pending = await this.pool.query(
					`SELECT count(*)::int AS n FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 100000) x`,
				);
				return {
					region: cfg.region,
					mode: cfg.replication.mode,
					sources,
					ownership: owners.rows.map(o => ({
						homeRegion: o.home_region,
						owner: o.owner,
						epoch: Number(o.epoch),
						leaseUntil: o.lease_until ? o.lease_until.toISOString() : null,
					})),
					unpublished: pending.rows[0].n,
				};
			},
		},
	},
	async started(this: ReplicationThis) {
		const cfg = appConfig(this.broker);
		const r = cfg.replication;
		if (r.mode === "off") {
			this.logger.info("Replication is off (one region, or no KAFKA_BROKERS)");
			return;
		}
		const logger = this.logger;
		this.owned = await eventLogFor(cfg, (level, message) => (level === "error" ? logger.warn(message) : logger.debug(message)));
		const log = this.owned!.log;
		const metrics = this.broker.metrics;
		this.relay = new OutboxRelay(this.pool, log, {
			region: cfg.region,
			// Under the database's idle-in-transaction timeout: the relay's transaction waits on the publish.
			publishTimeoutMs: cfg.pgTimeouts.idleInTxMs > 0 ? Math.min(5000, cfg.pgTimeouts.idleInTxMs / 2) : 5000,
			batch: r.relayBatch,
			pollMs: r.relayPollMs,
			lingerMs: r.relayLingerMs,
			onPublished: n => metrics.increment(M.REPL_PUBLISHED, undefined, n),
			onUnconfirmed: n => logger.warn(`${n} event(s) reached the log after this region's lease ran out: left unpublished until the lease is back or they are superseded`),
			onError: err => {
				metrics.increment(M.REPL_RELAY_ERRORS);
				logger.warn(`Relay round failed (retrying): ${err.message}`);
			},
		});
		this.applier = new Applier(this.pool, log, {
			region: cfg.region,
			regions: cfg.regions,
			group: applyGroup(cfg),
			onApplied: async (d, result) => {
				const now = Date.now();
				for (const e of d.events) metrics.observe(M.REPL_LAG, now - Date.parse(e.createdAt), { source: d.source });
				if (result.applied) metrics.increment(M.REPL_APPLIED, { source: d.source, result: "applied" }, result.applied);
				if (result.skipped) metrics.increment(M.REPL_APPLIED, { source: d.source, result: "skipped" }, result.skipped);
				if (result.fenced) {
					metrics.increment(M.REPL_APPLIED, { source: d.source, result: "fenced" }, result.fenced);
					logger.warn(`Skipped ${result.fenced} event(s) of ${d.source} written under an epoch fenced off by a takeover`);
				}
				// A cache that cannot be reached degrades (SafeRedisCacher); the rows are already committed.
				if (result.changed.length) await this.invalidate(cacheChanges(result.changed, d.events)).catch(() => undefined);
			},
			onError: (err, d) => {
				metrics.increment(M.REPL_APPLY_ERRORS, { source: d.source });
				logger.warn(`Applying ${d.events.length} events from ${d.source} failed (redelivering): ${err.message}`);
			},
		});
		this.relay.start();
		await this.applier.start();
		// Applied ids are kept a minute (a lost region's last batch is younger), those of an ended epoch a week.
		this.pruning = setInterval(() => {
			this.pool.query(`SELECT prune_applied_events(interval '1 minute', interval '7 days', 20000)`).catch(err => logger.debug(`Pruning applied events failed: ${err.message}`));
		}, PRUNE_EVERY_MS);
		this.logger.info(`Replication on (${r.mode}): publishing ${cfg.region}, applying ${this.applier.sources.join(", ") || "nothing"}`);
	},
	async stopped(this: ReplicationThis) {
		clearInterval(this.pruning);
		await this.relay?.stop();
		await this.applier?.stop();
		if (this.owned?.closeOnStop) await this.owned.log.close();
	},
};

export default ReplicationService;
