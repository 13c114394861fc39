// npm run bench:sql: what PostgreSQL spends on the claim's one call, alone. One connection runs order_commands
// (the group commit's call) on batches of claims, after a warm-up, against a scratch database with the project's
// migrations on the tests' PostgreSQL (PG_ADMIN_URL); it prints the backend's CPU a claim (/proc/<pid>/stat: the
// server must be on this machine) beside the wall time. With --young, no ANALYZE runs after the tables fill (the
// plans a new region's connections make); by default the statistics are fresh. --functions lists the functions
// the claims called, a claim's calls and time in each (track_functions): a SQL function listed there was not
// inlined, and PostgreSQL before 18 plans its body at every call. --apply then applies the claims' events (their
// outbox rows, as the relay publishes them) in a second scratch database, in batches of --apply-batch (default
// 50), and prints that backend's CPU an event: what a region spends on another region's claim. --creates N first creates
// N supplies (createSupplies, 8 a statement); --apply then also applies their creation events, apart: events that
// change nothing but their row, which a replica applies a run at a time (apply_plain).
//
//   npm run bench:sql                          # 8,000 claims in batches of 8
//   npm run bench:sql -- --claims 20000 --batch 16 --young
//   npm run bench:sql -- --creates 8000 --apply --apply-batch 30
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import type pg from "pg";
import { OUTBOX_COLUMNS, toReplEvent } from "../src/replication/relay";
import { ensureOwnership, runCommands, type CommandContext } from "../src/store/commands";
import { createSupplies } from "../src/store/creates";
import { createMigratedDatabase } from "../test/helpers/db";
import { cpuMs } from "./proc";

const { values: args } = parseArgs({
	options: {
		claims: { type: "string", default: "8000" },
		batch: { type: "string", default: "8" },
		young: { type: "boolean", default: false },
		functions: { type: "boolean", default: false },
		apply: { type: "boolean", default: false },
		"apply-batch": { type: "string", default: "50" },
		"apply-group": { type: "string", default: "1" },
		creates: { type: "string", default: "0" },
	},
});
const CLAIMS = Number(args.claims);
const CREATES = Number(args.creates);
const BATCH = Number(args.batch);
const WARM = Math.min(2000, Math.floor(CLAIMS / 4));
const REGION = "us-central1";

async function main() {
	const db = await createMigratedDatabase();
	try {
		await ensureOwnership(db.pool, [REGION]);
		const cc: CommandContext = { region: REGION, epochs: { [REGION]: 1 }, holdSec: 300 };
		await db.pool.query(`INSERT INTO supplies (id, user_id, asset, amount, home_region)
			SELECT gen_random_uuid(), 'shopper-' || i, 'ETH', 1000000, $1 FROM generate_series(1, 64) i`, [REGION]);
		await db.pool.query(`INSERT INTO orders (id, user_id, asset, items, amount, home_region, expires_at)
			SELECT gen_random_uuid(), 'buyer', 'ETH', '[{"sku":"s","name":"n","unitPrice":"0.001","quantity":1}]', 0.001, $1, now() + interval '1 hour'
			  FROM generate_series(1, $2)`, [REGION, CLAIMS + WARM]);
		for (let i = 0; i < CREATES; i += 8)
			await createSupplies(db.pool, REGION, Array.from({ length: Math.min(8, CREATES - i) }, (_, k) => ({ id: randomUUID(), userId: `creator-${(i + k) % 64}`, asset: "ETH", amount: "1" })));
		if (!args.young) await db.pool.query("ANALYZE");
		const supplies = (await db.pool.query<{ id: string; user_id: string }>(`SELECT id, user_id FROM supplies ORDER BY id`)).rows;
		const orders = (await db.pool.query<{ id: string }>(`SELECT id FROM orders`)).rows.map(r => r.id);
		const client = await db.pool.connect();
		try {
			const run = async (from: number, to: number) => {
				for (let i = from; i < to; i += BATCH) {
					const cmds = orders.slice(i, Math.min(i + BATCH, to)).map((orderId, k) => {
						const s = supplies[(i + k) % supplies.length];
						return { op: "claim" as const, orderId, supplyId: s.id, userId: s.user_id, key: `sql-${i + k}` };
					});
					const outs = await runCommands(client, cc, cmds);
					const failed = outs.find(o => !o.ok);
					if (failed && !failed.ok) throw failed.error;
				}
			};
			await run(0, WARM);
			// The measured calls alone (a scratch database; superuser: the tests' PostgreSQL); reported at the end.
			if (args.functions) {
				// The warm-up's calls are flushed before the reset (a backend flushes at most once a second).
				await client.query("SELECT pg_stat_force_next_flush()");
				await client.query("SET track_functions = 'all'");
				await client.query("SELECT pg_stat_reset()");
			}
			const { cpu, wall } = await measured(client, () => run(WARM, WARM + CLAIMS));
			console.log(
				`order_commands, ${CLAIMS} claims in batches of ${BATCH}${args.young ? ", statistics of empty tables" : ""}: ` +
					`PostgreSQL CPU ${Math.round((cpu / CLAIMS) * 1000)} µs a claim, wall ${Math.round((wall / CLAIMS) * 1000)} µs a claim ` +
					`(${Math.round(CLAIMS / (wall / 1000))} claims/s on one connection)`,
			);
			if (args.functions) await printFunctions(client);
		} finally {
			client.release();
		}
		if (args.apply) await benchApply(db.pool, Number(args["apply-batch"]), Number(args["apply-group"]));
	} finally {
		await db.drop();
	}
}

