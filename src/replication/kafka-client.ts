// How the project makes a kafkajs client (the event log's, src/replication/kafka-log.ts, and the region link's,
// src/regions/kafka-transporter.ts): bounded timeouts, explicit retries, TLS and SASL, and kafkajs's log lines
// sent to the caller's logger instead of stdout.
import { Kafka, logLevel, type RetryOptions, type SASLOptions } from "kafkajs";
// Before any client exists: kafkajs's idle request queues no longer spin on a 1 ms timer.
import "./kafkajs-idle-fix";

export type KafkaLogLevel = "error" | "warn" | "info" | "debug";

export interface KafkaSasl {
	mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
	username: string;
	password: string;
}

export interface KafkaClientOptions {
	brokers: string[];
	clientId: string;
	/** TCP connect timeout, ms. */
	connectionTimeout: number;
	/** Per-request timeout, ms (enforced). */
	requestTimeout: number;
	/** Retries of a failed request (kafkaRetry). */
	retries: number;
	ssl?: boolean;
	sasl?: KafkaSasl;
	/** What reaches `log` (default WARN). */
	logLevel?: logLevel;
	log?: (level: KafkaLogLevel, message: string) => void;
}

const LEVELS: Record<number, KafkaLogLevel> = {
	[logLevel.ERROR]: "error",
	[logLevel.WARN]: "warn",
	[logLevel.INFO]: "info",
	[logLevel.DEBUG]: "debug",
};

/** 100 ms growing to 1 s between tries. Explicit, because kafkajs swaps in other defaults when NODE_ENV=test. */
export const kafkaRetry = (retries: number): RetryOptions => ({ initialRetryTime: 100, maxRetryTime: 1_000, multiplier: 2, factor: 0.2, retries });

export function kafkaClient(o: KafkaClientOptions): Kafka {
	const log = o.log;
	return new Kafka({
		brokers: o.brokers,
		clientId: o.clientId,
		connectionTimeout: o.connectionTimeout,
		requestTimeout: o.requestTimeout,
		enforceRequestTimeout: true,
		...(o.ssl ? { ssl: true } : {}),
		...(o.sasl ? { sasl: o.sasl as SASLOptions } : {}),
		retry: kafkaRetry(o.retries),
		logLevel: o.logLevel ?? logLevel.WARN,
		logCreator:
			() =>
			({ namespace, level, log: { message, error } }) =>
				log?.(LEVELS[level] ?? "debug", `kafkajs ${namespace}: ${message}${error ? ` (${String(error)})` : ""}`),
	});
}
