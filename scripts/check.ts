// npm run check: reads DATABASE_URL and prints every invariant violation; exits 1 if there is one.
import pg from "pg";
import { checkInvariants } from "../src/checker/invariants";

async function main() {
	const url = process.env.DATABASE_URL;
	if (!url) throw new Error("Set DATABASE_URL to the database to check");
	const pool = new pg.Pool({ connectionString: url, max: 2 });
	try {
		const report = await checkInvariants(pool);
		console.log(JSON.stringify(report, null, 2));
		process.exitCode = report.violations.length ? 1 : 0;
	} finally {
		await pool.end();
	}
}

main().catch(err => {
	console.error(err.message);
	process.exit(2);
});
