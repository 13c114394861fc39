// Gives a service `this.pool` (the process-wide pg pool for its database) and `this.tx(fn)`.
import type { PoolClient, Pool } from "pg";
import type { ServiceSchema } from "moleculer";
import { acquireDatabase, releaseDatabase, withTx } from "../src/db";
import { appConfig } from "./config";

export const DbMixin: Partial<ServiceSchema> = {
	methods: {
		tx<T>(this: { pool: Pool }, fn: (client: PoolClient) => Promise<T>): Promise<T> {
			return withTx(this.pool, fn);
		},
	},
	async started(this: any) {
		this.db = await acquireDatabase(appConfig(this.broker), m => this.logger.info(m));
		this.pool = this.db.pool;
	},
	async stopped(this: any) {
		if (this.db) await releaseDatabase(this.db);
	},
};