/**
 * Applies the home region's events, in order and in batches, in another region's database: its backend's CPU an
 * event. The supplies' creations (--creates) and the claims' events apart.
 */
async function benchApply(home: pg.Pool, batch: number, group: number) {
	const all = (await home.query(`SELECT ${OUTBOX_COLUMNS} FROM outbox o ORDER BY id`)).rows.map(toReplEvent);
	const creations = all.filter(e => e.type === "SupplyCreated");
	const claims = all.filter(e => e.type !== "SupplyCreated");
	for (const [what, events] of [["the supplies' creation events", creations], ["the claims' events", claims]] as const) {
		if (events.length === 0) continue;
		const replica = await createMigratedDatabase();
		try {
			const client = await replica.pool.connect();
			try {
				// --apply-group G: G deliveries of --apply-batch events in one apply_deliveries call (the applier's group
				// commit of its lanes), each as its own lane.
				const apply = async (from: number, to: number) => {
					for (let i = from; i < to; i += batch * group) {
						const deliveries = [];
						for (let k = 0; k < group && i + k * batch < to; k++)
							deliveries.push({ source: REGION, lane: k, events: events.slice(i + k * batch, Math.min(i + (k + 1) * batch, to)) });
						if (group === 1) await client.query(`SELECT apply_events($1::jsonb)`, [JSON.stringify({ ...deliveries[0], region: "europe-west1" })]);
						else await client.query(`SELECT apply_deliveries($1::jsonb)`, [JSON.stringify({ region: "europe-west1", deliveries })]);
					}
				};
				const warm = Math.floor(events.length / 5);
				await apply(0, warm);
				const { cpu, wall } = await measured(client, () => apply(warm, events.length));
				const n = events.length - warm;
				console.log(
					`apply_events, ${n} of ${what} in batches of ${batch}${group > 1 ? `, ${group} batches a call` : ""}: PostgreSQL CPU ${Math.round((cpu / n) * 1000)} µs an event, ` +
						`wall ${Math.round((wall / n) * 1000)} µs an event`,
				);
			} finally {
				client.release();
			}
		} finally {
			await replica.drop();
		}
	}
}

/** What `work` cost the backend of `client` (CPU ms from /proc: the server must run on this machine) and took (wall ms). */
async function measured(client: pg.PoolClient, work: () => Promise<void>): Promise<{ cpu: number; wall: number }> {
	const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0].pid;
	const c0 = cpuMs(pid);
	const t0 = performance.now();
	await work();
	return { cpu: cpuMs(pid) - c0, wall: performance.now() - t0 };
}

/** What the measured claims called (the scratch database's function statistics, this session's flushed first). */
async function printFunctions(client: pg.PoolClient) {
	await client.query("SELECT pg_stat_force_next_flush()");
	await client.query("SELECT pg_stat_clear_snapshot()");
	const { rows } = await client.query<{ funcname: string; calls: string; self: number; total: number }>(
		`SELECT funcname, calls, self_time AS self, total_time AS total FROM pg_stat_user_functions ORDER BY total_time DESC`,
	);
	console.log("function | calls a claim | self µs a claim | total µs a claim");
	for (const r of rows)
		console.log(`${r.funcname} | ${(Number(r.calls) / CLAIMS).toFixed(2)} | ${Math.round((r.self * 1000) / CLAIMS)} | ${Math.round((r.total * 1000) / CLAIMS)}`);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
