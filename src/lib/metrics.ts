// Domain metrics, registered in Moleculer's metric registry so the built-in Prometheus reporter
// exports them next to Moleculer's own (requests, breakers, bulkheads, cacher). Labels are bounded:
// outcomes, statuses, error codes; never ids.
import type { Middleware, ServiceBroker } from "moleculer";
import { MetricReporters } from "moleculer";
import { openDatabases } from "../db";

export const M = {
	CLAIMS: "wallet.claims.total",
	CLAIM_DURATION: "wallet.claim.duration",
	CONFLICTS: "wallet.conflicts.total",
	ORDERS: "wallet.orders",
	SUPPLIES: "wallet.supplies",
	SWEEPER_RELEASES: "wallet.sweeper.releases.total",
	SWEEPER_FAILURES: "wallet.sweeper.failures.total",
	COMMAND_BATCH: "wallet.order.command.batch.size",
	RATE_LIMITED: "wallet.ratelimit.rejections.total",
	CACHED_READS: "wallet.gateway.cached.reads.total",
	OUTBOX_BACKLOG: "wallet.outbox.backlog",
	DB_POOL: "wallet.db.pool.connections",
	REPL_PUBLISHED: "wallet.replication.published.total",
	REPL_APPLIED: "wallet.replication.applied.total",
	REPL_APPLY_ERRORS: "wallet.replication.apply.errors.total",
	REPL_RELAY_ERRORS: "wallet.replication.relay.errors.total",
	REPL_LAG: "wallet.replication.lag",
	FORWARDED: "wallet.forwarded.total",
	REROUTED: "wallet.rerouted.total",
	REGION_HEALTH: "wallet.region.health",
	OWNER_EPOCH: "wallet.ownership.epoch",
	LEASE_AGE: "wallet.ownership.lease.remaining",
	FAILOVERS: "wallet.failovers.total",
	ROLE_ACTIVE: "wallet.region.role.active",
	FAILBACKS: "wallet.failbacks.total",
	FENCED: "wallet.fenced.writes.total",
	RECONCILED: "wallet.reconciled.events.total",
} as const;

export type ClaimOutcome = "won" | "conflict" | "insufficient" | "replayed" | "rejected" | "error";

