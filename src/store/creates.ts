// Creating a supply or an order: one statement each (the row, its first event, and the fence), so a create
// is one round trip and atomic without an explicit transaction. The row is written only while this region
// owns its home region (the `ownership` row); the event carries that epoch.
import type { Pool } from "pg";
import { Errors } from "moleculer";
import type { Order, OrderItem, Supply } from "../domain/types";

const notOwner = (region: string) =>
	new Errors.MoleculerRetryableError("This region does not own its entities now; retry", 503, "NOT_OWNER", { homeRegion: region });

export async function createSupply(
	db: Pool,
	a: { id: string; userId: string; asset: string; amount: string; region: string },
): Promise<Supply> {
	const r = await db.query<{ supply: Supply }>({
		name: "create-supply",
		text: `WITH w AS (SELECT epoch FROM ownership WHERE home_region = $5 AND owner = $5),
		      s AS (INSERT INTO supplies (id, user_id, asset, amount, home_region)
		            SELECT $1, $2, $3, $4, $5 FROM w RETURNING *),
		      e AS (INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
		            SELECT gen_random_uuid(), 'supply', s.id, s.version, 'SupplyCreated', $5, s.home_region, w.epoch, api_supply(s) FROM s, w)
		 SELECT api_supply(s) AS supply FROM s`,
		values: [a.id, a.userId, a.asset, a.amount, a.region],
	});
	if (!r.rows[0]) throw notOwner(a.region);
	return r.rows[0].supply;
}

export async function createOrder(
	db: Pool,
	a: { id: string; userId: string; asset: string; items: OrderItem[]; amount: string; region: string; ttlSec: number },
): Promise<Order> {
	const r = await db.query<{ order: Order }>({
		name: "create-order",
		text: `WITH w AS (SELECT epoch FROM ownership WHERE home_region = $6 AND owner = $6),
		      o AS (INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
		            SELECT $1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7) FROM w RETURNING *),
		      e AS (INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
		            SELECT gen_random_uuid(), 'order', o.id, o.version, 'OrderCreated', $6, o.home_region, w.epoch, api_order(o) FROM o, w)
		 SELECT api_order(o) AS order FROM o`,
		values: [a.id, a.userId, a.asset, JSON.stringify(a.items), a.amount, a.region, a.ttlSec],
	});
	if (!r.rows[0]) throw notOwner(a.region);
	return r.rows[0].order;
}
