// Gives a service `this.pool` (the process-wide pg pool for its database) and `this.tx(fn)`.
import type { PoolClient, Pool } from "pg";
import type { ServiceSchema } from "moleculer";
import { acquireDatabase, releaseDatabase, withTx } from "../src/db";
import type { Config } from "../config";
import { appConfig } from "./config";
import { ensureOwnership } from "../src/store/commands";

const owned = new WeakMap<Pool, Promise<unknown>>();
const ownershipOnce = (pool: Pool, cfg: Config) => {
	let p = owned.get(pool);
	if (!p) owned.set(pool, (p = ensureOwnership(pool, cfg.regions, cfg.region, cfg.failover.enabled)));
	return p;
};

export const DbMixin: Partial<ServiceSchema> = {
	methods: {
		tx<T>(this: { pool: Pool }, fn: (client: PoolClient) => Promise<T>): Promise<T> {
			return withTx(this.pool, fn);
		},
	},
	async started(this: any) {
		const cfg = appConfig(this.broker);
		this.db = await acquireDatabase(cfg, m => this.logger.info(m));
		this.pool = this.db.pool;
		// Every write is fenced by the ownership of its home region: make sure each region has an owner.
		await ownershipOnce(this.pool, cfg);
	},
	async stopped(this: any) {
		if (this.db) await releaseDatabase(this.db);
	},
};
