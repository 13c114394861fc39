// The applier: consumes the other regions' events and applies each batch in one transaction, one round trip
// (the SQL function apply_events): a newer version wins, an older or repeated one is skipped, so
// redeliveries and reorderings are harmless. The log's offsets advance only after the commit.
import type { Pool } from "pg";
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
	const { rows } = await pool.query<{ r: ApplyResult }>(`SELECT apply_events($1::jsonb) AS r`, [
		JSON.stringify({ source: d.source, lane: d.lane ?? 0, region, events: d.events }),
	]);
	return rows[0].r;
}

export interface ApplierOptions {
	region: string;
	regions: string[];
	group: string;
	onApplied?: (d: Delivery, r: ApplyResult) => Promise<void> | void;
	onError?: (err: Error, d: Delivery) => void;
}

export class Applier {
	private sub?: Subscription;

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
				const r = await applyDelivery(this.pool, this.options.region, d);
				await this.options.onApplied?.(d, r);
			},
			onError: this.options.onError,
		});
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
