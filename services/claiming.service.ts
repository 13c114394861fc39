// Claiming: a shopper claims an open order with one of their supplies. This service also hosts the
// order actor: `claiming.command` is routed by order id (Shard strategy) so all commands for one
// order reach one node, where a per-order mailbox runs them one at a time. Commands of different
// orders that meet on a node are committed together (group commit, src/lib/batcher.ts) by one
// server-side function; PostgreSQL row locks and unique indexes stay the final guard when the node set
// changes under the shard ring.
import { Errors, type Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { CacheMixin, findAction, type CacheThis } from "../mixins/cache.mixin";
import type { Changes } from "../src/lib/cache-keys";
import { appConfig } from "../mixins/config";
import { ACTOR, CLAIM, READ, WRITE } from "../src/lib/fault-tolerance";
import { deadlineOf, skipped } from "../middlewares/deadline";
import { DbMixin, type DbThis } from "../mixins/db.mixin";
import { notFound } from "../src/domain/errors";
import { canViewClaim, isAdmin } from "../src/domain/permissions";
import type { Claim, Order, Supply, User } from "../src/domain/types";
import { AVAILABLE_SHARD } from "../src/lib/available-shard";
import { Batcher } from "../src/lib/batcher";
import { durableOrder, notDurable, whenDurable } from "../src/store/outbox";
import { Mailbox } from "../src/lib/mailbox";
import { M, type ClaimOutcome } from "../src/lib/metrics";
import { paging, status, uuid } from "../src/lib/params";
import {
	ownerOf,
	runCommands,
	sweep,
	type CommandResult,
	type OrderCommand,
	type Outcome,
} from "../src/store/commands";
import { getClaim, listClaims } from "../src/store/queries";
import { claimIdFor, confirmHold, endHold, unconfirmedHolds, voidClaim } from "../src/store/holds";
import { regionLink } from "../src/regions/link";
import { failpoint } from "../src/lib/failpoints";
import { serviceContext } from "../src/lib/request-context";

type Meta = { user: User; $statusCode?: number; $location?: string; $responseHeaders?: Record<string, string> };
type Ctx<P = Record<string, any>> = Context<P, Meta>;

export interface CommandParams {
	op: "claim" | "release" | "complete" | "cancel";
	orderId: string;
	supplyId?: string;
	claimId?: string;
	idempotencyKey?: string;
}

interface ClaimingThis extends DbThis, CacheThis {
	mailbox: Mailbox;
	batcher: Batcher<OrderCommand, Outcome>;
	epochs: Record<string, number>;
	stopping?: boolean;
	sweeping?: Promise<unknown>;
	sweepTimer?: NodeJS.Timeout;
	gaugeTimer?: NodeJS.Timeout;
	lastPrune: number;
	command(ctx: Ctx<CommandParams>): Promise<CommandResult>;
	sweep(): Promise<{ released: number; expired: number; failed: number }>;
	claimAcross(ctx: Ctx<CommandParams>, cmd: OrderCommand & { op: "claim" }, need: { homeRegion: string; amount: string; asset: string }): Promise<CommandResult>;
	resolveHolds(): Promise<number>;
	loadEpochs(): Promise<void>;
	sampleGauges(): Promise<void>;
	pruneOutbox(): Promise<number>;
}

function claimOutcome(err: { code?: number; type?: string }): ClaimOutcome {
	if (err.type === "INSUFFICIENT_SUPPLY") return "insufficient";
	if (err.code === 409) return "conflict";
	if (typeof err.code === "number" && err.code < 500) return "rejected";
	return "error";
}

function created(ctx: Ctx, claim: Claim) {
	ctx.meta.$statusCode = 201;
	ctx.meta.$location = `/api/v1/claims/${claim.id}`;
	return claim;
}

const DONE = { claim: "claimed", release: "released", complete: "completed", cancel: "cancelled" } as const;

const expired = skipped("claiming.command");

/** The command the SQL runs, from the actor's params and the acting user. */
function toCommand(p: CommandParams, user: User): OrderCommand {
	const admin = isAdmin(user);
	switch (p.op) {
		case "claim":
			return { op: "claim", orderId: p.orderId, supplyId: p.supplyId!, userId: user.id, key: p.idempotencyKey! };
		case "release":
			return { op: "release", orderId: p.orderId, claimId: p.claimId!, userId: user.id, admin };
		default:
			return { op: p.op, orderId: p.orderId, userId: user.id, admin };
	}
}

const ClaimingService: WalletService<ClaimingThis> = {
	name: "claiming",
	mixins: [DbMixin, CacheMixin],
	actions: {
		claim: {
			...CLAIM,
			home: true,
			// Routed like the order actor's inbox: the claim lands on the node that holds its order's mailbox, and
			// its `claiming.command` is a local call instead of another hop over the transporter.
			strategy: AVAILABLE_SHARD,
			strategyOptions: { shardKey: "orderId" },
			permission: "claim:write",
			params: {
				orderId: uuid,
				supplyId: uuid,
				idempotencyKey: { type: "string", min: 1, max: 128, pattern: /^[\x21-\x7e]+$/ },
			},
			async handler(this: ClaimingThis, ctx: Ctx<{ orderId: string; supplyId: string; idempotencyKey: string }>) {
				const started = performance.now();
				let outcome: ClaimOutcome = "error";
				try {
					const { orderId, supplyId, idempotencyKey } = ctx.params;
					const result = await ctx.call<CommandResult, CommandParams>("claiming.command", {
						op: "claim",
						orderId,
						supplyId,
						idempotencyKey,
					});
					// CLAIM_DURABILITY=replicated: acknowledged once the claim is in the event log, outside this region;
					// answered before the action's own timeout, so the caller learns why.
					const cfg = appConfig(this.broker);
					const claimId = result.claim!.id;
					await whenDurable(this.pool, cfg, { claimId }, Date.now() + cfg.requestTimeoutMs * 0.8 - (performance.now() - started), () =>
						notDurable("The claim", { claimId }),
					);
					outcome = result.replayed ? "replayed" : "won";
					if (result.replayed) ctx.meta.$responseHeaders = { "Idempotent-Replayed": "true" };
					return created(ctx, result.claim!);
				} catch (err: any) {
					outcome = claimOutcome(err);
					throw err;
				} finally {
					this.broker.metrics.increment(M.CLAIMS, { outcome });
					this.broker.metrics.observe(M.CLAIM_DURATION, performance.now() - started, { outcome });
				}
			},
		},
		get: {
			...READ,
			permission: "claim:read",
			params: { id: uuid },
			async handler(this: ClaimingThis, ctx: Ctx<{ id: string }>) {
				const claim: Claim | null = await ctx.call("claiming.find", { id: ctx.params.id });
				if (!claim || !canViewClaim(ctx.meta.user, claim)) throw notFound("claim");
				return claim;
			},
		},
		find: findAction(getClaim),
		list: {
			...READ,
			permission: "claim:read",
			params: { status: status(["active", "settled", "released"]), ...paging },
			cache: { keys: ["#user.id", "status", "page", "pageSize"], kind: "list" },
			handler(this: ClaimingThis, ctx: Ctx<{ status?: string; page?: number; pageSize?: number }>) {
				return listClaims(this.pool, { ...ctx.params, userId: ctx.meta.user.id });
			},
		},
		release: {
			...WRITE,
			home: true,
			permission: "claim:write",
			params: { id: uuid },
			async handler(this: ClaimingThis, ctx: Ctx<{ id: string }>) {
				const claim = await getClaim(this.pool, ctx.params.id);
				if (!claim || !canViewClaim(ctx.meta.user, claim)) throw notFound("claim");
				const until = Date.now() + appConfig(this.broker).requestTimeoutMs * 0.8;
				const result = await ctx.call<CommandResult, CommandParams>("claiming.command", {
					op: "release",
					orderId: claim.orderId,
					claimId: claim.id,
				});
				if (result.order) await durableOrder(this.pool, appConfig(this.broker), result.order, until);
				return result.claim;
			},
		},
		/** What became of a claim id a hold was made for: 'claimed', or 'void' from now on. Asked by the supply's region. */
		voidClaim: {
			...WRITE,
			permission: "internal",
			visibility: "public",
			params: { claimId: uuid },
			handler(this: ClaimingThis, ctx: Ctx<{ claimId: string }>) {
				return voidClaim(this.pool, ctx.params.claimId);
			},
		},
		/** The order actor's inbox. */
		command: {
			...ACTOR,
			permission: "internal",
			visibility: "public",
			strategy: AVAILABLE_SHARD,
			strategyOptions: { shardKey: "orderId" },
			params: {
				op: { type: "enum", values: ["claim", "release", "complete", "cancel"] },
				orderId: uuid,
				supplyId: { ...uuid, optional: true },
				claimId: { ...uuid, optional: true },
				idempotencyKey: { type: "string", optional: true },
			},
			async handler(this: ClaimingThis, ctx: Ctx<CommandParams>) {
				const deadline = deadlineOf(ctx);
				const result = await this.mailbox.run(ctx.params.orderId, () => this.command(ctx), deadline);
				// Outside the mailbox: the order's next command does not wait on the cache, but the caller
				// still gets its answer only after the cache forgot the old state (read-your-writes).
				if (!result.replayed) await this.invalidate({ order: result.order, supply: result.supply, claiming: result.claim });
				return result;
			},
		},
	},
	events: {
		// Failover moved a home region to or from this region (services/regions.service.ts): write under the new epochs.
		"ownership.changed"(this: ClaimingThis) {
			return this.loadEpochs().catch(err => this.logger.warn(`Epochs not reloaded: ${(err as Error).message}`));
		},
	},
	methods: {
		/** The epochs this region writes under: its ownership rows that name it (the SQL refuses any other). */
		async loadEpochs(this: ClaimingThis) {
			const r = await this.pool.query<{ home_region: string; epoch: string }>(
				`SELECT home_region, epoch FROM ownership_leases WHERE owner = $1`,
				[appConfig(this.broker).region],
			);
			this.epochs = Object.fromEntries(r.rows.map(x => [x.home_region, Number(x.epoch)]));
		},
		async command(this: ClaimingThis, ctx: Ctx<CommandParams>): Promise<CommandResult> {
			const p = ctx.params;
			if (p.op === "claim" && (!p.supplyId || !p.idempotencyKey)) throw new Errors.ValidationError("claim needs supplyId and idempotencyKey");
			if (p.op === "release" && !p.claimId) throw new Errors.ValidationError("release needs claimId");
			const deadline = deadlineOf(ctx);
			const cmd = toCommand(p, ctx.meta.user);
			const outcome = await this.batcher.submit(cmd, deadline);
			if (!outcome.ok && (outcome.error as Errors.MoleculerError).type === "HOLD_NEEDED" && cmd.op === "claim")
				return this.claimAcross(ctx, cmd, (outcome.error as Errors.MoleculerError).data);
			if (!outcome.ok) throw outcome.error;
			const r = outcome.value;
			if (!r.replayed) this.logger.info(`Order ${p.orderId} ${DONE[p.op]}`, { claimId: r.claim?.id, status: r.order.status });
			return r;
		},
		/**
		 * A claim whose supply another region writes, as a saga run inside this order's mailbox: hold the funds
		 * in the supply's region (idempotent by a claim id derived from the key), then write the claim here.
		 * If the claim is not written, its id is voided here first (so it never can be), then the hold is
		 * released; a hold whose release did not get through is found by that region's resolveHolds.
		 */
		async claimAcross(this: ClaimingThis, ctx: Ctx<CommandParams>, cmd, need) {
			const cfg = appConfig(this.broker);
			const link = regionLink(this.broker);
			const owner = await ownerOf(this.pool, need.homeRegion);
			if (!link || !owner || !link.reachable(owner))
				throw new Errors.MoleculerRetryableError(`The supply's region ${need.homeRegion} cannot be reached now; retry`, 503, "REGION_UNREACHABLE", {
					homeRegion: need.homeRegion,
				});
			const deadline = deadlineOf(ctx);
			const timeout = () => Math.max(100, (deadline ?? Date.now() + cfg.requestTimeoutMs) - Date.now());
			const claimId = claimIdFor(cmd.userId, cmd.key);
			const supply = await link.call<Supply>(
				owner,
				"supply.hold",
				{ claimId, supplyId: cmd.supplyId, orderId: cmd.orderId, claimerId: cmd.userId, asset: need.asset, amount: need.amount, orderRegion: cfg.region },
				{ meta: {}, asRegion: true, requestID: ctx.requestID ?? undefined, timeout: timeout(), caller: ctx },
			).catch((err: Errors.MoleculerError) => {
				// That region no longer writes the supply (its ownership is moving): not this order's NOT_OWNER.
				if (err?.type === "NOT_OWNER")
					throw new Errors.MoleculerRetryableError("The supply's region is changing owner; retry", 503, "REGION_UNREACHABLE", { homeRegion: need.homeRegion });
				throw err;
			});
			await failpoint(cfg.failpoints, "after-hold", line => this.logger.warn(`${line} (claim ${claimId})`));
			const second = await this.batcher.submit({ ...cmd, claimId, held: true }, deadline);
			if (second.ok) return { ...second.value, supply: second.value.replayed ? second.value.supply : supply };
			if ((await voidClaim(this.pool, claimId)) === "void") {
				await link
					.call(owner, "supply.releaseHold", { claimId }, { meta: {}, asRegion: true, requestID: ctx.requestID ?? undefined, timeout: timeout(), caller: ctx })
					.catch((err: Error) => this.logger.warn(`Hold of void claim ${claimId} not released yet (its region will): ${err.message}`));
			}
			throw second.error;
		},
		/**
		 * Holds this region keeps for claims of other regions that have not shown up in the log: ask the
		 * order's region what became of each. A void claim's funds are given back; a claimed one is confirmed
		 * (its settle or release arrives through the log). An order region that cannot be asked keeps the
		 * funds held: never released on a guess.
		 */
		async resolveHolds(this: ClaimingThis) {
			const cfg = appConfig(this.broker);
			const link = regionLink(this.broker);
			if (!link) return 0;
			let resolved = 0;
			for (const h of await unconfirmedHolds(this.pool, cfg.holdConfirmSec, 100, cfg.region)) {
				const owner = await ownerOf(this.pool, h.orderRegion);
				if (!owner || !link.reachable(owner)) continue;
				try {
					const fate = await link.call<"claimed" | "void">(owner, "claiming.voidClaim", { claimId: h.claimId }, {
						meta: {},
						asRegion: true,
						timeout: 5000,
						// Outside any request: the claiming service itself asks (across processes `link.forward` is internal).
						caller: serviceContext(this),
					});
					if (fate === "void") {
						const supply = await endHold(this.pool, cfg.region, h.claimId, "released");
						if (supply) await this.invalidate({ supply });
						this.logger.info(`Released the hold of claim ${h.claimId}: region ${owner} never wrote it`);
					} else await confirmHold(this.pool, h.claimId);
					resolved++;
				} catch (err) {
					this.logger.warn(`Hold of claim ${h.claimId} not resolved: ${(err as Error).message}`);
				}
			}
			return resolved;
		},
		/** Releases expired holds and expires old orders, a batch at a time until none is due. Safe on any number of nodes. */
		async sweep(this: ClaimingThis) {
			const cfg = appConfig(this.broker);
			const totals = { released: 0, expired: 0, failed: 0 };
			// A lost ownership.changed event costs at most one sweep interval.
			if (cfg.failover.enabled) await this.loadEpochs();
			// Holds of supplies written here whose claims have ended (see end_finished_holds).
			if (cfg.replication.mode !== "off") {
				const ended = await this.pool.query<{ n: number }>(`SELECT end_finished_holds($1, $2) AS n`, [cfg.region, cfg.sweepBatch]);
				if (ended.rows[0].n) this.logger.info(`Ended ${ended.rows[0].n} holds whose claims had ended`);
			}
			// Bounded, so one tick cannot run for ever while claims keep expiring.
			for (let round = 0; round < 20 && !this.stopping; round++) {
				const r = await sweep(this.pool, cfg.region, cfg.sweepBatch);
				totals.released += r.released.length;
				totals.expired += r.expired.length;
				totals.failed += r.failed.length;
				const m = this.broker.metrics;
				if (r.released.length) m.increment(M.SWEEPER_RELEASES, { kind: "claim" }, r.released.length);
				if (r.expired.length) m.increment(M.SWEEPER_RELEASES, { kind: "order" }, r.expired.length);
				for (const f of r.failed) {
					m.increment(M.SWEEPER_FAILURES, { kind: f.kind });
					this.logger.error(`Sweeper skipped ${f.kind} ${f.id}: ${f.sqlstate} ${f.message}`);
				}
				// One pipeline for the whole batch; the owners scope which lists miss.
				const changes: Changes[] = [
					...r.released.map(x => ({
						order: { id: x.orderId, userId: x.buyerId },
						supply: { id: x.supplyId, userId: x.claimerId },
						claiming: { id: x.claimId, claimerId: x.claimerId },
					})),
					...r.expired.map(o => ({ order: { id: o.id, userId: o.buyerId } })),
				];
				if (changes.length) await this.invalidate(changes);
				if (r.released.length) this.logger.info(`Released ${r.released.length} claims whose hold expired`);
				// A short batch may only mean another node holds the rest (SKIP LOCKED): stop when nothing moved.
				if (r.released.length === 0 && r.expired.length === 0) break;
			}
			await this.resolveHolds().catch((err: Error) => this.logger.warn(`Holds not resolved: ${err.message}`));
			if (Date.now() - this.lastPrune > 60_000) {
				this.lastPrune = Date.now();
				await this.pruneOutbox();
			}
			return totals;
		},
		/** Deletes outbox rows published longer ago than the retention; a bounded batch per call. */
		async pruneOutbox(this: ClaimingThis) {
			const r = await this.pool.query(
				`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT 10000)`,
				[appConfig(this.broker).outboxRetentionSec],
			);
			return r.rowCount ?? 0;
		},
		/** Entity counts by status and the outbox backlog, for the gauges: each read costs O(1) (entity_counts). */
		async sampleGauges(this: ClaimingThis) {
			// The deltas written since the last sample become totals: the read below touches a dozen rows.
			await this.pool.query("SELECT fold_entity_counts()");
			const { rows } = await this.pool.query(
				`SELECT kind, status, n FROM entity_counts WHERE kind IN ('order','supply')
				 UNION ALL
				 SELECT 'outbox', 'pending', coalesce(max(id) - min(id) + 1, 0) FROM outbox WHERE published_at IS NULL`,
			);
			const m = this.broker.metrics;
			for (const r of rows) {
				if (r.kind === "order") m.set(M.ORDERS, Number(r.n), { status: r.status });
				else if (r.kind === "supply") m.set(M.SUPPLIES, Number(r.n), { status: r.status });
				else m.set(M.OUTBOX_BACKLOG, Number(r.n));
			}
		},
	},
	created(this: ClaimingThis) {
		const cfg = appConfig(this.broker);
		this.mailbox = new Mailbox(expired);
		this.lastPrune = 0;
		this.epochs = {};
		this.batcher = new Batcher<OrderCommand, Outcome>(
			// this.epochs is read per batch: a reload (failover) applies to the next one.
			cmds => runCommands(this.pool, { region: cfg.region, epochs: this.epochs, holdSec: cfg.claimHoldSec }, cmds),
			cfg.claimBatch,
			expired,
			size => this.broker.metrics.observe(M.COMMAND_BATCH, size),
		);
	},
	async started(this: ClaimingThis) {
		const cfg = appConfig(this.broker);
		// The ownership rows exist: DbMixin's started (which runs first) made them once per pool.
		await this.loadEpochs();
		const interval = cfg.sweepIntervalMs;
		const tick = async () => {
			try {
				this.sweeping = this.sweep();
				await this.sweeping;
			} catch (err) {
				this.logger.warn(`Sweep failed: ${(err as Error).message}`);
			} finally {
				this.sweeping = undefined;
				if (!this.stopping) this.sweepTimer = setTimeout(tick, interval);
			}
		};
		this.sweepTimer = setTimeout(tick, interval);
		if (this.broker.metrics.isEnabled()) {
			const sample = () => this.sampleGauges().catch((err: Error) => this.logger.debug(`Gauges not sampled: ${err.message}`));
			void sample();
			this.gaugeTimer = setInterval(sample, 5000);
		}
	},
	async stopped(this: ClaimingThis) {
		this.stopping = true;
		clearTimeout(this.sweepTimer);
		clearInterval(this.gaugeTimer);
		await this.sweeping?.catch(() => undefined);
	},
};

export default ClaimingService;
