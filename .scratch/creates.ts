import { migrate } from "../src/db/migrate";
import { ensureOwnership } from "../src/store/commands";
import { createOrder } from "../src/store/creates";
import { createTestDatabase } from "../test/helpers/db";
import { cpuMs } from "../bench/proc";
import { randomUUID } from "node:crypto";
const REGION = "us-central1";
const N = 4000;
const items = [{ sku: "s", name: "n", unitPrice: "0.001", quantity: 1 }];
async function main() {
	const db = await createTestDatabase();
	try {
		await migrate(db.pool);
		await ensureOwnership(db.pool, [REGION]);
		const c = await db.pool.connect();
		const pid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
		const one = () => createOrder(c as any, { id: randomUUID(), userId: "u", asset: "ETH", items, amount: "0.001", region: REGION, ttlSec: 600 });
		const measure = async (label: string, f: () => Promise<void>) => {
			const c0 = cpuMs(pid), t0 = Date.now();
			await f();
			console.log(`${label}: PG CPU ${Math.round(((cpuMs(pid) - c0) / N) * 1000)} µs a create, wall ${Math.round(((Date.now() - t0) / N) * 1000)} µs`);
		};
		for (let i = 0; i < 1000; i++) await one();
		const many = async (k: number) => {
			const input = Array.from({ length: k }, () => ({ id: randomUUID(), user_id: "u", asset: "ETH", items, amount: "0.001", ttl: 600 }));
			const r = await c.query({ name: "create-orders", text: `WITH w AS (SELECT epoch FROM ownership WHERE home_region = $2 AND owner = $2),
			      i AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, user_id text, asset text, items jsonb, amount numeric, ttl int)),
			      o AS (INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
			            SELECT i.id, i.user_id, i.asset, i.items, i.amount, $2, now() + make_interval(secs => i.ttl) FROM i, w RETURNING *),
			      e AS (INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region, epoch, payload)
			            SELECT gen_random_uuid(), 'order', o.id, o.version, 'OrderCreated', $2, o.home_region, w.epoch, api_order(o) FROM o, w)
			 SELECT api_order(o) AS order FROM o`, values: [JSON.stringify(input), REGION] });
			if (r.rows.length !== k) throw new Error("rows " + r.rows.length);
		};
		for (const round of [1, 2]) {
			for (const k of [4, 8]) await measure(`round ${round} one statement of ${k}`, async () => { for (let i = 0; i < N; i += k) await many(k); });
			await measure(`round ${round} autocommit`, async () => { for (let i = 0; i < N; i++) await one(); });
			await measure(`round ${round} 8 a transaction`, async () => { for (let i = 0; i < N; i += 8) { await c.query("BEGIN"); for (let k = 0; k < 8; k++) await one(); await c.query("COMMIT"); } });
			await measure(`round ${round} 8 a transaction, sync commit off`, async () => { for (let i = 0; i < N; i += 8) { await c.query("BEGIN"); await c.query("SET LOCAL synchronous_commit = off"); for (let k = 0; k < 8; k++) await one(); await c.query("COMMIT"); } });
		}
		c.release();
	} finally {
		await db.drop();
	}
}
main().then(() => process.exit(0), e => { console.error(e); process.exit(1); });
