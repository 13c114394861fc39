// Supply: shoppers' funds put up to fill orders. Only the owner sees or changes a supply;
// its reserved and spent balances move only through claims (the claiming service).
import { randomUUID } from "node:crypto";
import { Errors, type Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { appConfig } from "../mixins/config";
import { READ, WRITE } from "../src/lib/fault-tolerance";
import { CacheMixin, findAction, ownLists, type CacheThis } from "../mixins/cache.mixin";
import { DbMixin, type DbThis } from "../mixins/db.mixin";
import { deadlineOf, skipped } from "../middlewares/deadline";
import { assetDecimals } from "../src/domain/assets";
import { notFound } from "../src/domain/errors";
import { positiveAmount, toNumeric } from "../src/domain/money";
import { canViewSupply, isAdmin } from "../src/domain/permissions";
import { decideAmountChange, decideSupplyTransition, type SupplyCommand } from "../src/domain/supply";
import type { Supply, User } from "../src/domain/types";
import { amount, asset, paging, status, uuid } from "../src/lib/params";
import { CreateBatcher, createSupplies, type NewSupply } from "../src/store/creates";
import { endHold, holdSupply, type HoldRequest } from "../src/store/holds";
import { appendEvents, notDurable, waitPublished } from "../src/store/outbox";
import { getSupply, listSupplies } from "../src/store/queries";
import { SUPPLY_COLS, toSupply } from "../src/store/rows";

type Ctx<P = Record<string, any>> = Context<P, { user: User; $statusCode?: number; $location?: string }>;

interface SupplyThis extends DbThis, CacheThis {
	creates: CreateBatcher<NewSupply, Supply>;
	change(ctx: Ctx, id: string, eventType: string, decide: (s: Supply) => Record<string, string>): Promise<Supply>;
}

const notOwner = (homeRegion: string) =>
	new Errors.MoleculerRetryableError("This region does not own the supply now; retry", 503, "NOT_OWNER", { homeRegion });

const transition = (cmd: SupplyCommand) => ({
	...WRITE,
	home: true,
	permission: "supply:write",
	params: { id: uuid },
	async handler(this: SupplyThis, ctx: Ctx<{ id: string }>) {
		return this.change(ctx, ctx.params.id, `Supply${cmd[0].toUpperCase()}${cmd.slice(1)}d`, (s: Supply) => ({
			status: decideSupplyTransition(s, cmd),
		}));
	},
});

const SupplyService: WalletService<SupplyThis> = {
	name: "supply",
	mixins: [DbMixin, CacheMixin],
	actions: {
		/**
		 * Holds funds for a claim that another region writes (its order's home region): called over the region
		 * link by that region's order actor, for the claimer it verified. Idempotent by claim id.
		 */
		hold: {
			...WRITE,
			permission: "internal",
			visibility: "public",
			params: {
				claimId: uuid,
				supplyId: uuid,
				orderId: uuid,
				claimerId: { type: "string", min: 1, max: 256 },
				asset,
				amount: { type: "string", min: 1, max: 64 },
				orderRegion: { type: "string", min: 1, max: 64 },
			},
			async handler(this: SupplyThis, ctx: Context<HoldRequest>) {
				const cfg = appConfig(this.broker);
				const { supply, replayed } = await holdSupply(this.pool, cfg.region, ctx.params);
				if (!replayed) {
					this.logger.info(`Supply ${supply.id}: held for claim ${ctx.params.claimId} of region ${ctx.params.orderRegion}`);
					await this.invalidate({ supply });
				}
				// With failover, the hold is in the event log before the claim that counts on it is written: a region
				// that takes this supply's home over sees it (else it could promise the same funds twice).
				if (cfg.failover.enabled && cfg.replication.mode !== "off" && !(await waitPublished(this.pool, { aggregateId: supply.id, version: supply.version }, Date.now() + cfg.requestTimeoutMs / 2)))
					throw notDurable("The hold", { claimId: ctx.params.claimId });
				return supply;
			},
		},
		/** Gives back the funds of a hold whose claim was never written (the order's region voided it). */
		releaseHold: {
			...WRITE,
			permission: "internal",
			visibility: "public",
			params: { claimId: uuid },
			async handler(this: SupplyThis, ctx: Context<{ claimId: string }>) {
				const supply = await endHold(this.pool, appConfig(this.broker).region, ctx.params.claimId, "released");
				if (supply) {
					this.logger.info(`Supply ${supply.id}: hold of claim ${ctx.params.claimId} released`);
					await this.invalidate({ supply });
				}
				return { released: !!supply };
			},
		},
		create: {
			...WRITE,
			permission: "supply:write",
			params: { asset, amount },
			async handler(this: SupplyThis, ctx: Ctx<{ asset: string; amount: string }>) {
				const cfg = appConfig(this.broker);
				const units = positiveAmount(ctx.params.amount, assetDecimals(cfg.assets, ctx.params.asset));
				const supply = await this.creates.submit(
					{ id: randomUUID(), userId: ctx.meta.user.id, asset: ctx.params.asset, amount: toNumeric(units) },
					deadlineOf(ctx),
				);
				this.logger.info(`Supply ${supply.id} created`, { amount: supply.amount, asset: supply.asset });
				await this.invalidate({ supply: { id: supply.id, userId: supply.userId, created: true } });
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/supplies/${supply.id}`;
				return supply;
			},
		},
		get: {
			...READ,
			permission: "supply:read",
			params: { id: uuid },
			async handler(this: SupplyThis, ctx: Ctx<{ id: string }>) {
				const s: Supply | null = await ctx.call("supply.find", { id: ctx.params.id });
				if (!s || !canViewSupply(ctx.meta.user, s)) throw notFound("supply");
				return s;
			},
		},
		find: findAction(getSupply),
		list: {
			...READ,
			permission: "supply:read",
			params: { asset: { ...asset, optional: true }, status: status(["active", "paused", "closed"]), ...paging },
			cache: {
				keys: ["#user.id", "asset", "status", "page", "pageSize"],
				kind: "list",
				generations: (ctx: Ctx) => ownLists("supply", ctx.meta.user?.id),
			},
			handler(this: SupplyThis, ctx: Ctx<{ asset?: string; status?: string; page?: number; pageSize?: number }>) {
				return listSupplies(this.pool, { ...ctx.params, userId: ctx.meta.user.id });
			},
		},
		update: {
			...WRITE,
			home: true,
			permission: "supply:write",
			params: { id: uuid, amount },
			async handler(this: SupplyThis, ctx: Ctx<{ id: string; amount: string }>) {
				return this.change(ctx, ctx.params.id, "SupplyAmountChanged", (s: Supply) => {
					const units = positiveAmount(ctx.params.amount, assetDecimals(appConfig(this.broker).assets, s.asset));
					return { amount: toNumeric(decideAmountChange(s, units)) };
				});
			},
		},
		pause: transition("pause"),
		resume: transition("resume"),
		close: transition("close"),
	},
	methods: {
		/**
		 * Locks the caller's own supply (never another user's row), lets `decide` compute the new columns, and
		 * writes them and the event, fenced by this region's ownership of the supply's home region.
		 */
		async change(this: SupplyThis, ctx: Ctx, id: string, eventType: string, decide: (s: Supply) => Record<string, string>) {
			const region = appConfig(this.broker).region;
			const supply = await this.tx(async c => {
				const r = await c.query(
					`SELECT ${SUPPLY_COLS}, EXISTS (SELECT 1 FROM ownership w WHERE w.home_region = supplies.home_region AND w.owner = $4) AS owned
					   FROM supplies WHERE id = $1 AND (user_id = $2 OR $3) FOR UPDATE`,
					[id, ctx.meta.user.id, isAdmin(ctx.meta.user), region],
				);
				const s = r.rows[0] && toSupply(r.rows[0]);
				if (!s) throw notFound("supply");
				// Decided by the region that writes it, on its row, never on a copy here.
				if (!r.rows[0].owned) throw notOwner(s.homeRegion);
				const changes = decide(s);
				const cols = Object.keys(changes);
				const set = cols.map((col, i) => `${col} = $${i + 3}`).join(", ");
				const u = await c.query(
					`UPDATE supplies s SET ${set}, version = version + 1, updated_at = now()
					   FROM ownership w WHERE s.id = $1 AND w.home_region = s.home_region AND w.owner = $2
					 RETURNING s.*, s.amount - s.reserved - s.spent AS available, w.epoch`,
					[id, region, ...cols.map(col => changes[col])],
				);
				if (!u.rows[0]) throw notOwner(s.homeRegion);
				const updated = toSupply(u.rows[0]);
				await appendEvents(c, [
					{
						aggregateType: "supply",
						aggregateId: id,
						version: updated.version,
						type: eventType,
						region,
						homeRegion: updated.homeRegion,
						epoch: Number(u.rows[0].epoch),
						payload: updated,
					},
				]);
				return updated;
			});
			this.logger.info(`Supply ${id}: ${eventType}`, { version: supply.version });
			await this.invalidate({ supply });
			return supply;
		},
	},
	created(this: SupplyThis) {
		const cfg = appConfig(this.broker);
		// this.pool is read per batch: DbMixin sets it once started.
		this.creates = new CreateBatcher(items => createSupplies(this.pool, cfg.region, items), cfg.createBatch, skipped("supply.create"));
	},
};

export default SupplyService;
