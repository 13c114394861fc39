// Several regions in one test process: each region its own database and its own broker(s) (no transporter
// between regions), joined only by the event log, as in the embedded default (or, with the link service and
// LINK=kafka, by the global brokers on Kafka, as across processes).
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import type pg from "pg";
import type { Config } from "../../config";
import { brokerOptions } from "../../moleculer.config";
import RegionRole from "../../services/regions.service";
import ReplicationService from "../../services/replication.service";
import { SERVICES, testConfig } from "./cluster";
import { createTestDatabase, type TestDatabase } from "./db";

export const REGION_NAMES = ["us-central1", "europe-west1", "asia-east1"];

export interface TestRegion {
	name: string;
	cfg: Config;
	broker: ServiceBroker;
	db: TestDatabase;
	apiUrl: string;
}

export interface TestRegions {
	namespace: string;
	regions: TestRegion[];
	region(name: string): TestRegion;
	/** Stops the region's broker (as a crash would, its database stays) and starts a new one on the same database. */
	restart(name: string, beforeStart?: () => Promise<void>): Promise<TestRegion>;
	stop(): Promise<void>;
}

/** The node id of a test region's broker. */
export const regionNodeID = (name: string) => `${name}-0`;

export interface TestRegionsOptions {
	count?: number;
	env?: Record<string, string>;
	/** A fresh one by default; given when something must be prepared for it first (e.g. the link's Kafka topics). */
	namespace?: string;
	/** Services each region's broker runs besides SERVICES and replication (e.g. the link). */
	services?: ServiceSchema[];
}

export async function startTestRegions(o: TestRegionsOptions = {}): Promise<TestRegions> {
	const namespace = o.namespace ?? `t${randomBytes(4).toString("hex")}`;
	const names = REGION_NAMES.slice(0, o.count ?? 2);
	const dbs: TestDatabase[] = [];
	const regions: TestRegion[] = [];
	try {
		for (const name of names) {
			const db = await createTestDatabase();
			dbs.push(db);
			const cfg = testConfig({
				databaseUrl: db.url,
				namespace,
				env: { REGIONS: names.join(","), REGION: name, REPLICATION: "memory", ...o.env },
			});
			const broker = build(name, cfg, o.services);
			regions.push({ name, cfg, broker, db, apiUrl: "" });
		}
		await Promise.all(regions.map(r => r.broker.start()));
		for (const r of regions) r.apiUrl = apiUrlOf(r.broker);
	} catch (err) {
		await Promise.all(regions.map(r => r.broker.stop().catch(() => undefined)));
		await Promise.all(dbs.map(d => d.drop()));
		throw err;
	}
	return {
		namespace,
		regions,
		region: name => regions.find(r => r.name === name)!,
		async restart(name, beforeStart) {
			const r = regions.find(x => x.name === name)!;
			await r.broker.stop().catch(() => undefined);
			await beforeStart?.();
			r.broker = build(name, r.cfg, o.services);
			await r.broker.start();
			r.apiUrl = apiUrlOf(r.broker);
			return r;
		},
		async stop() {
			await Promise.all(regions.map(r => r.broker.stop().catch(() => undefined)));
			await Promise.all(dbs.map(d => d.drop()));
		},
	};
}

/**
 * Runs the queries in one REPEATABLE READ transaction. Read table by table outside one, a region could show its
 * supplies before an apply and its orders after it, and two regions could look equal half-way through.
 */
export async function readAtOnce(pool: pg.Pool, sqls: string[]): Promise<any[][]> {
	const client = await pool.connect();
	try {
		await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
		const rows: any[][] = [];
		for (const sql of sqls) rows.push((await client.query(sql)).rows);
		await client.query("COMMIT");
		return rows;
	} finally {
		client.release();
	}
}

function build(name: string, cfg: Config, services: ServiceSchema[] = []) {
	const broker = new ServiceBroker(brokerOptions(cfg, { nodeID: regionNodeID(name), skipProcessEventRegistration: true }));
	for (const s of Object.values(SERVICES)) broker.createService(s as ServiceSchema);
	broker.createService(ReplicationService as ServiceSchema);
	broker.createService(RegionRole as ServiceSchema);
	for (const s of services) broker.createService(s);
	return broker;
}

function apiUrlOf(broker: ServiceBroker) {
	const api = broker.getLocalService("api") as any;
	return `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
}

/** The rows every region must agree on, in a comparable form. */
export async function snapshot(r: TestRegion) {
	const [supplies, orders, claims] = await readAtOnce(r.db.pool, [
		`SELECT id, user_id, asset, amount::text, reserved::text, spent::text, status, home_region, version FROM supplies ORDER BY id`,
		`SELECT id, user_id, asset, items, amount::text, status, claim_id, claimer_id, home_region, version FROM orders ORDER BY id`,
		`SELECT id, order_id, claimer_id, supply_id, amount::text, status, idempotency_key, region, epoch, version FROM claims ORDER BY id`,
	]);
	return { supplies, orders, claims };
}

/** Waits until every region's rows are equal (replication converged); returns the common snapshot. */
export async function converged(rs: TestRegions, timeoutMs = 15_000) {
	const until = Date.now() + timeoutMs;
	for (;;) {
		const snaps = await Promise.all(rs.regions.map(snapshot));
		const first = JSON.stringify(snaps[0]);
		if (snaps.every(s => JSON.stringify(s) === first)) return snaps[0];
		if (Date.now() > until) {
			const sizes = snaps.map((s, i) => `${rs.regions[i].name}: ${s.supplies.length}s/${s.orders.length}o/${s.claims.length}c`);
			throw new Error(`regions did not converge in ${timeoutMs} ms (${sizes.join(", ")})`);
		}
		await new Promise(res => setTimeout(res, 50));
	}
}
