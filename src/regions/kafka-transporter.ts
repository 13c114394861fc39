// The region link's Moleculer transporter, on kafkajs (the project's Kafka client: src/replication/kafka-log.ts).
// It does what Moleculer's own Kafka transporter does (the same topics, `MOL-<namespace>.<CMD>[.<nodeID>]`, each
// broker instance a consumer group of its own, missing topics created), on a client that loads in 70 ms.
// Moleculer's runs on @platformatic/kafka, whose import compiles its option schemas with ajv: 0.6 s of an idle
// core, 2-3 s on a loaded one, with the event loop held, before a returning region's link (and its applier) could
// start joining their consumer groups: on the critical path of every fail-back (docs/multi-region.md).
import { Transporters } from "moleculer";
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";
import { kafkaClient, kafkaRetry, type KafkaSasl } from "../replication/kafka-client";

export interface KafkaLinkOptions {
	brokers: string[];
	clientId: string;
	/** How long an empty Fetch waits (the test broker answers one only after all of it): every packet may wait this long. */
	maxWaitTimeInMs: number;
	/**
	 * How long the broker keeps this node's group member without a heartbeat (default 30 s). Long, so that a Kafka
	 * outage shorter than that leaves the member in place and the consumer fetches again as soon as the broker is
	 * back; a member it lost must join again (3 s on the test broker). Nothing else ever joins the group.
	 */
	sessionTimeout?: number;
	heartbeatInterval?: number;
	ssl?: boolean;
	sasl?: KafkaSasl;
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

/** Retries of a send or an admin request: it gives up after these (a caller waits on it). */
const RETRIES = 5;

export class KafkaLinkTransporter extends Transporters.Base {
	/** The consumer's own client: its connections are retried for as long as the broker is away (see connect). */
	private consumerKafka?: Kafka;
	private producer?: Producer;
	private admin?: Admin;
	private consumer?: Consumer;
	private topics: string[] = [];
	/** The next offset of each partition (`topic:partition`) after what was delivered: where a replacement consumer starts. */
	private readonly next = new Map<string, string>();
	/** Consumer groups this transporter has made: a consumer that crashed is replaced in a new one. */
	private groups = 0;
	private resubscribing?: NodeJS.Timeout;

	constructor(opts: KafkaLinkOptions) {
		super(opts as unknown as Record<string, unknown>);
	}

	private get o(): KafkaLinkOptions {
		return (this as unknown as BaseInternals).opts;
	}

	private client(retries: number): Kafka {
		const { brokers, clientId, ssl, sasl } = this.o;
		const logger = this.logger;
		return kafkaClient({
			brokers,
			clientId,
			connectionTimeout: 3_000,
			requestTimeout: 10_000,
			retries,
			ssl,
			sasl,
			log: (level, message) => (level === "error" ? logger.warn(message) : logger.debug(message)),
		});
	}

	async connect(): Promise<void> {
		// Moleculer calls connect again, 5 s after a failed one: nothing of the last attempt stays connected.
		await this.disconnect();
		// A send or an admin request gives up after a few retries (a caller waits on it). The consumer's connections
		// are retried without end: with a bounded count kafkajs crashes the consumer a few seconds into an outage
		// and restarts it as a new group member, which joins only once the broker is back (3 s more on the test
		// broker); unbounded, it keeps its member and fetches again as soon as the broker answers.
		const kafka = this.client(RETRIES);
		this.consumerKafka = this.client(Number.MAX_SAFE_INTEGER);
		this.producer = kafka.producer({ allowAutoTopicCreation: false, retry: kafkaRetry(RETRIES) });
		this.admin = kafka.admin({ retry: kafkaRetry(RETRIES) });
		await Promise.all([this.producer.connect(), this.admin.connect()]);
		this.logger.info("Kafka client is connected.");
		await (this as unknown as BaseInternals).onConnected();
	}

	async disconnect(): Promise<void> {
		clearTimeout(this.resubscribing);
		const clients = [this.consumer, this.producer, this.admin];
		this.consumer = this.producer = this.admin = undefined;
		await Promise.all(clients.map(c => c?.disconnect().catch(() => undefined)));
	}

