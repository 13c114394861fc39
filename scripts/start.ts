// `npm start`. With no configuration (the embedded default) and several REGIONS, every region runs in this
// one process: one broker per region (in-process transport), one database per region in the embedded
// PostgreSQL, memory caches, and the in-memory event log and region link between them (docs/multi-region.md).
// Region i's API listens on PORT + i and its metrics on METRICS_PORT + i. Anything else (a real server
// configured, REGION set, or one region) is one broker started by moleculer-runner, as production runs it.
import { Runner, ServiceBroker } from "moleculer";
import { loadConfig } from "../config";
import { brokerOptions } from "../moleculer.config";

const args = process.argv.slice(2);
const base = loadConfig();

if (!(base.embedded && base.regions.length > 1 && !process.env.REGION)) {
	new Runner().start([process.argv[0], "moleculer-runner", "--config", "moleculer.config.ts", "--mask", "**/*.service.ts", "services", ...args]);
} else {
	void startRegions();
}

async function startRegions() {
	const brokers = base.regions.map((region, i) => {
		const cfg = loadConfig({
			...process.env,
			REGION: region,
			EMBEDDED_DATABASE: `wallet_${region.replace(/[^a-z0-9]/g, "_")}`,
			PORT: String(base.port + i),
			METRICS_PORT: String(base.metrics.port ? base.metrics.port + i : 0),
		});
		const broker = new ServiceBroker(brokerOptions(cfg, { nodeID: `${region}-${process.pid}`, skipProcessEventRegistration: true }));
		const only = process.env.SERVICES?.split(",").map(s => s.trim()).filter(Boolean);
		if (only?.length) for (const file of only) broker.loadService(file);
		else broker.loadServices("services", "**/*.service.ts");
		return { region, cfg, broker };
	});
	let stopping = false;
	const stop = async (signal: string) => {
		if (stopping) return;
		stopping = true;
		brokers[0].broker.logger.info(`${signal}: stopping ${brokers.length} regions`);
		await Promise.allSettled(brokers.map(b => b.broker.stop()));
		process.exit(0);
	};
	process.on("SIGINT", () => void stop("SIGINT"));
	process.on("SIGTERM", () => void stop("SIGTERM"));
	try {
		// One after the other: the first starts the embedded PostgreSQL the others share.
		for (const b of brokers) await b.broker.start();
	} catch (err) {
		console.error(`Start failed: ${(err as Error).message}`);
		await Promise.allSettled(brokers.map(b => b.broker.stop()));
		process.exit(1);
	}
	const lines = brokers.map(b => `  ${b.region.padEnd(14)} API http://${b.cfg.host}:${b.cfg.port}/api/v1   metrics :${b.cfg.metrics.port}`);
	brokers[0].broker.logger.info(`${brokers.length} regions running in this process:\n${lines.join("\n")}`);
	if (args.includes("--repl") || args.includes("-r")) brokers[0].broker.repl();
}
