// Real brokers for tests: one region of several nodes, each with its own services, over NATS
// (or, with one node, in-process), against a real PostgreSQL database and optionally Redis.
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { loadConfig, type Config } from "../../config";
import { brokerOptions, loggerOptions } from "../../moleculer.config";
import ApiService from "../../services/api.service";
import ClaimingService from "../../services/claiming.service";
import OrderService from "../../services/order.service";
import SupplyService from "../../services/supply.service";
import { createTestDatabase, type TestDatabase } from "./db";
import { NATS_URL, TEST_INTERNAL_SECRET, TEST_JWT_SECRET } from "./env";

export const SERVICES = { api: ApiService, supply: SupplyService, order: OrderService, claiming: ClaimingService };
export type ServiceName = keyof typeof SERVICES;

export interface RegionOptions {
	databaseUrl: string;
	nodes: ServiceName[][];
	redisUrl?: string;
	nats?: boolean;
	env?: Record<string, string>;
	/** Receives every node's JSON log lines (instead of stdout). */
	logSink?: { write(line: string): void };
}

export interface Region {
	cfg: Config;
	brokers: ServiceBroker[];
	apiUrl: string;
	apiUrls: string[];
	namespace: string;
	stop(): Promise<void>;
}

export function testConfig(o: { databaseUrl: string; redisUrl?: string; nats?: boolean; namespace: string; env?: Record<string, string> }): Config {
	return loadConfig({
		NODE_ENV: "test",
		LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
		LOG_FORMAT: "json",
		PORT: "0",
		METRICS_PORT: "0",
		NAMESPACE: o.namespace,
		DATABASE_URL: o.databaseUrl,
		REDIS_URL: o.redisUrl,
		NATS_URL: o.nats ? NATS_URL : undefined,
		JWT_SECRET: TEST_JWT_SECRET,
		INTERNAL_SECRET: TEST_INTERNAL_SECRET,
		...o.env,
	});
}

export async function startRegion(o: RegionOptions): Promise<Region> {
	const namespace = `t${randomBytes(4).toString("hex")}`;
	const cfg = testConfig({ ...o, namespace, nats: o.nats ?? o.nodes.length > 1 });
	const brokers = o.nodes.map(
		(services, i) => {
			const b = new ServiceBroker(
				brokerOptions(cfg, {
					nodeID: `${services.join("+")}-${i}`,
					skipProcessEventRegistration: true,
					...(o.logSink ? { logger: loggerOptions(cfg, o.logSink) } : {}),
				}),
			);
			for (const s of services) b.createService(SERVICES[s] as ServiceSchema);
			return b;
		},
	);
	await Promise.all(brokers.map(b => b.start()));
	await Promise.all(brokers.map(b => b.waitForServices(["api", "supply", "order", "claiming"], 15000)));
	const apiUrls = brokers
		.map(b => b.getLocalService("api") as any)
		.filter(Boolean)
		.map(api => `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`);
	return {
		cfg,
		brokers,
		namespace,
		apiUrl: apiUrls[0],
		apiUrls,
		async stop() {
			await Promise.all(brokers.map(b => b.stop()));
		},
	};
}

/** A region on a database of its own, dropped when the region stops. */
export async function startTestRegion(o: Omit<RegionOptions, "databaseUrl">): Promise<Region & { db: TestDatabase }> {
	const db = await createTestDatabase();
	try {
		const region = await startRegion({ ...o, databaseUrl: db.url });
		return {
			...region,
			db,
			async stop() {
				await region.stop();
				await db.drop();
			},
		};
	} catch (err) {
		await db.drop();
		throw err;
	}
}
