// Brokers built one by one for fault tests: like startRegion (same brokerOptions(testConfig(...)), same
// services), but every node can have its own environment (another DATABASE_URL, a private NATS), its
// own node id, and test-only hooks before it starts. All nodes share one namespace.
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import type { Config } from "../../config";
import { brokerOptions } from "../../moleculer.config";
import { SERVICES, testConfig, type ServiceName } from "./cluster";

export interface NodeSpec {
	nodeID: string;
	services: ServiceName[];
	/** Defaults to the set's databaseUrl. */
	databaseUrl?: string;
	env?: Record<string, string>;
}

export interface NodeSetOptions {
	databaseUrl: string;
	nodes: NodeSpec[];
	namespace?: string;
	/** A NATS of the test's own; without it the shared test NATS (helpers/env.ts) is used. */
	natsUrl?: string;
	redisUrl?: string;
	/** Environment of every node (a node's own env wins). */
	env?: Record<string, string>;
	/** Called for every broker after its services are created, before it starts. */
	beforeStart?: (broker: ServiceBroker, spec: NodeSpec) => void;
}

export interface Node {
	spec: NodeSpec;
	broker: ServiceBroker;
	cfg: Config;
	apiUrl?: string;
	stopped: boolean;
	stop(): Promise<void>;
}

export interface NodeSet {
	namespace: string;
	nodes: Node[];
	node(nodeID: string): Node;
	broker(nodeID: string): ServiceBroker;
	apiUrls: string[];
	/** Stops every node that is still running, each once, even if some fail to stop. */
	stop(): Promise<void>;
}

export function nodeConfig(o: NodeSetOptions, spec: NodeSpec, namespace: string): Config {
	const env = { ...o.env, ...(o.natsUrl ? { NATS_URL: o.natsUrl } : {}), ...spec.env, NODE_ID: spec.nodeID };
	const cfg = testConfig({ databaseUrl: spec.databaseUrl ?? o.databaseUrl, redisUrl: o.redisUrl, nats: true, namespace, env });
	// env is spread last in testConfig, so a private NATS must win over the shared one: check it did.
	if (o.natsUrl && cfg.natsUrl !== o.natsUrl) throw new Error(`NATS_URL override ignored: ${cfg.natsUrl}`);
	return cfg;
}

export async function startNodes(o: NodeSetOptions): Promise<NodeSet> {
	const namespace = o.namespace ?? `t${randomBytes(4).toString("hex")}`;
	const nodes: Node[] = o.nodes.map(spec => {
		const cfg = nodeConfig(o, spec, namespace);
		const broker = new ServiceBroker(brokerOptions(cfg, { nodeID: spec.nodeID, skipProcessEventRegistration: true }));
		for (const s of spec.services) broker.createService(SERVICES[s] as ServiceSchema);
		o.beforeStart?.(broker, spec);
		const node: Node = {
			spec,
			broker,
			cfg,
			stopped: false,
			async stop() {
				if (node.stopped) return;
				node.stopped = true;
				await broker.stop();
			},
		};
		return node;
	});
	const set: NodeSet = {
		namespace,
		nodes,
		node(id) {
			const n = nodes.find(x => x.spec.nodeID === id);
			if (!n) throw new Error(`no node ${id}`);
			return n;
		},
		broker: id => set.node(id).broker,
		apiUrls: [],
		async stop() {
			const results = await Promise.allSettled(nodes.map(n => n.stop()));
			const failed = results.find(r => r.status === "rejected") as PromiseRejectedResult | undefined;
			if (failed) throw failed.reason;
		},
	};
	try {
		await Promise.all(nodes.map(n => n.broker.start()));
		const all = [...new Set(o.nodes.flatMap(s => s.services))];
		await Promise.all(nodes.map(n => n.broker.waitForServices(all, 15_000)));
	} catch (err) {
		await set.stop().catch(() => undefined);
		throw err;
	}
	for (const n of nodes) {
		const api = n.broker.getLocalService("api") as any;
		if (api) n.apiUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
	}
	set.apiUrls = nodes.map(n => n.apiUrl).filter((u): u is string => !!u);
	return set;
}

/** Does `broker` see `service` on node `nodeID`, available? */
export function seesService(broker: ServiceBroker, service: string, nodeID: string): boolean {
	return (broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID?: string }[]).some(
		s => s.name === service && s.nodeID === nodeID,
	);
}

/** The state of one endpoint's circuit breaker in a broker's store ("close", "open", "half_open", …), if any. */
export function breakerState(broker: ServiceBroker, nodeID: string, action: string): string | undefined {
	const store = (broker as any).CircuitBreakerStore as Map<string, { state: string }> | undefined;
	return store?.get(`${nodeID}:${action}`)?.state;
}

/** The sum of a Moleculer metric's values whose labels match `labels` (0 when absent). */
export function metricValue(broker: ServiceBroker, name: string, labels: Record<string, string> = {}): number {
	const metric = broker.metrics.getMetric(name) as any;
	if (!metric) return 0;
	let sum = 0;
	for (const v of metric.snapshot() as { labels: Record<string, unknown>; value: number }[]) {
		if (Object.entries(labels).every(([k, want]) => v.labels[k] === want)) sum += Number(v.value ?? 0);
	}
	return sum;
}
