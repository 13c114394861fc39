import { randomUUID } from "node:crypto";
import type { ClientBase } from "pg";

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
