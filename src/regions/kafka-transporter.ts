// The region link's Moleculer transporter, on kafkajs (the project's Kafka client: src/replication/kafka-log.ts).
// It does what Moleculer's own Kafka transporter does (the same topics, `MOL-<namespace>.<CMD>[.<nodeID>]`, each
// broker instance a consumer group of its own, missing topics created), on a client that loads in 70 ms.
// Moleculer's runs on @platformatic/kafka, whose import compiles its option schemas with ajv: 0.6 s of an idle
// core, 2-3 s on a loaded one, with the event loop held, before a returning region's link (and its applier) could
// start joining their consumer groups: on the critical path of every fail-back (docs/multi-region.md).
import { Transporters } from "moleculer";
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type Producer, type RetryOptions, type SASLOptions } from "kafkajs";

export interface KafkaLinkOptions {
	brokers: string[];
	clientId: string;
	/** How long an empty Fetch waits (the test broker answers one only after all of it): every packet may wait this long. */
	maxWaitTimeInMs: number;
	/** Default 3000 (the test broker's rebalances wait sessionTimeout - 1 s); a real Kafka may want its minimum, 6000. */
	sessionTimeout?: number;
	heartbeatInterval?: number;
	ssl?: boolean;
	sasl?: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string };
}

interface TopicOffset {
	topic: string;
	partition: number;
	offset: string;
}

// The Transporter base class is written in JavaScript; these are the members it has that its typings leave out.
interface BaseInternals {
	opts: KafkaLinkOptions;
	onConnected(wasReconnect?: boolean): Promise<void>;
}

export class KafkaLinkTransporter extends Transporters.Base {
	private kafka?: Kafka;
	private producer?: Producer;
	private admin?: Admin;
	private consumer?: Consumer;

	constructor(opts: KafkaLinkOptions) {
		super(opts as unknown as Record<string, unknown>);
	}

	private get o(): KafkaLinkOptions {
		return (this as unknown as BaseInternals).opts;
	}

	async connect(): Promise<void> {
		// Moleculer calls connect again, 5 s after a failed one: nothing of the last attempt stays connected.
		await this.disconnect();
		const o = this.o;
		// Explicit, because kafkajs swaps in other defaults when NODE_ENV=test.
		const retry: RetryOptions = { initialRetryTime: 100, maxRetryTime: 1_000, multiplier: 2, factor: 0.2, retries: 5 };
		const logger = this.logger;
		this.kafka = new Kafka({
			brokers: o.brokers,
			clientId: o.clientId,
			connectionTimeout: 3_000,
			requestTimeout: 10_000,
			enforceRequestTimeout: true,
			...(o.ssl ? { ssl: true } : {}),
			...(o.sasl ? { sasl: o.sasl as SASLOptions } : {}),
			retry,
			logLevel: logLevel.WARN,
			logCreator:
				() =>
				({ namespace, level, log: { message, error } }) =>
					(level <= logLevel.ERROR ? logger.warn : logger.debug)(`kafkajs ${namespace}: ${message}${error ? ` (${String(error)})` : ""}`),
		});
		this.producer = this.kafka.producer({ allowAutoTopicCreation: false, retry });
		this.admin = this.kafka.admin({ retry });
		await Promise.all([this.producer.connect(), this.admin.connect()]);
		this.logger.info("Kafka client is connected.");
		await (this as unknown as BaseInternals).onConnected();
	}

	async disconnect(): Promise<void> {
		const clients = [this.consumer, this.producer, this.admin];
		this.consumer = this.producer = this.admin = undefined;
		await Promise.all(clients.map(c => c?.disconnect().catch(() => undefined)));
	}

	/**
	 * One consumer for every topic of this node, in a group of its own (the broker's instance id). Each topic is read
	 * from its end as it is when subscribing, pinned before the group is joined: the answers to this node's DISCOVER,
	 * which Moleculer sends right after, may arrive while the join is still running (3 s on the test broker).
	 */
	override async makeSubscriptions(topics: { cmd: string; nodeID?: string }[]): Promise<void> {
		const names = topics.map(({ cmd, nodeID }) => this.getTopicName(cmd, nodeID));
		const admin = this.admin;
		if (!admin || !this.kafka) throw new Error("the Kafka link is not connected");
		await this.createMissing(admin, names);
		const ends: TopicOffset[] = (await Promise.all(names.map(async topic => (await admin.fetchTopicOffsets(topic)).map(p => ({ topic, partition: p.partition, offset: p.high }))))).flat();
		const consumer = this.kafka.consumer({
			groupId: this.broker.instanceID,
			sessionTimeout: this.o.sessionTimeout ?? 3_000,
			heartbeatInterval: this.o.heartbeatInterval ?? 500,
			maxWaitTimeInMs: this.o.maxWaitTimeInMs,
			allowAutoTopicCreation: false,
		});
		this.consumer = consumer;
		await consumer.connect();
		await consumer.subscribe({ topics: names });
		// No commits: a packet is delivered at most once, as over NATS. A consumer that restarts (a lost broker) reads
		// on from the topics' ends; with committed offsets it would run again requests it had already run.
		const running = consumer.run({ autoCommit: false, partitionsConsumedConcurrently: names.length, eachBatch: p => this.deliver(p) });
		// run() has made the consumer group (synchronously): the seeks apply to the first fetch after the join.
		for (const end of ends) consumer.seek(end);
		await running;
		this.logger.info("The consumer started successfully.");
	}

	private async createMissing(admin: Admin, names: string[]) {
		const existing = new Set(await admin.listTopics());
		const missing = names.filter(t => !existing.has(t));
		if (!missing.length) return;
		// The test broker serves no CreateTopics: `npm run cluster` and the tests create the link topics first.
		// Another node may create the same topics meanwhile: kafkajs then answers false, not an error.
		await admin.createTopics({ topics: missing.map(topic => ({ topic })), waitForLeaders: true });
	}

	private async deliver({ batch }: EachBatchPayload): Promise<void> {
		const cmd = batch.topic.split(".")[1];
		// Not awaited: a request's handler runs as long as its action does, and must not hold up the packets after it.
		for (const m of batch.messages)
			if (m.value) void Promise.resolve(this.receive(cmd, m.value)).catch(err => this.logger.warn(`Handling a ${cmd} packet failed: ${(err as Error).message}`));
	}

	async send(topic: string, data: Buffer, meta: { packet: { type: string; target?: string | null } }): Promise<void> {
		const producer = this.producer;
		if (!producer) return;
		// Moleculer passes the base name; the target's own topic is the packet's.
		const name = this.getTopicName(meta.packet.type, meta.packet.target ?? undefined);
		await producer.send({ topic: name, acks: 1, messages: [{ value: data, partition: 0 }] });
	}

	subscribe(): Promise<void> {
		return Promise.resolve();
	}

	subscribeBalancedRequest(): Promise<void> {
		return Promise.resolve();
	}

	subscribeBalancedEvent(): Promise<void> {
		return Promise.resolve();
	}
}
