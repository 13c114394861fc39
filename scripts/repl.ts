// npm run repl: a REPL node that joins the running cluster over NATS_URL and can call every action.
// It holds no keys and is trusted with nothing: it acts as a user through a token, verified by the
// services like the gateway verifies one:  call supply.list --#token <jwt>
// Internal actions (claiming.command, *.find) refuse it, as they refuse any peer that is not a service.
// With the embedded default (no NATS) the cluster is one process: use `npm start -- --repl` instead.
import { randomBytes } from "node:crypto";
import { ServiceBroker } from "moleculer";
import { loadConfig } from "../config";

async function main() {
	// Keys only matter to a node that verifies or signs; the REPL runs no service, so throwaway ones
	// satisfy the configuration rule without handing the operator the cluster's secrets.
	const throwaway = () => randomBytes(32).toString("base64url");
	const env = process.env;
	if (!env.JWT_SECRET && !env.JWT_JWKS_URL) env.JWT_SECRET = throwaway();
	if (!env.INTERNAL_SECRET) env.INTERNAL_SECRET = throwaway();
	const cfg = loadConfig(env);
	// Imported only now: its default export reads the configuration from the environment when loaded.
	const { brokerOptions } = await import("../moleculer.config.js");
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
