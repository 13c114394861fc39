// Claiming: a shopper claims an open order with one of their supplies. This service also hosts the
// order actor: `claiming.command` is routed by order id (Shard strategy) so all commands for one
// order reach one node, where a per-order mailbox runs them one at a time. PostgreSQL row locks and
// unique indexes stay the final guard when the node set changes under the shard ring.
import type { Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { CacheMixin, findAction, ownLists } from "../mixins/cache.mixin";
import { appConfig } from "../mixins/config";
import { ACTOR, IDEMPOTENT_WRITE, READ, WRITE } from "../src/lib/fault-tolerance";
import { DbMixin } from "../mixins/db.mixin";
import { checkReplay } from "../src/domain/claim";
import { conflict, notFound } from "../src/domain/errors";
import { isAdmin } from "../src/domain/permissions";
import type { Claim, User } from "../src/domain/types";
import { AVAILABLE_SHARD } from "../src/lib/available-shard";
import { Mailbox } from "../src/lib/mailbox";
import { M, type ClaimOutcome } from "../src/lib/metrics";
import { paging, status, uuid } from "../src/lib/params";
import {
	cancelOrder,
	claimOrder,
	completeOrder,
	expiredClaims,
	expireOrders,
	findClaimByKey,
	releaseClaim,
	type CommandContext,
} from "../src/store/commands";
import { getClaim, listClaims } from "../src/store/queries";

type Meta = { user: User; $statusCode?: number; $location?: string; $responseHeaders?: Record<string, string> };
type Ctx<P = Record<string, any>> = Context<P, Meta>;

interface CommandParams {
	op: "claim" | "release" | "complete" | "cancel";
	orderId: string;
	supplyId?: string;
	claimId?: string;
	idempotencyKey?: string;
}

const SWEEP_BATCH = 100;

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

function replayed(ctx: Ctx, claim: Claim) {
	created(ctx, claim);
	ctx.meta.$responseHeaders = { "Idempotent-Replayed": "true" };
	return claim;
}

const ClaimingService: WalletService = {
	name: "claiming",
	mixins: [DbMixin, CacheMixin],
	actions: {
		claim: {
			...IDEMPOTENT_WRITE,
			permission: "claim:write",
			params: {
				orderId: uuid,
				supplyId: uuid,
				idempotencyKey: { type: "string", min: 1, max: 128, pattern: /^[\x21-\x7e]+$/ },
			},
			async handler(this: any, ctx: Ctx<{ orderId: string; supplyId: string; idempotencyKey: string }>) {
				const started = performance.now();
				let outcome: ClaimOutcome = "error";
				try {
					const result: { claim: Claim; replayed: boolean } = await this.claim(ctx);
					outcome = result.replayed ? "replayed" : "won";
					return result.replayed ? replayed(ctx, result.claim) : created(ctx, result.claim);
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
			async handler(this: any, ctx: Ctx<{ id: string }>) {
				const claim: Claim | null = await ctx.call("claiming.find", { id: ctx.params.id });
				if (!claim || (claim.claimerId !== ctx.meta.user.id && !isAdmin(ctx.meta.user))) throw notFound("claim");
				return claim;
			},
		},
		find: findAction(getClaim),
		list: {
			...READ,
			permission: "claim:read",
			params: { status: status(["active", "settled", "released"]), ...paging },
			cache: {
				keys: ["#user.id", "status", "page", "pageSize"],
				kind: "list",
				generations: (ctx: Ctx) => ownLists("claiming", ctx.meta.user?.id),
			},
			handler(this: any, ctx: Ctx<{ status?: string; page?: number; pageSize?: number }>) {
				return listClaims(this.pool, { ...ctx.params, userId: ctx.meta.user.id });
			},
		},
		release: {
			...WRITE,
			permission: "claim:write",
			params: { id: uuid },
			async handler(this: any, ctx: Ctx<{ id: string }>) {
				const claim = await getClaim(this.pool, ctx.params.id);
				if (!claim || (claim.claimerId !== ctx.meta.user.id && !isAdmin(ctx.meta.user))) throw notFound("claim");
				const result = await ctx.call<{ claim: Claim }, CommandParams>("claiming.command", {
					op: "release",
					orderId: claim.orderId,
					claimId: claim.id,
				});
				return result.claim;
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
			handler(this: any, ctx: Ctx<CommandParams>) {
				// Cache invalidation runs after the mailbox task (the next command does not wait on it), before the answer.
				return this.runThenInvalidate(ctx, () => this.mailbox.run(ctx.params.orderId, () => this.execute(ctx)));
			},
		},
	},
	methods: {
		/** Replays a known Idempotency-Key at once; sends anything new to the order actor. */
		async claim(this: any, ctx: Ctx<{ orderId: string; supplyId: string; idempotencyKey: string }>) {
			const { orderId, supplyId, idempotencyKey } = ctx.params;
			// Fast path for retries: no need to queue behind the order's other commands.
			const existing = await findClaimByKey(this.pool, ctx.meta.user.id, idempotencyKey);
			if (existing) {
				checkReplay(existing, orderId, supplyId);
				return { claim: existing, replayed: true };
			}
			const result = await ctx.call<{ claim: Claim; replayed: boolean }, CommandParams>("claiming.command", {
				op: "claim",
				orderId,
				supplyId,
				idempotencyKey,
			});
			return { claim: result.claim, replayed: result.replayed };
		},
		commandContext(this: any): CommandContext {
			return { region: appConfig(this.broker).region, epoch: 0, now: new Date() };
		},
		async execute(this: any, ctx: Ctx<CommandParams>) {
			const p = ctx.params;
			const user = ctx.meta.user;
			const cc = this.commandContext();
			switch (p.op) {
				case "claim": {
					const result = await this.tx((c: any) =>
						claimOrder(c, cc, {
							orderId: p.orderId,
							supplyId: p.supplyId!,
							claimerId: user.id,
							idempotencyKey: p.idempotencyKey!,
							holdSec: appConfig(this.broker).claimHoldSec,
						}),
					).catch((err: any) => this.onClaimConflict(err, user, p));
					if (!result.replayed) {
						this.logger.info(`Order ${p.orderId} claimed`, { claimId: result.claim.id, amount: result.claim.amount });
						await this.invalidate({ order: result.order, supply: result.supply, claiming: result.claim }, ctx);
					}
					return result;
				}
				case "release": {
					const claimerId = isAdmin(user) ? null : user.id;
					const result = await this.tx((c: any) => releaseClaim(c, cc, { orderId: p.orderId, claimId: p.claimId!, claimerId }));
					this.logger.info(`Claim ${p.claimId} released`, { orderId: p.orderId });
					await this.invalidate({ order: result.order, supply: result.supply, claiming: result.claim }, ctx);
					return result;
				}
				case "complete": {
					const result = await this.tx((c: any) => completeOrder(c, cc, { orderId: p.orderId, buyerId: user.id }));
					this.logger.info(`Order ${p.orderId} completed`, { claimId: result.claim.id });
					await this.invalidate({ order: result.order, supply: result.supply, claiming: result.claim }, ctx);
					return result;
				}
				case "cancel": {
					const result = await this.tx((c: any) => cancelOrder(c, cc, { orderId: p.orderId, buyerId: user.id }));
					this.logger.info(`Order ${p.orderId} cancelled`);
					await this.invalidate({ order: result.order }, ctx);
					return result;
				}
			}
		},
		/** Unique-index races: the same key used concurrently for another order, or a second live claim. */
		async onClaimConflict(this: any, err: any, user: User, p: CommandParams) {
			if (err?.code !== "23505") throw err;
			if (err.constraint === "claims_idempotency") {
				const existing = await findClaimByKey(this.pool, user.id, p.idempotencyKey!);
				if (existing) {
					checkReplay(existing, p.orderId, p.supplyId!);
					return { claim: existing, replayed: true };
				}
			}
			throw conflict("ORDER_NOT_OPEN", "The order was claimed by someone else", { id: p.orderId, status: "claimed" });
		},
		/** Expires open orders and releases claims whose hold ran out. Safe on any number of nodes. */
		async sweep(this: any) {
			const cc = this.commandContext();
			const expired = await this.tx((c: any) => expireOrders(c, cc, SWEEP_BATCH));
			if (expired.length) this.broker.metrics.increment(M.SWEEPER_RELEASES, { kind: "order" }, expired.length);
			if (expired.length) await this.invalidate(expired.map((order: any) => ({ order })));
			for (const due of await expiredClaims(this.pool, SWEEP_BATCH)) {
				const r = await this.tx((c: any) =>
					releaseClaim(c, cc, { orderId: due.orderId, claimId: due.id, claimerId: null, skipLocked: true }),
				);
				if (r) {
					this.broker.metrics.increment(M.SWEEPER_RELEASES, { kind: "claim" });
					this.logger.info(`Released claim ${due.id}: its hold expired`);
					await this.invalidate({ order: r.order, supply: r.supply, claiming: r.claim });
				}
			}
			return { expiredOrders: expired.length };
		},
		/** Entity counts by status and the outbox backlog, for the gauges. */
		async sampleGauges(this: any) {
			const { rows } = await this.pool.query(
				`SELECT 'order' AS kind, status, count(*)::int AS n FROM orders GROUP BY status
				 UNION ALL SELECT 'supply', status, count(*)::int FROM supplies GROUP BY status
				 UNION ALL SELECT 'outbox', 'pending', count(*)::int FROM outbox WHERE published_at IS NULL`,
			);
			const m = this.broker.metrics;
			for (const status of ["open", "claimed", "completed", "cancelled", "expired"]) m.set(M.ORDERS, 0, { status });
			for (const status of ["active", "paused", "closed"]) m.set(M.SUPPLIES, 0, { status });
			m.set(M.OUTBOX_BACKLOG, 0);
			for (const r of rows) {
				if (r.kind === "order") m.set(M.ORDERS, r.n, { status: r.status });
				else if (r.kind === "supply") m.set(M.SUPPLIES, r.n, { status: r.status });
				else m.set(M.OUTBOX_BACKLOG, r.n);
			}
		},
	},
	created(this: any) {
		this.mailbox = new Mailbox();
	},
	started(this: any) {
		const interval = appConfig(this.broker).sweepIntervalMs;
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
	async stopped(this: any) {
		this.stopping = true;
		clearTimeout(this.sweepTimer);
		clearInterval(this.gaugeTimer);
		await this.sweeping?.catch(() => undefined);
	},
};

export default ClaimingService;
