// The fuzz run of scripts/fuzz.ts, smaller: 1,000 generated requests (a fixed seed, so a failure
// reproduces with `npm run fuzz -- --seed 20261125 --count 1000`), then the invariant checker.
import { afterAll, beforeAll, expect, it } from "vitest";
import { runFuzz, printReport } from "../../scripts/fuzz";
import { checkInvariants } from "../../src/checker/invariants";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";

let region: Region & { db: TestDatabase };
const crashes: unknown[] = [];
const onCrash = (err: unknown) => crashes.push(err);

beforeAll(async () => {
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nodes: [["api", "supply", "order", "claiming"]],
		env: { RATE_LIMIT: "100000000", RATE_LIMIT_IP: "100000000", LOG_LEVEL: "fatal" },
	});
	process.on("uncaughtException", onCrash);
	process.on("unhandledRejection", onCrash);
});

afterAll(async () => {
	process.off("uncaughtException", onCrash);
	process.off("unhandledRejection", onCrash);
	await region?.stop();
});

// Issue 6 item 10: an admin releasing a claim that is not active gets a 500 from the claim path (not
// the gateway's). Until that fix is merged, these are reported but not failed on; remove then.
it("1,000 generated requests: no answer >= 500, none unanswered, no crash, a consistent database", async () => {
	const report = await runFuzz({ baseUrl: region.apiUrl, count: 1000, seed: 20261125, jwt: region.cfg.jwt });
	const checker = await checkInvariants(region.db.pool);
	printReport(report, checker);
	expect(report.serverErrors).toEqual([]);
	expect(report.unanswered).toEqual([]);
	expect(report.bare).toEqual([]);
	expect(crashes).toEqual([]);
	expect((await fetch(`${region.apiUrl}/health/live`)).status).toBe(200);
	expect(checker.violations).toEqual([]);
	// The run reached the database and the parser: writes won, claims were made, raw requests answered.
	expect(report.requests).toBeGreaterThan(900);
	expect(report.statuses["201"]).toBeGreaterThan(20);
	expect(checker.counts.claims).toBeGreaterThan(5);
	expect(report.statuses["400"]).toBeGreaterThan(50);
	expect(report.raw).toBeGreaterThan(50);
});