export function registerDomainMetrics(broker: ServiceBroker) {
	const m = broker.metrics;
	if (!m.isEnabled() || m.getMetric(M.CLAIMS)) return;
	m.register({ name: M.CLAIMS, type: "counter", labelNames: ["outcome"], description: "Claim attempts by outcome", rate: true });
	m.register({
		name: M.CLAIM_DURATION,
		type: "histogram",
		labelNames: ["outcome"],
		unit: "millisecond",
		description: "Time to decide a claim, from the claiming action's start",
		buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
	});
	m.register({ name: M.CONFLICTS, type: "counter", labelNames: ["code"], description: "409 refusals by error code", rate: true });
	m.register({ name: M.ORDERS, type: "gauge", labelNames: ["status"], description: "Orders by status (this region's database)" });
	m.register({ name: M.SUPPLIES, type: "gauge", labelNames: ["status"], description: "Supplies by status" });
	m.register({ name: M.SWEEPER_RELEASES, type: "counter", labelNames: ["kind"], description: "Claims released and orders expired by the sweeper" });
	m.register({ name: M.SWEEPER_FAILURES, type: "counter", labelNames: ["kind"], description: "Expired claims and orders the sweeper could not process (logged and skipped)" });
	m.register({
		name: M.COMMAND_BATCH,
		type: "histogram",
		description: "Order commands committed together in one transaction (group commit)",
		buckets: [1, 2, 4, 8, 16, 32, 64, 128],
	});
	m.register({ name: M.RATE_LIMITED, type: "counter", labelNames: ["by"], description: "Requests refused by the rate limiter" });
	m.register({ name: M.CACHED_READS, type: "counter", labelNames: ["entity"], description: "GETs of one entity answered by the gateway from the cache, before moleculer-web and the actions", rate: true });
	m.register({ name: M.OUTBOX_BACKLOG, type: "gauge", description: "Outbox events not yet published" });
	m.register({ name: M.DB_POOL, type: "gauge", labelNames: ["state"], description: "pg pool connections: total, idle, waiting, max" });
	m.register({ name: M.REPL_PUBLISHED, type: "counter", description: "Outbox events this region published to the event log", rate: true });
	m.register({ name: M.REPL_APPLIED, type: "counter", labelNames: ["source", "result"], description: "Other regions' events applied here (result: applied, skipped as old or repeated, fenced as written under an epoch a takeover ended)", rate: true });
	m.register({ name: M.REPL_APPLY_ERRORS, type: "counter", labelNames: ["source"], description: "Event batches whose apply failed (redelivered)" });
	m.register({ name: M.REPL_RELAY_ERRORS, type: "counter", description: "Relay rounds that failed (retried)" });
	m.register({
		name: M.REPL_LAG,
		type: "histogram",
		labelNames: ["source"],
		unit: "millisecond",
		description: "Replication lag: from an event's commit in its region to its apply here",
		buckets: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
	});
	m.register({ name: M.REROUTED, type: "counter", labelNames: ["target"], description: "Calls sent to another region because no node of their service was alive here" });
	m.register({ name: M.FORWARDED, type: "counter", labelNames: ["target"], description: "Writes forwarded to the region that owns the entity's home region", rate: true });
	m.register({ name: M.REGION_HEALTH, type: "gauge", labelNames: ["peer"], description: "Each region's health (peer) as this region's watcher sees it: 1 up, 0.5 suspect, 0 down" });
	m.register({ name: M.OWNER_EPOCH, type: "gauge", labelNames: ["home", "owner"], description: "The epoch under which each home region is owned, as this region's rows say (owner: who writes it)" });
	m.register({ name: M.LEASE_AGE, type: "gauge", labelNames: ["home"], unit: "millisecond", description: "What is left of this region's lease on each home region it owns (negative: expired, writes refused)" });
	m.register({ name: M.ROLE_ACTIVE, type: "gauge", description: "1 on the node that acts for its region (it holds the region role lock; every such node with failover off), 0 on a standby" });
	m.register({ name: M.FAILOVERS, type: "counter", labelNames: ["home"], description: "Home regions this region took over from a lost owner" });
	m.register({ name: M.FAILBACKS, type: "counter", labelNames: ["home"], description: "Home regions handed back to their home region" });
	m.register({ name: M.FENCED, type: "counter", description: "Writes refused as NOT_OWNER here (no lease, or another region owns the home region now)" });
	m.register({ name: M.RECONCILED, type: "counter", labelNames: ["home"], description: "Events this region wrote under an epoch it lost while away: never published, their rows taken from the successor" });
	m.increment(M.FENCED, undefined, 0);
	// Known label values start at 0, so dashboards show 0 rather than "no data" before the first event.
	for (const outcome of ["won", "conflict", "insufficient", "replayed", "rejected", "error"]) m.increment(M.CLAIMS, { outcome }, 0);
	for (const kind of ["claim", "order"]) {
		m.increment(M.SWEEPER_RELEASES, { kind }, 0);
		m.increment(M.SWEEPER_FAILURES, { kind }, 0);
	}
	for (const by of ["user", "ip"]) m.increment(M.RATE_LIMITED, { by }, 0);
}

/** Registers the domain metrics and samples the pg pools on Moleculer's collect interval. */
export function DomainMetricsMiddleware(): Middleware {
	let timer: NodeJS.Timeout | undefined;
	return {
		name: "DomainMetrics",
		created(broker: ServiceBroker) {
			registerDomainMetrics(broker);
		},
		started(broker: ServiceBroker) {
			if (!broker.metrics.isEnabled()) return;
			const sample = () => {
				let total = 0, idle = 0, waiting = 0, max = 0;
				for (const pool of openDatabases()) {
					total += pool.totalCount;
					idle += pool.idleCount;
					waiting += pool.waitingCount;
					max += pool.options.max ?? 10;
				}
				broker.metrics.set(M.DB_POOL, max, { state: "max" });
				broker.metrics.set(M.DB_POOL, total, { state: "total" });
				broker.metrics.set(M.DB_POOL, idle, { state: "idle" });
				broker.metrics.set(M.DB_POOL, waiting, { state: "waiting" });
			};
			sample();
			timer = setInterval(sample, 5000).unref();
		},
		stopped() {
			clearInterval(timer);
		},
	} as unknown as Middleware;
}

/** Moleculer's Prometheus reporter throws an uncaught EADDRINUSE when its port is taken; log it instead. */
export class SafePrometheusReporter extends ((MetricReporters as any).Prometheus as new (opts: object) => any) {
	init(registry: any) {
		super.init(registry);
		this.server.on("error", (err: Error) =>
			this.logger.error(`Prometheus metrics endpoint could not listen on port ${this.opts.port}: ${err.message}`),
		);
	}
}
