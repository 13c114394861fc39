// kafkajs 2.2.4's request queues re-arm a 1 ms timer forever once a response has arrived
// (src/replication/kafkajs-idle-fix.ts). Against the Kafka test broker (or KAFKA_BROKERS): an idle client runs no
// such timer, and requests that queue behind the in-flight limit are all still sent.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Producer } from "kafkajs";
import { kafkaClient } from "../../src/replication/kafka-client";
const KafkaRequestQueue = require("kafkajs/src/network/requestQueue/index.js");
import { kafkaForTests, type TestKafka } from "../../src/replication/kafka-mock";

let kafka: TestKafka;
let topic: string;
beforeAll(async () => {
	kafka = await kafkaForTests();
	topic = `idle-${randomUUID().slice(0, 8)}`;
	await kafka.createTopics([{ name: topic, partitions: 1 }]);
});
afterAll(() => kafka?.stop());

/** How many times the request queues checked their pending requests during `ms`. */
async function checksDuring(ms: number): Promise<number> {
	const proto = KafkaRequestQueue.prototype;
	const original = proto.checkPendingRequests;
	let n = 0;
	proto.checkPendingRequests = function (this: typeof proto) {
		n++;
		return original.call(this);
	};
	try {
		await new Promise(r => setTimeout(r, ms));
	} finally {
		proto.checkPendingRequests = original;
	}
	return n;
}

const producerOn = (maxInFlightRequests?: number): Producer =>
	kafkaClient({ brokers: kafka.brokers, clientId: "idle-fix", connectionTimeout: 3_000, requestTimeout: 10_000, retries: 2 }).producer({
		allowAutoTopicCreation: false,
		...(maxInFlightRequests ? { maxInFlightRequests } : {}),
	});

describe("kafkajs's request queue", () => {
	it("runs no timer while a connected client is idle", async () => {
		const producer = producerOn();
		await producer.connect();
		try {
			await producer.send({ topic, messages: [{ value: "one" }] });
			// Without the fix: a check every millisecond or so on each of the producer's connections.
			expect(await checksDuring(300)).toBe(0);
		} finally {
			await producer.disconnect();
		}
	});

	it("still sends every request that waited behind the in-flight limit", async () => {
		const producer = producerOn(1);
		await producer.connect();
		try {
			const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send({ topic, acks: 1, messages: [{ value: `m${i}` }] })));
			expect(sent.flat().every(r => r.errorCode === 0)).toBe(true);
			expect(sent).toHaveLength(20);
		} finally {
			await producer.disconnect();
		}
	});
});
