// npm run bench:sweeper [-- --holds 100000 --batch 1000]: how fast the sweeper releases expired holds.
// Creates a scratch database on BENCH_PG_URL (default: the local PostgreSQL), seeds the holds in bulk, then
// runs the sweeper's statement with one node and with two nodes side by side, and prints releases per second.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { migrate } from "../src/db/migrate";
import { ensureOwnership, sweep } from "../src/store/commands";
import { seedExpiredHolds } from "../test/helpers/seed";

const ADMIN = process.env.BENCH_PG_URL ?? process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const { values } = parseArgs({ options: { holds: { type: "string", default: "100000" }, batch: { type: "string", default: "1000" } } });
const HOLDS = Number(values.holds);
const BATCH = Number(values.batch);

async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
	const name = `wallet_bench_${randomBytes(4).toString("hex")}`;
	const admin = new pg.Client({ connectionString: ADMIN });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${name}`);
	const url = new URL(ADMIN);
	url.pathname = `/${name}`;
	try {
		return await fn(url.toString());
	} finally {
		await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
		await admin.end();
	}
}

async function run(nodes: number) {
	return withDatabase(async url => {
		const pool = new pg.Pool({ connectionString: url, max: nodes + 1 });
		pool.on("error", err => console.error(`postgres: ${err.message}`));
		try {
			await migrate(pool);
			await ensureOwnership(pool, ["us-central1"]);
			await seedExpiredHolds(pool, HOLDS);
			await pool.query("VACUUM ANALYZE");
			const started = performance.now();
			const counts = await Promise.all(
				Array.from({ length: nodes }, async () => {
					let n = 0;
					for (;;) {
						const r = await sweep(pool, "us-central1", BATCH);
						n += r.released.length;
						if (r.released.length === 0) return n;
					}
				}),
			);
			const s = (performance.now() - started) / 1000;
			const total = counts.reduce((a, b) => a + b, 0);
			return { nodes, released: total, seconds: s, perSecond: Math.round(total / s), perNode: counts };
		} finally {
			await pool.end();
		}
	});
}

async function main() {
	console.log(`sweeper: ${HOLDS} expired holds, batches of ${BATCH}`);
	for (const nodes of [1, 2]) {
		const r = await run(nodes);
		console.log(
			`  ${r.nodes} node(s): released ${r.released} in ${r.seconds.toFixed(1)} s = ${r.perSecond} releases/s (per node: ${r.perNode.join(", ")})`,
		);
	}
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
