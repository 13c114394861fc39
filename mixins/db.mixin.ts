// Gives a service `this.pool` (the process-wide pg pool for its database) and `this.tx(fn)`.
import type { PoolClient, Pool } from "pg";
import type { Service } from "moleculer";
import type { WalletService } from "./schema";
import { acquireDatabase, releaseDatabase, withTx, type Database } from "../src/db";
import type { Config } from "../config";
import { appConfig } from "./config";
import { ensureOwnership } from "../src/store/commands";

/** What DbMixin gives a service. `db` and `pool` are set once started. */
export interface DbThis extends Service {
	db?: Database;
	pool: Pool;
	tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T>;
}

const owned = new WeakMap<Pool, Promise<unknown>>();
const ownershipOnce = (pool: Pool, cfg: Config) => {
	let p = owned.get(pool);
	if (!p) owned.set(pool, (p = ensureOwnership(pool, cfg.regions, cfg.region, cfg.failover.enabled)));
	return p;
};

export const DbMixin: Partial<WalletService<DbThis>> = {
	methods: {
		tx<T>(this: DbThis, fn: (client: PoolClient) => Promise<T>): Promise<T> {
			return withTx(this.pool, fn);
		},
	},
	async started(this: DbThis) {
		const cfg = appConfig(this.broker);
		this.db = await acquireDatabase(cfg, m => this.logger.info(m));
		this.pool = this.db.pool;
		// Every write is fenced by the ownership of its home region: make sure each region has an owner.
		await ownershipOnce(this.pool, cfg);
	},
	async stopped(this: DbThis) {
		if (this.db) await releaseDatabase(this.db);
	},
};
