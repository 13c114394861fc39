// npm run migrate [-- up|down]: applies (or rolls back one) migration on DATABASE_URL, or on the
// embedded PostgreSQL when DATABASE_URL is unset.
import pg from "pg";
import { loadConfig } from "../config";
import { migrate } from "../src/db/migrate";
import { startEmbeddedPostgres } from "../src/db/embedded";

async function main() {
	const direction = (process.argv[2] ?? "up") as "up" | "down";
	if (direction !== "up" && direction !== "down") throw new Error("usage: npm run migrate -- [up|down]");
	const cfg = loadConfig(process.env, { keys: false });
	const embedded = cfg.databaseUrl ? undefined : await startEmbeddedPostgres(cfg.dataDir, cfg.embeddedPgPort, console.log);
	const pool = new pg.Pool({ connectionString: cfg.databaseUrl ?? embedded!.url, max: 1 });
	try {
		const applied = await migrate(pool, direction, console.log);
		console.log(applied.length ? `${direction}: ${applied.map(m => m.name).join(", ")}` : "nothing to migrate");
	} finally {
		await pool.end();
		await embedded?.stop();
	}
}

main().catch(err => {
	console.error(err.message);
	process.exit(1);
});
