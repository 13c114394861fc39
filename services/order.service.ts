// Order: what a buyer wants filled. Creating and reading orders happens here; every command that
// changes an existing order goes to the order actor in the claiming service, one at a time per order.
import { randomUUID } from "node:crypto";
import type { Context } from "moleculer";
import type { WalletService } from "../mixins/schema";
import { CacheMixin, findAction, ownLists, publicOrders, type CacheThis } from "../mixins/cache.mixin";
import { appConfig } from "../mixins/config";
import { FORWARD, READ, WRITE } from "../src/lib/fault-tolerance";
import { DbMixin, type DbThis } from "../mixins/db.mixin";
import { deadlineOf, skipped } from "../middlewares/deadline";
import { assetDecimals } from "../src/domain/assets";
import { notFound, unprocessable } from "../src/domain/errors";
import { toNumeric } from "../src/domain/money";
import { orderAmount } from "../src/domain/order";
import { canViewOrder, isAdmin } from "../src/domain/permissions";
import type { Order, OrderItem, Page, User } from "../src/domain/types";
import { orderView } from "../src/domain/views";
import { asset, paging, status, text, uuid } from "../src/lib/params";
import { CreateBatcher, createOrders, type NewOrder } from "../src/store/creates";
import { durableOrder } from "../src/store/outbox";
import { getOrder, listOrders } from "../src/store/queries";
import type { CommandParams } from "./claiming.service";

type Ctx<P = Record<string, any>> = Context<P, { user: User; $statusCode?: number; $location?: string }>;

/** Nothing of its own: the database and the cache of its mixins. */
interface OrderThis extends DbThis, CacheThis {
	creates: CreateBatcher<NewOrder, Order>;
}

const ORDER_STATUSES = ["open", "claimed", "completed", "cancelled", "expired"];

const command = (op: "cancel" | "complete") => ({
	...FORWARD,
	home: true,
	permission: "order:write",
	params: { id: uuid },
	async handler(this: OrderThis, ctx: Ctx<{ id: string }>) {
		const until = Date.now() + appConfig(this.broker).requestTimeoutMs * 0.8;
		const { order } = await ctx.call<{ order: Order }, CommandParams>("claiming.command", { op, orderId: ctx.params.id });
		await durableOrder(this.pool, appConfig(this.broker), order, until);
		return orderView(order, ctx.meta.user);
	},
});

const OrderService: WalletService<OrderThis> = {
	name: "order",
	mixins: [DbMixin, CacheMixin],
	actions: {
		create: {
			...WRITE,
			permission: "order:write",
			params: {
				asset,
				items: {
					type: "array",
					min: 1,
					max: 100,
					items: {
						type: "object",
						strict: "remove",
						props: {
							sku: text(1, 64),
							name: text(1, 200),
							unitPrice: { type: "string", pattern: /^\d{1,20}(\.\d{1,18})?$/ },
							quantity: { type: "number", integer: true, min: 1, max: 1_000_000 },
						},
					},
				},
				expiresInSec: { type: "number", integer: true, min: 1, optional: true },
			},
			async handler(this: OrderThis, ctx: Ctx<{ asset: string; items: OrderItem[]; expiresInSec?: number }>) {
				const cfg = appConfig(this.broker);
				const ttl = ctx.params.expiresInSec ?? cfg.orderTtlSec;
				if (ttl > cfg.orderMaxTtlSec)
					throw unprocessable("INVALID_EXPIRY", `expiresInSec must be at most ${cfg.orderMaxTtlSec}`, {
						max: cfg.orderMaxTtlSec,
					});
				const items = ctx.params.items.map(({ sku, name, unitPrice, quantity }) => ({ sku, name, unitPrice, quantity }));
				const amount = orderAmount(items, assetDecimals(cfg.assets, ctx.params.asset));
				const order = await this.creates.submit(
					{ id: randomUUID(), userId: ctx.meta.user.id, asset: ctx.params.asset, items, amount: toNumeric(amount), ttlSec: ttl },
					deadlineOf(ctx),
				);
				this.logger.info(`Order ${order.id} created`, { amount: order.amount, asset: order.asset });
				await this.invalidate({ order: { id: order.id, userId: order.userId, created: true } });
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/orders/${order.id}`;
				return orderView(order, ctx.meta.user);
			},
		},
		get: {
			...READ,
			permission: "order:read",
			params: { id: uuid },
			async handler(this: OrderThis, ctx: Ctx<{ id: string }>) {
				const order: Order | null = await ctx.call("order.find", { id: ctx.params.id });
				if (!order || !canViewOrder(ctx.meta.user, order)) throw notFound("order");
				return orderView(order, ctx.meta.user);
			},
		},
		find: findAction(getOrder),
		list: {
			...READ,
			permission: "order:read",
			params: {
				asset: { ...asset, optional: true },
				status: status(ORDER_STATUSES),
				mine: { type: "boolean", convert: true, optional: true },
				...paging,
			},
			cache: {
				keys: ["#user.id", "#user.scopes", "asset", "status", "mine", "page", "pageSize"],
				kind: "list",
				generations: (ctx: Ctx<{ mine?: boolean }>) => (ctx.params.mine ? ownLists("order", ctx.meta.user?.id) : publicOrders()),
			},
			async handler(this: OrderThis, ctx: Ctx<{ asset?: string; status?: string; mine?: boolean; page?: number; pageSize?: number }>) {
				const user = ctx.meta.user;
				const page: Page<Order> = await listOrders(this.pool, { ...ctx.params, userId: user.id, admin: isAdmin(user) });
				return { ...page, rows: page.rows.map(o => orderView(o, user)) };
			},
		},
		cancel: command("cancel"),
		complete: command("complete"),
	},
	created(this: OrderThis) {
		const cfg = appConfig(this.broker);
		// this.pool is read per batch: DbMixin sets it once started.
		this.creates = new CreateBatcher(items => createOrders(this.pool, cfg.region, items), cfg.createBatch, skipped("order.create"));
	},
};

export default OrderService;
