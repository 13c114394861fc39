// The region link's transporter (src/regions/kafka-transporter.ts) on the Kafka test broker (or KAFKA_BROKERS):
// what it delivers to a node that is still joining its consumer group, and what it never delivers. Moleculer over
// it (calls, discovery, a stopped node dropped) is test/regions/link-kafka.test.ts and the cluster's tests.
import { randomBytes } from "node:crypto";
import { Kafka, logLevel, type Producer } from "kafkajs";
import type { Transit } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KafkaLinkTransporter } from "../../src/regions/kafka-transporter";
import { kafkaForTests, type TestKafka } from "../../src/replication/kafka-mock";

const namespace = `tk${randomBytes(4).toString("hex")}`;
const topic = (cmd: string, nodeID?: string) => `MOL-${namespace}.${cmd}${nodeID ? `.${nodeID}` : ""}`;

let kafka: TestKafka;
let producer: Producer;

beforeAll(async () => {
	kafka = await kafkaForTests([topic("DISCOVER"), topic("REQ", "b"), topic("RES", "b")].map(name => ({ name, partitions: 1 })));
	producer = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).producer();
	await producer.connect();
}, 60_000);
afterAll(async () => {
	await producer?.disconnect();
	await kafka?.stop();
});

/** A transporter for node `b` with just enough of a transit around it to connect and subscribe. */
function transporterOfB(received: string[]) {
	const t = new KafkaLinkTransporter({ brokers: kafka.brokers, clientId: "kafka-transporter-test", maxWaitTimeInMs: 5 });
	const broker = {
		namespace,
		instanceID: `b-${randomBytes(4).toString("hex")}`,
		getLogger: () => ({ info() {}, debug() {}, warn: console.warn, error: console.error }),
		Promise,
	};
	const transit = { broker, nodeID: "b" } as unknown as Transit;
	const subscriptions = [{ cmd: "DISCOVER" }, { cmd: "REQ", nodeID: "b" }, { cmd: "RES", nodeID: "b" }];
	t.init(transit, () => undefined, () => t.makeSubscriptions(subscriptions));
	// What arrives, before Moleculer's serializer: the raw value of each packet.
	(t as unknown as { incomingMessage: (cmd: string, msg: Buffer) => void }).incomingMessage = (cmd, msg) => void received.push(`${cmd} ${msg.toString()}`);
	return t;
}

const until = async (what: () => boolean, ms: number) => {
	for (const end = Date.now() + ms; !what() && Date.now() < end; ) await new Promise(r => setTimeout(r, 50));
};

describe("the region link's Kafka transporter", () => {
	it("delivers packets sent while the node is joining its group, and none sent before it subscribed", async () => {
		await producer.send({ topic: topic("REQ", "b"), messages: [{ value: "before", partition: 0 }] });
		const received: string[] = [];
		const t = transporterOfB(received);
		try {
			const connecting = t.connect();
			// A new group's first join takes 3 s on the test broker: these land while it runs, after the topics'
			// ends were taken (Moleculer sends its DISCOVER right after connecting, and the answers come this way).
			await new Promise(r => setTimeout(r, kafka.mock ? 1500 : 0));
			await producer.send({ topic: topic("RES", "b"), messages: [{ value: "during-1", partition: 0 }] });
			await producer.send({ topic: topic("DISCOVER"), messages: [{ value: "during-2", partition: 0 }] });
			await connecting;
			await producer.send({ topic: topic("REQ", "b"), messages: [{ value: "after", partition: 0 }] });
			await until(() => received.length >= 3, 10_000);
			await new Promise(r => setTimeout(r, 300));
			expect(received.sort()).toEqual(["DISCOVER during-2", "REQ after", "RES during-1"]);
		} finally {
			await t.disconnect();
		}
	}, 30_000);

	it("sends packets to the topics they are for, a node's own and the broadcast ones", async () => {
		const received: string[] = [];
		const b = transporterOfB(received);
		const a = transporterOfB([]);
		try {
			await Promise.all([a.connect(), b.connect()]);
			await a.send(topic("REQ", "b"), Buffer.from("to b"));
			await a.send(topic("DISCOVER"), Buffer.from("to all"));
			await until(() => received.length >= 2, 10_000);
			expect(received.sort()).toEqual(["DISCOVER to all", "REQ to b"]);
		} finally {
			await Promise.all([a.disconnect(), b.disconnect()]);
		}
	}, 30_000);

	it.runIf(!process.env.KAFKA_BROKERS)("delivers again once the broker is back from an outage", async () => {
		const received: string[] = [];
		const b = transporterOfB(received);
		try {
			await b.connect();
			// Longer than a test broker's usual session (3 s): the consumer's heartbeats fail all along.
			await kafka.mock!.down();
			await new Promise(r => setTimeout(r, 5000));
			await kafka.mock!.up();
			await producer.send({ topic: topic("REQ", "b"), messages: [{ value: "back", partition: 0 }] });
			await until(() => received.includes("REQ back"), 15_000);
			expect(received).toEqual(["REQ back"]);
		} finally {
			await b.disconnect();
		}
	}, 40_000);
});
