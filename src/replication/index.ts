// Which event log a region uses, from its configuration.
import type { Config } from "../../config";
import type { EventLog } from "./event-log";
import { KafkaEventLog } from "./kafka-log";
import { MemoryEventLog } from "./memory-log";

/** The regions of one process (the embedded default) share one in-memory log per namespace. */
const shared = new Map<string, MemoryEventLog>();

export interface OwnedLog {
	log: EventLog;
	/** False for a shared log: its owner is the process, not the service. */
	closeOnStop: boolean;
}

export async function eventLogFor(cfg: Config, log?: (level: string, message: string) => void): Promise<OwnedLog | undefined> {
	const r = cfg.replication;
	if (r.mode === "off") return undefined;
	if (r.mode === "memory") {
		let m = shared.get(cfg.namespace);
		if (!m) shared.set(cfg.namespace, (m = new MemoryEventLog()));
		return { log: m, closeOnStop: false };
	}
	return {
		log: new KafkaEventLog({
			brokers: r.kafkaBrokers,
			clientId: `${cfg.namespace}-${cfg.region}-${cfg.nodeID ?? process.pid}`,
			prefix: r.topicPrefix,
			sessionTimeout: r.kafka.sessionTimeoutMs,
			heartbeatInterval: Math.max(100, Math.floor(r.kafka.sessionTimeoutMs / 6)),
			maxWaitTimeInMs: r.kafka.maxWaitMs,
			compressFromBytes: r.kafka.compressFromBytes,
			ssl: r.kafka.ssl,
			sasl: r.kafka.sasl,
			remoteTopic: r.kafka.topology === "mirrored" ? (source, topic) => `${source}.${topic}` : undefined,
			log,
		}),
		closeOnStop: true,
	};
}

/** Consumer group of a region's appliers: every region reads every other region's events in its own group. */
export const applyGroup = (cfg: Config) => `${cfg.replication.topicPrefix}.apply.${cfg.region}`;
