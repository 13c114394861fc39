// The event log over Kafka (kafkajs): one topic per source region, keyed by eventKey so one key's events
// stay in one partition, in order. Consumer groups commit only after the handler resolved, so a crash
// or a rejection re-delivers (at-least-once).
import { CompressionTypes, Partitioners, type Admin, type Consumer, type EachBatchPayload, type Kafka, type logLevel, type Producer, type RetryOptions } from "kafkajs";
import { kafkaClient, kafkaRetry, type KafkaLogLevel, type KafkaSasl } from "./kafka-client";
import { ApplyLanes, report } from "./lanes";
import { eventKey, topicFor, type EventLog, type LogPosition, type ReplEvent, type SubscribeOptions, type Subscription } from "./event-log";

export interface KafkaEventLogOptions {
	brokers: string[];
	/** Topics are `${prefix}.events.${source}` (topicFor). */
	prefix: string;
	clientId?: string;
	/** How long a Fetch waits for data (default 100 ms: the mock answers an empty fetch only after all of it). */
	maxWaitTimeInMs?: number;
	/** Default 3000 for the mock's slow rebalances; a real Kafka refuses less than its group.min.session.timeout.ms (6000 by default). */
	sessionTimeout?: number;
	heartbeatInterval?: number;
	/** TCP connect timeout, ms (default 3000). */
	connectionTimeout?: number;
	/** Per-request timeout, ms (default 10000); also the broker's wait for acks of a produce. */
	requestTimeout?: number;
	/** kafkajs retries of a failed request (default 5, 100 ms growing to 1 s): bounds how long a publish to a lost broker takes to fail. */
	retries?: number;
	/**
	 * How long an applied batch's offset may wait before it is committed (default 20 ms): offsets are committed
	 * together, every this often, not after each batch (a commit per batch capped the test broker, which hands out
	 * one producer batch per partition per fetch, at ~150 batches/s). A crash re-delivers at most this much.
	 */
	commitIntervalMs?: number;
	/**
	 * A publish is gzipped from this many bytes of events on (default 16 KiB). A relay's usual publish holds a few
	 * events, where gzip saves a few hundred bytes and costs a trip through libuv's thread pool on both sides: a
	 * publish of two events took 0.9 ms with it and 0.5 ms without, and a reader drained such batches 55 % faster.
	 * A relay's backlog (a region back from an outage) still leaves compressed.
	 */
	compressFromBytes?: number;
	/** What reaches `log` (default WARN). */
	logLevel?: logLevel;
	log?: (level: KafkaLogLevel, message: string) => void;
	/** TLS to the brokers (a managed Kafka), and SASL credentials. */
	ssl?: boolean;
	sasl?: KafkaSasl;
	/**
	 * The topic another region's events are read from. Default: the topic that region publishes to (one
	 * stretched cluster). With one Kafka per region linked by MirrorMaker 2's default replication policy, the
	 * copy is named `<source alias>.<topic>`: `(source, topic) => \`${source}.${topic}\``.
	 */
	remoteTopic?: (source: string, topic: string) => string;
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

export class KafkaEventLog implements EventLog {
	private readonly kafka: Kafka;
	private readonly o: Required<Omit<KafkaEventLogOptions, "log" | "clientId" | "logLevel" | "ssl" | "sasl" | "remoteTopic">>;
	private readonly remoteTopic: (source: string) => string;
	private readonly retry: RetryOptions;
	private producing?: Promise<Producer>;
	private admining?: Promise<Admin>;
	private readonly subscriptions = new Set<Subscription>();
	private closing?: Promise<void>;
	private readonly warn: (message: string) => void;

	constructor(options: KafkaEventLogOptions) {
		this.o = {
			brokers: options.brokers,
			prefix: options.prefix,
			maxWaitTimeInMs: options.maxWaitTimeInMs ?? 100,
			sessionTimeout: options.sessionTimeout ?? 3_000,
			heartbeatInterval: options.heartbeatInterval ?? 500,
			connectionTimeout: options.connectionTimeout ?? 3_000,
			requestTimeout: options.requestTimeout ?? 10_000,
			retries: options.retries ?? 5,
			commitIntervalMs: options.commitIntervalMs ?? 20,
			compressFromBytes: options.compressFromBytes ?? 16 * 1024,
		};
		const remote = options.remoteTopic;
		this.remoteTopic = source => (remote ? remote(source, topicFor(this.o.prefix, source)) : topicFor(this.o.prefix, source));
		this.retry = kafkaRetry(this.o.retries);
		const log = options.log;
		this.warn = message => log?.("warn", message);
		// kafkajs logs to stdout by default; here it goes to the caller's logger or nowhere.
		this.kafka = kafkaClient({
			brokers: this.o.brokers,
			clientId: options.clientId ?? "wallet-replication",
			connectionTimeout: this.o.connectionTimeout,
			requestTimeout: this.o.requestTimeout,
			retries: this.o.retries,
			ssl: options.ssl,
			sasl: options.sasl,
			logLevel: options.logLevel,
			log,
		});
	}

