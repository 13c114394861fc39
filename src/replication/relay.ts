// The outbox relay: publishes committed outbox rows to the event log, oldest first, and marks them
// published in the same transaction that read them. One relay is active per region at a time (a
// transaction-scoped advisory lock), so one key's events leave in the order they were written; a crash
// between the publish and the commit publishes the batch again, which appliers absorb (versions).
import pg, { type Pool } from "pg";
import { withTx } from "../db";
import type { EventLog, ReplEvent } from "./event-log";

/** Any number 64-bit: the advisory lock only relays take. */
const RELAY_LOCK = 0x77616c6c6574; // "wallet"

interface OutboxRow {
	id: string;
	event_id: string;
	aggregate_type: ReplEvent["aggregateType"];
	aggregate_id: string;
	aggregate_version: number;
	event_type: string;
	region: string;
	home_region: string;
	epoch: number;
	tx_id: string;
	schema_version: number;
	created_at: Date;
	payload: Record<string, unknown>;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout;
	return Promise.race([
		p,
		new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

/**
 * Which outbox rows `o` may leave, for relay region $2: written under this region's ownership still in force (or
 * needing no lease), or under an epoch this region moved past itself (a hand-back). Not: an epoch this region
 * still holds without a lease (cut off: it waits to learn whether it was taken over), nor one it lost
 * (lost_epochs: superseded).
 */
const PUBLISHABLE = `EXISTS (SELECT 1 FROM ownership_leases w WHERE w.home_region = o.home_region
	AND ((w.owner = $2 AND w.epoch = o.epoch AND (w.lease_until IS NULL OR w.lease_until > clock_timestamp()))
	     OR (w.epoch > o.epoch AND NOT EXISTS (SELECT 1 FROM lost_epochs l WHERE l.home_region = o.home_region AND l.epoch = o.epoch))))`;

/** A number for a statement's text (the simple query protocol takes no parameters). */
function int(n: number | string): string {
	const s = String(n);
	if (!/^\d+$/.test(s)) throw new Error(`relay: ${s} is not a whole number`);
	return s;
}

/** An outbox row as toReplEvent reads it. */
export const OUTBOX_COLUMNS = `id::text, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, home_region,
	epoch, tx_id::text, schema_version, created_at, payload`;

/**
 * A round's statements, prepared once on each connection (SQL PREPARE: the round sends them joined to BEGIN and
 * COMMIT, which the extended protocol's own prepared statements cannot be). relay_batch: a row saying whether the
 * relay lock is ours, then the batch's rows if it is.
 */
export const PREPARED: Record<string, string> = {
	relay_batch: `PREPARE relay_batch(integer, text, bigint) AS WITH l AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($3) AS mine)
		SELECT l.mine, b.* FROM l LEFT JOIN LATERAL (
			SELECT ${OUTBOX_COLUMNS} FROM outbox o WHERE l.mine AND published_at IS NULL AND ${PUBLISHABLE} ORDER BY o.id LIMIT $1
		) b ON true`,
	relay_mark: `PREPARE relay_mark(bigint[], text) AS UPDATE outbox o SET published_at = now() WHERE id = ANY($1) AND ${PUBLISHABLE}`,
};
const preparedOn = new WeakSet<pg.ClientBase>();

/** Prepares on `c` the statements its session lacks (a round that failed halfway may have prepared some). */
async function prepare(c: pg.ClientBase) {
	if (preparedOn.has(c)) return;
	const { rows } = await c.query<{ name: string }>(`SELECT name FROM pg_prepared_statements WHERE name = ANY($1)`, [Object.keys(PREPARED)]);
	const have = new Set(rows.map(r => r.name));
	for (const [name, sql] of Object.entries(PREPARED)) if (!have.has(name)) await c.query(sql);
	preparedOn.add(c);
}

/** How often a standby relay checks whether the active one is gone. */
const STANDBY_MS = 1000;

export function toReplEvent(r: OutboxRow): ReplEvent {
	return {
		eventId: r.event_id,
		aggregateType: r.aggregate_type,
		aggregateId: r.aggregate_id,
		version: r.aggregate_version,
		type: r.event_type,
		region: r.region,
		homeRegion: r.home_region,
		epoch: Number(r.epoch),
		txId: String(r.tx_id),
		schemaVersion: r.schema_version,
		createdAt: r.created_at.toISOString(),
		payload: r.payload,
	};
}

export interface RelayOptions {
	region: string;
	/** How long one publish may take before the round gives up (and is retried); under PG_IDLE_TX_TIMEOUT_MS. */
	publishTimeoutMs?: number;
	batch: number;
	pollMs: number;
	/**
	 * How long a relay woken by a commit waits for more before it reads the outbox (Kafka's linger.ms): fewer,
	 * larger batches for the log, its readers and their transactions, for this much more lag. 0: at once.
	 */
	lingerMs?: number;
	onPublished?: (n: number) => void;
	/** Events the log took after their lease ran out, left unmarked (see tick). */
	onUnconfirmed?: (n: number) => void;
	onError?: (err: Error) => void;
}

/**
 * How long a relay woken by commits still waits before its round: Kafka's linger.ms, counted from the first commit
 * that waits. Under load that commit came while the last round ran, often longer ago than the linger: the round then
 * starts at once (a linger counted from the round's end delayed every round of a busy region by it, and by more as
 * its timer fired late on a saturated machine).
 */
function lingerLeft(lingerMs: number, firstNotifiedAt: number, now: number): number {
	return Math.max(0, lingerMs - (now - firstNotifiedAt));
}

/** The channel outbox writes notify at their commit (migrations/*_outbox-notify.sql). */
const CHANNEL = "wallet_outbox";

export class OutboxRelay {
	private running = false;
	private loop?: Promise<void>;
	private wake?: () => void;
	/**
	 * When the first notification not yet read came (performance.now()), or undefined if none came: the next round
	 * starts without sleeping, and its linger counts from then.
	 */
	private notifiedAt?: number;
	private listener?: pg.Client;
	private listening?: Promise<void>;

	constructor(
		private readonly pool: Pool,
		private readonly log: EventLog,
		private readonly options: RelayOptions,
	) {}

	/** Publishes one batch; the number published, or -1 when another node is the active relay. */
	async tick(): Promise<number> {
		// Two round trips a round, each one more wait on a busy machine: BEGIN with the lock and the batch, and the
		// marking with COMMIT (the simple query protocol joins them; its statements take no parameters, so the
		// connection's prepared statements are executed with their values inlined).
		return withTx(
			this.pool,
			async c => {
				await prepare(c);
				const region = c.escapeLiteral(this.options.region);
				const [, batch] = (await c.query(
					`BEGIN; EXECUTE relay_batch(${int(this.options.batch)}, ${region}, ${int(RELAY_LOCK)})`,
				)) as unknown as pg.QueryResult<OutboxRow & { mine: boolean }>[];
				if (!batch.rows[0].mine) return -1;
				let rows: OutboxRow[] = batch.rows.filter(r => r.id !== null);
				if (rows.length === 0) return 0;
				if (rows.length === this.options.batch) rows = rows.concat(await this.restOfTransactions(c, rows));
				// Bounded: this transaction holds the relay lock, and the database ends a transaction idle too long.
				await withTimeout(this.log.publish(this.options.region, rows.map(toReplEvent)), this.options.publishTimeoutMs ?? 5000, "publishing to the event log");
				// Marked (and so acknowledged to a client waiting for durability) only if still publishable now that the log
				// took them: a lease that ran out meanwhile may have let a successor fence this log before they landed, and
				// then no one applies them. Left unmarked, they are published again if the lease comes back, or superseded.
				const [marked] = (await c.query(
					`EXECUTE relay_mark('{${rows.map(r => int(r.id)).join(",")}}', ${region}); COMMIT`,
				)) as unknown as pg.QueryResult[];
				if ((marked.rowCount ?? 0) < rows.length) this.options.onUnconfirmed?.(rows.length - (marked.rowCount ?? 0));
				return marked.rowCount ?? 0;
			},
			{ joined: true },
		);
	}

	/**
	 * A full batch may end inside a transaction (or several: their rows' ids interleave). The rows after it up to
	 * the last row of those transactions, and so on for the transactions these begin: the log never holds part of a
	 * transaction, which a successor taking over at the end of the log would apply alone, and the rows of one key
	 * still leave in id order (none skipped for a later one).
	 */
	private async restOfTransactions(c: pg.PoolClient, rows: OutboxRow[]): Promise<OutboxRow[]> {
		const more: OutboxRow[] = [];
		const seen = new Set(rows.map(r => r.tx_id));
		let txs = [...seen];
		let last = rows[rows.length - 1].id;
		while (txs.length > 0) {
			const end = await c.query<{ id: string | null }>(
				`SELECT max(id)::text AS id FROM outbox WHERE published_at IS NULL AND tx_id = ANY($1::bigint[])`,
				[txs],
			);
			const to = end.rows[0].id;
			if (to === null || BigInt(to) <= BigInt(last)) break;
			const next = await c.query<OutboxRow>(
				`SELECT ${OUTBOX_COLUMNS} FROM outbox o WHERE published_at IS NULL AND id > $1::bigint AND id <= $3::bigint AND ${PUBLISHABLE} ORDER BY o.id`,
				[last, this.options.region, to],
			);
			more.push(...next.rows);
			last = to;
			txs = [];
			for (const r of next.rows)
				if (!seen.has(r.tx_id)) {
					seen.add(r.tx_id);
					txs.push(r.tx_id);
				}
		}
		return more;
	}

	start(): void {
		if (this.running) return;
		this.running = true;
		this.listening = this.listen();
		this.loop = (async () => {
			let backoff = this.options.pollMs;
			while (this.running) {
				let n = 0;
				try {
					n = await this.tick();
					if (n > 0) this.options.onPublished?.(n);
					// A standby looks again only now and then: the active relay holds the lock while it lives.
					backoff = n < 0 ? Math.max(this.options.pollMs, STANDBY_MS) : this.options.pollMs;
				} catch (err) {
					this.options.onError?.(err as Error);
					backoff = Math.min(backoff * 2, 2000);
				}
				// A full batch means more is waiting, and a notification new rows: go on at once. Else sleep until a
				// notification, or pollMs (rows waiting for a lease, a lost notification connection).
				if (n < this.options.batch && this.running && this.notifiedAt === undefined) await this.sleep(backoff);
				// Woken by a commit (not a full batch waiting): let the next commits join this round, for what is left of the
				// linger since the first of them (a commit that came during the last round has waited long enough).
				if (this.notifiedAt !== undefined && n < this.options.batch && this.options.lingerMs && this.running) {
					const left = lingerLeft(this.options.lingerMs, this.notifiedAt, performance.now());
					if (left > 0) await this.linger(left);
				}
				this.notifiedAt = undefined;
			}
		})();
	}

	private notify() {
		this.notifiedAt ??= performance.now();
		this.wake?.();
	}

	private linger(ms: number) {
		return new Promise<void>(resolve => setTimeout(resolve, ms));
	}

	private sleep(ms: number) {
		return new Promise<void>(resolve => {
			const t = setTimeout(done, ms);
			function done() {
				clearTimeout(t);
				resolve();
			}
			this.wake = done;
		});
	}

	/**
	 * Wakes the relay when outbox rows commit, on a connection of its own (LISTEN holds one). Lost, it connects again
	 * after a second; meanwhile the relay polls every pollMs.
	 */
	private async listen(): Promise<void> {
		while (this.running) {
			const client = new pg.Client(this.pool.options);
			const closed = new Promise<void>(resolve => {
				client.on("error", () => resolve());
				client.on("end", () => resolve());
			});
			client.on("notification", () => this.notify());
			try {
				await client.connect();
				await client.query(`LISTEN ${CHANNEL}`);
				this.listener = client;
				// stop() came while this connected: it found no listener to end.
				if (!this.running) break;
				// Rows may have committed before the LISTEN: look once.
				this.notify();
				await closed;
			} catch (err) {
				this.options.onError?.(new Error(`listening for outbox rows failed (polling every ${this.options.pollMs} ms): ${(err as Error).message}`));
			} finally {
				this.listener = undefined;
				await client.end().catch(() => undefined);
			}
			if (this.running) await new Promise(r => setTimeout(r, 1000));
		}
	}

	async stop(): Promise<void> {
		this.running = false;
		this.wake?.();
		await this.listener?.end().catch(() => undefined);
		await this.loop;
		await this.listening;
	}
}
