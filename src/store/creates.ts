// Creating supplies and orders: one statement for any number of them (the rows, their first events, and the
// fence), so a create is one round trip and atomic without an explicit transaction, and the creates that meet on
// a node leave together (group commit: CreateBatcher below, docs/claim-path.md). The rows are written only while
// this region owns its home region (the `ownership` row); the events carry that epoch.
import type { Pool } from "pg";
import { Errors } from "moleculer";
import type { Order, OrderItem, Supply } from "../domain/types";
import { Batcher, togetherElseAlone, type BatcherOptions, type Settled } from "../lib/batcher";

export interface NewSupply {
	id: string;
	userId: string;
	asset: string;
	amount: string;
}

export interface NewOrder {
	id: string;
	userId: string;
	asset: string;
	items: OrderItem[];
	amount: string;
	ttlSec: number;
}

const notOwner = (region: string) =>
	new Errors.MoleculerRetryableError("This region does not own its entities now; retry", 503, "NOT_OWNER", { homeRegion: region });

/** The created rows in the order of `input`: RETURNING promises no order. */
function inOrder<T extends { id: string }>(input: { id: string }[], rows: T[], region: string): T[] {
	// Every row or none: the fence is one row for the whole statement.
	if (rows.length === 0) throw notOwner(region);
	const byId = new Map(rows.map(r => [r.id, r]));
	return input.map(i => {
		const row = byId.get(i.id);
		if (!row) throw new Error(`create: no row came back for ${i.id}`);
		return row;
	});
}

export async function createSupplies(db: Pool, region: string, input: NewSupply[]): Promise<Supply[]> {
	const r = await db.query<{ supply: Supply }>({
		name: "create-supplies",
		text: `WITH w AS (SELECT epoch FROM ownership WHERE home_region = $2 AND owner = $2),
		      i AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, "userId" text, asset text, amount numeric)),
		      s AS (INSERT INTO supplies (id, user_id, asset, amount, home_region)
		            SELECT i.id, i."userId", i.asset, i.amount, $2 FROM i, w RETURNING *),
		      e AS (INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
		            SELECT gen_random_uuid(), 'supply', s.id, s.version, 'SupplyCreated', $2, s.home_region, w.epoch, api_supply(s) FROM s, w)
		 SELECT api_supply(s) AS supply FROM s`,
		values: [JSON.stringify(input), region],
	});
	return inOrder(
		input,
		r.rows.map(x => x.supply),
		region,
	);
}

export async function createOrders(db: Pool, region: string, input: NewOrder[]): Promise<Order[]> {
	const r = await db.query<{ order: Order }>({
		name: "create-orders",
		text: `WITH w AS (SELECT epoch FROM ownership WHERE home_region = $2 AND owner = $2),
		      i AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, "userId" text, asset text, items jsonb, amount numeric, "ttlSec" int)),
		      o AS (INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
		            SELECT i.id, i."userId", i.asset, i.items, i.amount, $2, now() + make_interval(secs => i."ttlSec") FROM i, w RETURNING *),
		      e AS (INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
		            SELECT gen_random_uuid(), 'order', o.id, o.version, 'OrderCreated', $2, o.home_region, w.epoch, api_order(o) FROM o, w)
		 SELECT api_order(o) AS order FROM o`,
		values: [JSON.stringify(input), region],
	});
	return inOrder(
		input,
		r.rows.map(x => x.order),
		region,
	);
}

export const createSupply = async (db: Pool, a: NewSupply & { region: string }): Promise<Supply> => (await createSupplies(db, a.region, [a]))[0];
export const createOrder = async (db: Pool, a: NewOrder & { region: string }): Promise<Order> => (await createOrders(db, a.region, [a]))[0];

/**
 * Group commit of one kind of create: what is submitted while earlier statements are in flight leaves in the next
 * one. If that statement fails, each create in it runs alone, so one the database refuses fails only itself; a
 * region that does not own its entities refuses them all at once (NOT_OWNER).
 */
export class CreateBatcher<I extends { id: string }, O> {
	private readonly batcher: Batcher<I, Settled<O>>;

	/** `expired`: the error of a create whose caller's deadline passed while it queued (it is not run). */
	constructor(create: (items: I[]) => Promise<O[]>, options: BatcherOptions, expired: () => Error) {
		this.batcher = new Batcher<I, Settled<O>>(
			items =>
				togetherElseAlone(
					items,
					create,
					async item => (await create([item]))[0],
					error => (error as Errors.MoleculerError).type === "NOT_OWNER",
				),
			options,
			expired,
		);
	}

	async submit(item: I, deadline?: number): Promise<O> {
		const r = await this.batcher.submit(item, deadline);
		if (!r.ok) throw r.error;
		return r.value;
	}
}
