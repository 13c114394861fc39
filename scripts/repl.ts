// npm run repl: a REPL node that joins the running cluster over NATS_URL and can call every action.
// Act as a user with a token:  call supply.list --#token <jwt>
// With the embedded default (no NATS) the cluster is one process: use `npm start -- --repl` instead.
import { ServiceBroker } from "moleculer";
import { loadConfig } from "../config";
import { brokerOptions } from "../moleculer.config";

async function main() {
	const cfg = loadConfig();
	if (!cfg.natsUrl) {
		console.error("NATS_URL is not set: the embedded system runs in one process. Use `npm start -- --repl`.");
		process.exit(2);
	}
	const broker = new ServiceBroker(brokerOptions({ ...cfg, logLevel: "warn" }, { nodeID: `repl-${process.pid}` }));
	await broker.start();
	broker.repl();
}

main().catch(err => {
	console.error(err.message);
	process.exit(1);
});
