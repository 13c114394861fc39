// The event log that carries each region's committed outbox events to the other regions (brief §5).
// Two adapters behind one interface, as moleculer-channels does: Kafka (kafkajs) for real deployments and
// the local cluster, and an in-memory twin for the embedded default and unit tests. Both are held to one
// contract suite (test/helpers/event-log-contract.ts).

/** One replicated event: an outbox row as it travels, or a fence (see fenceEvent). */
export interface ReplEvent {
	eventId: string;
	aggregateType: "supply" | "order" | "claim" | "ownership";
	aggregateId: string;
	/** The aggregate's version after this change (1, 2, 3, ... per aggregate). */
	version: number;
	type: string;
	/** The region that wrote it (its owner at the time). */
	region: string;
	/** The entity's home region. */
	homeRegion: string;
	/** The ownership epoch the write was made under (fencing token). */
	epoch: number;
	/** The writing database's transaction id: events of one change share it. */
	txId: string;
	schemaVersion: number;
	/** Commit-side creation time, ISO-8601 (replication lag is measured from it). */
	createdAt: string;
	/** The entity's full state after the change, in the API's shape. */
	payload: Record<string, unknown>;
}

/** Events of one source region, in log order for each key. */
export interface Delivery {
	source: string;
	events: ReplEvent[];
	/** The log's partition they came from: deliveries of different lanes may be handled side by side. */
	lane?: number;
}

export interface SubscribeOptions {
	/** Consumer group: each region consumes in its own group, so every region sees every event. */
	group: string;
	/** The regions whose logs to read (every region but the consumer's own). */
	sources: string[];
	/**
	 * Applies a batch. Offsets advance only after it resolves; a rejection redelivers the same events
	 * (at-least-once: the handler must be idempotent).
	 */
	handler: (delivery: Delivery) => Promise<void>;
	/** Called when a handler rejects, before the redelivery (for logs and metrics). */
	onError?: (err: Error, delivery: Delivery) => void;
}

export interface Subscription {
	stop(): Promise<void>;
}

/** The end offset of each partition of one source's log. */
export type LogPosition = Record<number, number>;

export interface EventLog {
	/**
	 * Publishes events written in `source`, in the order given for each key (eventKey). Resolves only
	 * once the log holds them durably (Kafka: acks from every in-sync replica).
	 */
	publish(source: string, events: ReplEvent[]): Promise<void>;
	subscribe(options: SubscribeOptions): Promise<Subscription>;
	/**
	 * How many events `group` has yet to consume from `source` (0 when caught up), or only of those before `upTo`:
	 * catch-up and failover wait for 0 before a region writes what another region wrote.
	 */
	backlog(group: string, source: string, upTo?: LogPosition): Promise<number>;
	/** Where `source`'s log ends now: with `backlog(group, source, upTo)`, "caught up to that moment" while it grows. */
	ends(source: string): Promise<LogPosition>;
	/**
	 * Appends `event` to every partition of `source`'s log (a region writes into another's: the fence of a
	 * takeover); resolves once the log holds it durably, after whatever each partition held before.
	 */
	fence(source: string, event: ReplEvent): Promise<void>;
	close(): Promise<void>;
}

/**
 * The key that orders events: an order and its claims share the order's id (a claim's release and the
 * order's next claim must reach a replica in that order, or its one-live-claim index would refuse the
 * second); a supply's events are keyed by the supply.
 */
export function eventKey(e: ReplEvent): string {
	if (e.aggregateType === "claim") return String(e.payload.orderId);
	return e.aggregateId;
}

/**
 * The marker a region writes into the old owner's log when it takes `homeRegion` over at `epoch`: from it on,
 * every reader skips that log's events of `homeRegion` under an older epoch (migrations/*_log-fences.sql).
 */
export function fenceEvent(f: { source: string; homeRegion: string; epoch: number; owner: string; eventId: string; at?: Date }): ReplEvent {
	return {
		eventId: f.eventId,
		aggregateType: "ownership",
		aggregateId: f.homeRegion,
		version: f.epoch,
		type: "OwnershipFenced",
		region: f.owner,
		homeRegion: f.homeRegion,
		epoch: f.epoch,
		txId: "0",
		schemaVersion: 1,
		createdAt: (f.at ?? new Date()).toISOString(),
		payload: { homeRegion: f.homeRegion, epoch: f.epoch, owner: f.owner, source: f.source },
	};
}

/** The topic (Kafka) or stream (memory) of one source region's events. */
export const topicFor = (prefix: string, source: string) => `${prefix}.events.${source}`;
