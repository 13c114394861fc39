import { randomUUID } from "node:crypto";
import { Errors } from "moleculer";
import type { ClientBase, Pool } from "pg";
import type { Config } from "../../config";

export interface DomainEvent {
	aggregateType: "supply" | "order" | "claim";
	aggregateId: string;
	version: number;
	type: string;
	/** The region that wrote the event. */
	region: string;
	/** The entity's home region (defaults to the writing region). */
	homeRegion?: string;
	/** The ownership epoch the write was made under. */
	epoch?: number;
	payload: unknown;
}

/** Appends events in the caller's transaction, so an event exists exactly when its change does. */
export async function appendEvents(client: ClientBase, events: DomainEvent[]): Promise<void> {
	if (events.length === 0) return;
	const values: unknown[] = [];
	const tuples = events.map((e, i) => {
		values.push(
			randomUUID(),
			e.aggregateType,
			e.aggregateId,
			e.version,
			e.type,
			e.region,
			JSON.stringify(e.payload),
			e.homeRegion ?? e.region,
			e.epoch ?? 0,
		);
		const b = i * 9;
		return `(${Array.from({ length: 9 }, (_, j) => `$${b + j + 1}`).join(",")})`;
	});
	await client.query(
		`INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, payload, home_region, epoch)
		 VALUES ${tuples.join(",")}`,
		values,
	);
}

/**
 * Waits until what a write put in the outbox is published (the relay marks a row once the event log holds it):
 * every event of the transaction that created `claimId`, an aggregate's events up to `version` (and the rest of
 * that version's transaction), or a home region's events up to `epoch`. False if `until` (epoch ms) passes first.
 */
export async function waitPublished(
	db: Pool,
	what: { claimId: string } | { aggregateId: string; version: number } | { homeRegion: string; epoch: number },
	until: number,
): Promise<boolean> {
	const [sql, args] =
		"claimId" in what
			? [
					`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL
					    AND tx_id IN (SELECT tx_id FROM outbox WHERE aggregate_id = $1 AND aggregate_version = 1 AND aggregate_type = 'claim')`,
					[what.claimId],
				]
			: "aggregateId" in what
				? [
						// Its earlier versions, and every event of the transaction that wrote this one (a relay batch can end
						// inside a transaction).
						`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL
						    AND ((aggregate_id = $1 AND aggregate_version <= $2)
						         OR tx_id IN (SELECT tx_id FROM outbox WHERE aggregate_id = $1 AND aggregate_version = $2))`,
						[what.aggregateId, what.version],
					]
				: [
						`SELECT count(*)::int AS n FROM (SELECT 1 FROM outbox WHERE published_at IS NULL AND home_region = $1 AND epoch <= $2 LIMIT 1) x`,
						[what.homeRegion, what.epoch],
					];
	for (;;) {
		const r = await db.query<{ n: number }>(sql, args);
		if (r.rows[0].n === 0) return true;
		if (Date.now() >= until) return false;
		await new Promise(res => setTimeout(res, 10));
	}
}

/** The answer when a write is committed but not yet in the event log by its deadline. */
export const notDurable = (what: string, data: Record<string, unknown>, retry = "retry with the same Idempotency-Key") =>
	// Not retried by Moleculer (the caller's budget is spent): the client retries, and is told so.
	new Errors.MoleculerError(`${what} is written but not yet durable outside its region; ${retry}`, 503, "NOT_DURABLE", data);

/**
 * CLAIM_DURABILITY=replicated (with replication on): resolves once a write's events are in the event log (a claim's
 * transaction, or an order's events up to its version), else throws `refused()` at `until`. A claim, completion,
 * release or cancellation answered at its commit could be superseded if its region were lost before publishing it:
 * the drills saw a 200 undone.
 */
export async function whenDurable(
	db: Pool,
	cfg: Config,
	what: { claimId: string } | { aggregateId: string; version: number },
	until: number,
	refused: () => Error,
): Promise<void> {
	if (cfg.failover.durability !== "replicated" || cfg.replication.mode === "off") return;
	if (!(await waitPublished(db, what, until))) throw refused();
}

/** whenDurable for an order command's result. */
export const durableOrder = (db: Pool, cfg: Config, order: { id: string; version: number }, until: number) =>
	whenDurable(db, cfg, { aggregateId: order.id, version: order.version }, until, () =>
		notDurable("The change", { orderId: order.id }, "read the order to see whether it took effect"),
	);
