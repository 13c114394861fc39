// The schema is managed by node-pg-migrate: applied on start and by `npm run migrate`, reversible.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { loadConfig } from "../../config";
import { acquireDatabase, releaseDatabase } from "../../src/db";
import { MIGRATIONS_DIR, migrate } from "../../src/db/migrate";
import { createTestDatabase, type TestDatabase } from "../helpers/db";

const ROOT = path.resolve(__dirname, "..", "..");
let db: TestDatabase;

const migrateCmd = (...args: string[]) =>
	execFileSync(process.execPath, ["--import", "tsx", "scripts/migrate.ts", ...args], {
		cwd: ROOT,
		env: { ...process.env, DATABASE_URL: db.url },
		encoding: "utf8",
	});

const tables = async () =>
	(await db.pool.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map(r => r.tablename);

beforeAll(async () => {
	db = await createTestDatabase();
});
afterAll(async () => {
	await db?.drop();
});

describe("npm run migrate", () => {
	it("applies, rolls back and re-applies the schema", async () => {
		expect(migrateCmd()).toMatch(/up: .*initial-schema/);
		expect(await tables()).toEqual([
			"applied_events",
			"claim_ids",
			"claims",
			"entity_count_deltas",
			"entity_counts",
			"holds",
			"log_fences",
			"lost_epochs",
			"orders",
			"outbox",
			"ownership_leases",
			"pgmigrations",
			"replication_progress",
			"supplies",
		]);
		expect(migrateCmd()).toMatch(/nothing to migrate/);
		expect(migrateCmd("down")).toMatch(/down: .*count-inserts-by-statement/);
		expect(migrateCmd("down")).toMatch(/down: .*apply-runs/);
		expect(migrateCmd("down")).toMatch(/down: .*apply-deliveries/);
		expect(migrateCmd("down")).toMatch(/down: .*apply-linear/);
		expect(migrateCmd("down")).toMatch(/down: .*sql-functions-inlined/);
		expect(migrateCmd("down")).toMatch(/down: .*outbox-whole-transactions/);
		expect(migrateCmd("down")).toMatch(/down: .*void-claim-direct/);
		expect(migrateCmd("down")).toMatch(/down: .*hand-back-holds/);
		expect(migrateCmd("down")).toMatch(/down: .*claim-fewer-statements/);
		expect(migrateCmd("down")).toMatch(/down: .*emit-owns-plpgsql/);
		expect(migrateCmd("down")).toMatch(/down: .*key-lookups-never-scan/);
		expect(migrateCmd("down")).toMatch(/down: .*order-commands-locks-by-key/);
		expect(migrateCmd("down")).toMatch(/down: .*outbox-notify/);
		expect(migrateCmd("down")).toMatch(/down: .*log-fences/);
		expect(await tables()).not.toContain("log_fences");
		expect(await tables()).not.toContain("applied_events");
		expect(migrateCmd("down")).toMatch(/down: .*ownership-leases/);
		expect(await tables()).toContain("ownership");
		expect(migrateCmd("down")).toMatch(/down: .*cross-region-claims/);
		expect(migrateCmd("down")).toMatch(/down: .*replication/);
		expect(migrateCmd("down")).toMatch(/down: .*order-commands/);
		expect(migrateCmd("down")).toMatch(/down: .*events-ownership-counts/);
		expect(await tables()).toEqual(["claims", "orders", "outbox", "pgmigrations", "supplies"]);
		expect(migrateCmd("down")).toMatch(/down: .*initial-schema/);
		expect(await tables()).toEqual(["pgmigrations"]);
		migrateCmd("up");
		expect(await tables()).toContain("claims");
	});
});

describe("nodes starting together", () => {
	it("wait for each other's migration instead of failing", async () => {
		const fresh = await createTestDatabase();
		const pools = [1, 2, 3].map(() => new pg.Pool({ connectionString: fresh.url, max: 1 }));
		// DROP DATABASE ... WITH (FORCE) may still find a closing connection: that is not an error here.
		for (const p of pools) p.on("error", () => undefined);
		try {
			const runs = await Promise.all(pools.map(p => migrate(p)));
			expect(runs.map(r => r.length).sort()).toEqual([0, 0, fs.readdirSync(MIGRATIONS_DIR).length]);
		} finally {
			await Promise.all(pools.map(p => p.end()));
			await fresh.drop();
		}
	});
});

describe("a node that does not migrate (production: migrations are a step of their own)", () => {
	it("refuses a schema older than its code, naming the pending migrations, and starts once it is current", async () => {
		const fresh = await createTestDatabase();
		const cfg = loadConfig({ NODE_ENV: "production", DATABASE_URL: fresh.url, JWT_SECRET: "x".repeat(40), INTERNAL_SECRET: "y".repeat(40) });
		expect(cfg.migrateOnStart).toBe(false);
		try {
			await expect(acquireDatabase(cfg, () => undefined)).rejects.toThrow(/schema is behind.*npm run migrate.*1764000000000_initial-schema/);
			await migrate(fresh.pool);
			const database = await acquireDatabase(cfg, () => undefined);
			await releaseDatabase(database);
		} finally {
			await fresh.drop();
		}
	});
});