	async publish(source: string, events: ReplEvent[]): Promise<void> {
		if (!events.length) return;
		await this.send(source, events.map(e => ({ e })));
	}

	async fence(source: string, event: ReplEvent): Promise<void> {
		this.assertOpen();
		// The topic the source writes to (a mirror copies the marker with the rest, partition by partition).
		const partitions = await (await this.admin()).fetchTopicOffsets(topicFor(this.o.prefix, source)).catch(err => {
			throw new Error(`kafka: reading the partitions of ${source}'s log failed: ${(err as Error).message}`, { cause: err });
		});
		await this.send(source, partitions.map(p => ({ e: event, partition: p.partition })));
	}

	private async send(source: string, items: { e: ReplEvent; partition?: number }[]) {
		this.assertOpen();
		const topic = topicFor(this.o.prefix, source);
		try {
			const producer = await this.producer();
			const messages = items.map(({ e, partition }) => ({
				key: eventKey(e),
				...(partition === undefined ? {} : { partition }),
				value: JSON.stringify(e),
				headers: { eventId: e.eventId, type: e.type },
			}));
			const bytes = messages.reduce((n, m) => n + m.value.length, 0);
			await producer.send({
				topic,
				acks: -1,
				timeout: this.o.requestTimeout,
				compression: bytes >= this.o.compressFromBytes ? CompressionTypes.GZIP : CompressionTypes.None,
				messages,
			});
		} catch (err) {
			throw new Error(`kafka: publishing ${items.length} event(s) to ${topic} failed: ${(err as Error).message}`, { cause: err });
		}
	}

	async subscribe(options: SubscribeOptions): Promise<Subscription> {
		this.assertOpen();
		const { group, sources, handler, onError } = options;
		const sourceOf = new Map(sources.map(s => [this.remoteTopic(s), s]));
		const consumer = this.kafka.consumer({
			groupId: group,
			sessionTimeout: this.o.sessionTimeout,
			heartbeatInterval: this.o.heartbeatInterval,
			maxWaitTimeInMs: this.o.maxWaitTimeInMs,
			// Topics are provisioned with their partition counts; a typo must not create one with the broker's default.
			allowAutoTopicCreation: false,
			// kafkajs counts every eachBatch rejection against these retries (only a rebalance resets the count,
			// not a success) and crashes and rejoins the consumer once they run out: unbounded, with a short
			// backoff, since ours paces the re-deliveries. A lost broker is retried the same way (≤ 1 s apart).
			retry: { ...this.retry, retries: Number.MAX_SAFE_INTEGER },
		});
		// Offsets applied and not yet committed, per topic and partition: committed together (see commitIntervalMs).
		const applied = new Map<string, { topic: string; partition: number; offset: string }>();
		let committing: Promise<void> = Promise.resolve();
		let commitTimer: NodeJS.Timeout | undefined;
		let leaving = false;
		const commit = () => {
			commitTimer = undefined;
			if (!applied.size) return committing;
			const offsets = [...applied.values()];
			applied.clear();
			committing = committing
				.then(() => consumer.commitOffsets(offsets))
				.catch(err => {
					// Nothing lost: the next commit carries a later offset, or the events come again (idempotent apply).
					this.warn(`kafka: committing offsets of ${group} failed (the next commit carries later ones): ${(err as Error).message}`);
				});
			return committing;
		};
		// Fetched batches wait in their partition's lane while the lane's last ones are applied (src/replication/lanes.ts).
		const lanes = new ApplyLanes<{ topic: string; partition: number; offset: string }>({
			handler,
			onError,
			onApplied: (where, offset) => {
				applied.set(where, offset);
				if (!leaving) commitTimer ??= setTimeout(commit, this.o.commitIntervalMs);
			},
		});
		// A rebalance: kafkajs fetches every partition it now holds again from its committed offset.
		consumer.on(consumer.events.GROUP_JOIN, () => lanes.clear());

		const eachBatch = async (p: EachBatchPayload) => {
			const { batch } = p;
			const source = sourceOf.get(batch.topic) ?? batch.topic;
			const where = `${batch.topic}[${batch.partition}]`;
			let events: ReplEvent[];
			try {
				events = batch.messages.map(m => parse(m.value, `${where}@${m.offset}`));
			} catch (err) {
				// A record that is not an event: reported, and fetched again after a pause (it stays until fixed by hand).
				report(onError, err, { source, lane: batch.partition, events: [] });
				await sleep(2_000);
				// Wrapped: kafkajs treats a TypeError, RangeError, ReferenceError or SyntaxError as unrecoverable and stops
				// the consumer for good (a SyntaxError is what JSON.parse throws).
				throw new Error(`kafka: unreadable record in ${where}, fetching again`, { cause: err });
			}
			// Waiting for room in the lane may outlast the session timeout: kafkajs heartbeats only between batches.
			const beat = setInterval(() => p.heartbeat().catch(() => {}), this.o.heartbeatInterval);
			try {
				const next = { topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() };
				const queued = await lanes.push(where, source, batch.partition, { events, position: next }, () => p.isRunning() && !p.isStale() && !leaving);
				// Not queued: left unresolved, so it is fetched again (or by the next member, from the committed offset).
				if (queued) p.resolveOffset(batch.lastOffset());
			} finally {
				clearInterval(beat);
			}
		};

		try {
			await consumer.connect();
			await consumer.subscribe({ topics: [...sourceOf.keys()], fromBeginning: true });
			// eachBatch only queues a batch on its lane, but waits while that lane is full: with a worker per lane a
			// fetch can bring (two sources of 4 partitions in the cluster), a full lane holds up no other.
			await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 8, eachBatch });
		} catch (err) {
			await consumer.disconnect().catch(() => {});
			throw new Error(`kafka: subscribing ${group} to ${sources.join(", ")} failed: ${(err as Error).message}`, { cause: err });
		}

