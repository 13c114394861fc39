import { randomUUID } from "node:crypto";
import type { ClientBase } from "pg";

export interface DomainEvent {
	aggregateType: "supply" | "order" | "claim";
	aggregateId: string;
	version: number;
	type: string;
	region: string;
	payload: unknown;
}

/** Appends events in the caller's transaction, so an event exists exactly when its change does. */
export async function appendEvents(client: ClientBase, events: DomainEvent[]): Promise<void> {
	if (events.length === 0) return;
	const values: unknown[] = [];
	const tuples = events.map((e, i) => {
		values.push(randomUUID(), e.aggregateType, e.aggregateId, e.version, e.type, e.region, JSON.stringify(e.payload));
		const b = i * 7;
		return `($${b + 1},$${b + 2},$${b + 3},$${b + 4},$${b + 5},$${b + 6},$${b + 7})`;
	});
	await client.query(
		`INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, payload)
		 VALUES ${tuples.join(",")}`,
		values,
	);
}
