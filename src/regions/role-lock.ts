// One active failover role per region (docs/multi-region.md, "One active role, a standby beside it"). The role's
// promises to other regions live in its memory, so two nodes must never act as the region at once; a standby
// must still take over within a ping or two when the active node dies. A session-level advisory lock on the
// region's own database gives both: PostgreSQL drops it the moment the holder's connection closes (a killed
// process closes its sockets), and at most one session holds it.
import pg from "pg";

export interface RoleLockOptions {
	/** The region's database. */
	url: string;
	/** The lock's name (one per region: the embedded default keeps every region in one server). */
	name: string;
	/** Who holds it, as pg_stat_activity shows (application_name): the node's id. */
	holder: string;
	/** How often a standby tries to take the lock. */
	pollMs: number;
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** The lock's name for a region (services/regions.service.ts). */
export const roleLockName = (region: string) => `wallet-region-role:${region}`;

/** The node holding `region`'s role lock, as the database sees it (its session's application_name), or null. */
export async function roleHolder(db: Pick<pg.ClientBase, "query">, region: string): Promise<string | null> {
	const { rows } = await db.query<{ app: string }>(
		`SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		  WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)
		    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		[roleLockName(region)],
	);
	return rows[0]?.app ?? null;
}

export class RoleLock {
	private client?: pg.Client;
	private lostReason?: string;
	/** When the lock was last seen held: the sending time of the last query that proved it (0: never). */
	seenAt = 0;

	constructor(private readonly o: RoleLockOptions) {}

	/** Waits until this node holds the lock, trying every pollMs; false if `stopped()` said to give up first. */
	async acquire(stopped: () => boolean, log: (m: string) => void): Promise<boolean> {
		// One line per change of what stands in the way, not one per poll.
		let said: string | undefined;
		while (!stopped()) {
			const sentAt = Date.now();
			try {
				const c = await this.connect();
				const { rows } = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok`, [this.o.name]);
				if (rows[0].ok) {
					this.seenAt = sentAt;
					return true;
				}
				if (said !== "held") log(`Standing by: another node holds ${this.o.name}`);
				said = "held";
			} catch (err) {
				const why = (err as Error).message;
				if (said !== why) log(`Cannot try ${this.o.name}: ${why}`);
				said = why;
				await this.drop();
			}
			await sleep(this.o.pollMs);
		}
		return false;
	}

	/**
	 * Whether the lock is still held: a query on the session that holds it (a session lock lasts as long as its
	 * session). A failed check, or a connection that broke, ends the hold for good: take it again with acquire().
	 */
	async verify(): Promise<boolean> {
		const c = this.client;
		if (!c || this.lostReason) {
			await this.drop();
			return false;
		}
		const sentAt = Date.now();
		try {
			const { rows } = await c.query<{ held: boolean }>(
				`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
				                   AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)) AS held`,
				[this.o.name],
			);
			if (!rows[0].held) throw new Error("the session no longer holds it");
			this.seenAt = sentAt;
			return true;
		} catch (err) {
			this.lostReason ??= (err as Error).message;
			await this.drop();
			return false;
		}
	}

	/** Why the hold ended (undefined while held or never taken). */
	get lost(): string | undefined {
		return this.lostReason;
	}

	/** Gives the lock up (its session ends with it). */
	async release(): Promise<void> {
		await this.drop();
	}

	private async connect(): Promise<pg.Client> {
		if (this.client) return this.client;
		const c = new pg.Client({ connectionString: this.o.url, application_name: this.o.holder, keepAlive: true, connectionTimeoutMillis: 3000, statement_timeout: 3000 });
		// A session that breaks between queries must not end the process: the next verify() says it is gone.
		c.on("error", err => {
			if (this.client === c) this.lostReason ??= err.message;
		});
		c.on("end", () => {
			if (this.client === c) this.lostReason ??= "the connection ended";
		});
		this.client = c;
		this.lostReason = undefined;
		await c.connect().catch(err => {
			this.client = undefined;
			throw err;
		});
		return c;
	}

	private async drop() {
		this.seenAt = 0;
		const c = this.client;
		this.client = undefined;
		if (c) await c.end().catch(() => undefined);
	}
}