		let stopping: Promise<void> | undefined;
		const subscription: Subscription = {
			stop: () => {
				leaving = true;
				clearTimeout(commitTimer);
				// The applies in flight end, and what was applied is committed before leaving the group (the next member
				// starts after it); what was fetched and not applied is fetched again by the next member.
				stopping ??= lanes
					.stop()
					.then(commit)
					.then(() => consumer.disconnect())
					.finally(() => this.subscriptions.delete(subscription));
				return stopping;
			},
		};
		this.subscriptions.add(subscription);
		if (this.closing) {
			// close() ran while this one was starting, and did not see it.
			await subscription.stop();
			this.assertOpen();
		}
		return subscription;
	}

	async backlog(group: string, source: string, upTo?: LogPosition): Promise<number> {
		this.assertOpen();
		const topic = this.remoteTopic(source);
		const admin = await this.admin();
		const [ends, committed] = await Promise.all([
			admin.fetchTopicOffsets(topic),
			admin.fetchOffsets({ groupId: group, topics: [topic] }),
		]);
		const done = new Map((committed[0]?.partitions ?? []).map(p => [p.partition, Number(p.offset)]));
		let total = 0;
		for (const p of ends) {
			const from = done.get(p.partition) ?? -1;
			const end = Math.min(Number(p.high), upTo?.[p.partition] ?? Number.POSITIVE_INFINITY);
			// -1: nothing committed yet, so the group starts at the oldest offset the topic still holds.
			total += Math.max(0, end - (from < 0 ? Number(p.low) : from));
		}
		return total;
	}

	async ends(source: string): Promise<LogPosition> {
		this.assertOpen();
		const offsets = await (await this.admin()).fetchTopicOffsets(this.remoteTopic(source));
		return Object.fromEntries(offsets.map(p => [p.partition, Number(p.high)]));
	}

	close(): Promise<void> {
		this.closing ??= (async () => {
			const producing = this.producing;
			const admining = this.admining;
			await Promise.allSettled([
				...[...this.subscriptions].map(s => s.stop()),
				producing?.then(p => p.disconnect()),
				admining?.then(a => a.disconnect()),
			]);
		})();
		return this.closing;
	}

	private assertOpen() {
		if (this.closing) throw new Error("kafka: the event log is closed");
	}

	private producer(): Promise<Producer> {
		this.producing ??= (async () => {
			const producer = this.kafka.producer({
				// One request at a time per broker keeps one key's order across retries; idempotent producers
				// would do it better but the mock serves no idempotent producer.
				maxInFlightRequests: 1,
				allowAutoTopicCreation: false,
				createPartitioner: Partitioners.DefaultPartitioner,
			});
			await producer.connect();
			return producer;
		})().catch(err => {
			this.producing = undefined;
			throw err;
		});
		return this.producing;
	}

	private admin(): Promise<Admin> {
		this.admining ??= (async () => {
			const admin = this.kafka.admin();
			await admin.connect();
			return admin;
		})().catch(err => {
			this.admining = undefined;
			throw err;
		});
		return this.admining;
	}
}

function parse(value: Buffer | null, where: string): ReplEvent {
	// A record we cannot read stops its partition (handled as a failing handler): skipping it would lose an event.
	let event: unknown;
	try {
		event = JSON.parse(value?.toString() ?? "null");
	} catch (err) {
		throw new Error(`kafka: ${where} is not JSON`, { cause: err });
	}
	if (typeof event !== "object" || event === null || typeof (event as ReplEvent).eventId !== "string")
		throw new Error(`kafka: ${where} is not a replicated event`);
	return event as ReplEvent;
}