	override async makeSubscriptions(topics: { cmd: string; nodeID?: string }[]): Promise<void> {
		this.topics = topics.map(({ cmd, nodeID }) => this.getTopicName(cmd, nodeID));
		if (!this.admin) throw new Error("the Kafka link is not connected");
		await this.createMissing(this.admin, this.topics);
		await this.consume();
		this.logger.info("The consumer started successfully.");
	}

	/**
	 * One consumer for every topic of this node, in a group of its own (the broker's instance id). Each partition is
	 * read from where the last consumer left it, or else from its end as it is now, pinned before the group is
	 * joined: the answers to this node's DISCOVER, which Moleculer sends right after subscribing, may arrive while the
	 * join still runs (3 s on the test broker), and so may packets sent while a crashed consumer is replaced.
	 */
	private async consume(): Promise<void> {
		const admin = this.admin;
		const kafka = this.consumerKafka;
		if (!admin || !kafka) throw new Error("the Kafka link is not connected");
		const names = this.topics;
		const starts: TopicOffset[] = (
			await Promise.all(
				names.map(async topic =>
					(await admin.fetchTopicOffsets(topic)).map(p => ({ topic, partition: p.partition, offset: this.next.get(`${topic}:${p.partition}`) ?? p.high })),
				),
			)
		).flat();
		// Disconnected (or connected anew) meanwhile.
		if (this.admin !== admin) return;
		for (const s of starts) this.next.set(`${s.topic}:${s.partition}`, s.offset);
		const n = this.groups++;
		const consumer = kafka.consumer({
			groupId: n ? `${this.broker.instanceID}-${n}` : this.broker.instanceID,
			sessionTimeout: this.o.sessionTimeout ?? 30_000,
			heartbeatInterval: this.o.heartbeatInterval ?? 1_000,
			maxWaitTimeInMs: this.o.maxWaitTimeInMs,
			allowAutoTopicCreation: false,
			// kafkajs would restart a crashed consumer as a new member of the same group, whose join then waits for the
			// old member's long session to run out: it is replaced in a group of its own instead (below).
			retry: { ...kafkaRetry(Number.MAX_SAFE_INTEGER), restartOnFailure: async () => false },
		});
		consumer.on(consumer.events.CRASH, ({ payload }) => {
			if (this.consumer !== consumer) return;
			this.logger.warn(`The link's Kafka consumer stopped (${payload.error.message}): subscribing again`);
			this.consumer = undefined;
			void consumer.disconnect().catch(() => undefined);
			this.resubscribe();
		});
		this.consumer = consumer;
		await consumer.connect();
		await consumer.subscribe({ topics: names });
		// No commits: a packet is delivered once. A replaced consumer's successor starts after what was delivered
		// (above); Kafka's committed offsets would lag behind it and deliver some requests again.
		const running = consumer.run({ autoCommit: false, partitionsConsumedConcurrently: names.length, eachBatch: p => this.deliver(p) });
		// run() has made the consumer group (synchronously): the seeks apply to the first fetch after the join.
		for (const start of starts) consumer.seek(start);
		await running;
	}

	/** Until a new consumer runs, or the transporter is disconnected. */
	private resubscribe() {
		this.resubscribing = setTimeout(() => {
			if (!this.admin || this.consumer) return;
			this.consume().then(
				() => this.logger.info("The link's Kafka consumer runs again."),
				(err: Error) => {
					this.logger.warn(`Subscribing the link's Kafka consumer again failed (retrying): ${err.message}`);
					const c = this.consumer;
					this.consumer = undefined;
					void c?.disconnect().catch(() => undefined);
					this.resubscribe();
				},
			);
		}, 1_000);
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
		if (batch.messages.length) this.next.set(`${batch.topic}:${batch.partition}`, (BigInt(batch.lastOffset()) + 1n).toString());
		// Not awaited: a request's handler runs as long as its action does, and must not hold up the packets after it.
		for (const m of batch.messages)
			if (m.value) void Promise.resolve(this.receive(cmd, m.value)).catch(err => this.logger.warn(`Handling a ${cmd} packet failed: ${(err as Error).message}`));
	}

	/** `topic` is the packet's (its target's own, for a packet to one node): Transporters.Base.publish names it. */
	async send(topic: string, data: Buffer): Promise<void> {
		const producer = this.producer;
		if (!producer) return;
		// acks 1: a packet lives as long as its call waits for an answer, no longer, and acks -1 costs a replication round.
		await producer.send({ topic, acks: 1, messages: [{ value: data, partition: 0 }] });
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
