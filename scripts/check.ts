// npm run check: reads DATABASE_URL (or DATABASE_URLS, comma-separated, one per region) and prints every
// invariant violation and every anomaly of the outbox history (versions, supply rebuilds, claim
// lifetimes, order amounts); exits 1 if there is one.
import pg from "pg";
import { checkHistory } from "../src/checker/history-check";
import { checkInvariants } from "../src/checker/invariants";

async function main() {
	const urls = (process.env.DATABASE_URLS ?? process.env.DATABASE_URL ?? "").split(",").filter(Boolean);
	if (!urls.length) throw new Error("Set DATABASE_URL (or DATABASE_URLS, one per region) to the database to check");
	const pools = urls.map(url => new pg.Pool({ connectionString: url, max: 2 }));
	try {
		const invariants = await checkInvariants(pools);
		const history = await checkHistory(pools);
		console.log(JSON.stringify({ invariants, history: { counts: history.counts, violations: history.violations } }, null, 2));
		console.log(history.summary);
		process.exitCode = invariants.violations.length || history.violations.length ? 1 : 0;
	} finally {
		await Promise.all(pools.map(p => p.end()));
	}
}

main().catch(err => {
	console.error(err.message);
	process.exit(2);
});
