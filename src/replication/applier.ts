// The applier: consumes the other regions' events and applies each batch in one transaction, one round trip
// (the SQL function apply_events): a newer version wins, an older or repeated one is skipped, so
// redeliveries and reorderings are harmless. The log's offsets advance only after the commit. The deliveries of
// several lanes that are ready together are committed together (apply_deliveries: group commit), because an
// apply's fixed cost is most of what a few events cost (docs/multi-region.md, "Replication lag").
import type { Pool } from "pg";
import { Batcher, togetherElseAlone, type Settled } from "../lib/batcher";
import type { Delivery, EventLog, Subscription } from "./event-log";

export interface Changed {
	aggregateType: "supply" | "order" | "claim";
	id: string;
	userId?: string;
	claimerId?: string;
	orderId?: string;
}

export interface ApplyResult {
	applied: number;
	skipped: number;
	/** Events of an epoch a takeover fenced off (migrations/*_log-fences.sql): never applied by anyone. */
	fenced: number;
	changed: Changed[];
}

/** Applies one delivery in `region`'s database (the region settles its own holds as claim events arrive). */
export async function applyDelivery(pool: Pool, region: string, d: Delivery): Promise<ApplyResult> {
	const { rows } = await pool.query<{ r: ApplyResult }>({
		name: "apply-events",
		text: `SELECT apply_events($1::jsonb) AS r`,
		values: [JSON.stringify({ source: d.source, lane: d.lane ?? 0, region, events: d.events })],
	});
	return rows[0].r;
}

/** Several deliveries in one call and one transaction, each applied as `applyDelivery` would, with its own result. */
export async function applyDeliveries(pool: Pool, region: string, ds: Delivery[]): Promise<ApplyResult[]> {
	if (ds.length === 1) return [await applyDelivery(pool, region, ds[0])];
	const { rows } = await pool.query<{ r: ApplyResult[] }>({
		name: "apply-deliveries",
		text: `SELECT apply_deliveries($1::jsonb) AS r`,
		values: [JSON.stringify({ region, deliveries: ds.map(d => ({ source: d.source, lane: d.lane ?? 0, events: d.events })) })],
	});
	return rows[0].r;
}

/**
 * What the lanes hand over while an apply is in flight leaves in the next call, together (at most this many
 * deliveries, each at most the lanes' own 500 events); one apply in flight per applier.
 */
const GROUP = { concurrency: 1, maxItems: 32, windowMs: 0 };

export interface ApplierOptions {
	region: string;
	regions: string[];
	group: string;
	onApplied?: (d: Delivery, r: ApplyResult) => Promise<void> | void;
	onError?: (err: Error, d: Delivery) => void;
}

export class Applier {
	private sub?: Subscription;
	private readonly group = new Batcher<Delivery, Settled<ApplyResult>>(
		ds => this.applyTogether(ds),
		GROUP,
		() => new Error("an apply has no deadline"),
	);

	constructor(
		private readonly pool: Pool,
		private readonly log: EventLog,
		private readonly options: ApplierOptions,
	) {}

	get sources() {
		return this.options.regions.filter(r => r !== this.options.region);
	}

	async start(): Promise<void> {
		if (this.sub || this.sources.length === 0) return;
		this.sub = await this.log.subscribe({
			group: this.options.group,
			sources: this.sources,
			handler: async d => {
				const r = await this.group.submit(d);
				if (!r.ok) throw r.error;
				await this.options.onApplied?.(d, r.value);
			},
			onError: this.options.onError,
		});
	}

	/**
	 * One call for every delivery; if it fails, each delivery alone, so that one delivery's failure (a deadlock with
	 * another node's apply, an event the database refuses) fails no other: its lane retries it.
	 */
	private applyTogether(ds: Delivery[]): Promise<Settled<ApplyResult>[]> {
		const { region } = this.options;
		return togetherElseAlone(
			ds,
			all => applyDeliveries(this.pool, region, all),
			d => applyDelivery(this.pool, region, d),
		);
	}

	/** Events of other regions not applied here yet. */
	async backlog(): Promise<Record<string, number>> {
		const out: Record<string, number> = {};
		for (const s of this.sources) out[s] = await this.log.backlog(this.options.group, s);
		return out;
	}

	async stop(): Promise<void> {
		const s = this.sub;
		this.sub = undefined;
		await s?.stop();
	}
}
