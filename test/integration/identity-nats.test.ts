// Transporter credentials (docs/security.md): against private nats-servers that require a user and
// password, a token, or an NKey, a node configured with them joins the cluster; a node with wrong or
// missing ones cannot connect, so it never sees, nor is seen by, the others.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import { connect, nkeys } from "nats";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { brokerOptions, natsTransporter } from "../../moleculer.config";
import { testConfig } from "../helpers/cluster";
import { NatsServer } from "../helpers/nats-server";
import { freePort } from "../helpers/redis-server";

const servers: NatsServer[] = [];
const brokers: ServiceBroker[] = [];
let seq = 0;
const dir = mkdtempSync(path.join(os.tmpdir(), "nats-auth-"));

afterEach(async () => {
	await Promise.allSettled(brokers.splice(0).map(b => b.stop()));
	await Promise.allSettled(servers.splice(0).map(s => s.kill()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function natsServer(args: string[]) {
	const server = new NatsServer(await freePort(), args);
	servers.push(server);
	await server.start();
	return server;
}

/** A node configured like any other (brokerOptions), its NATS variables given; it runs a tiny echo service. */
function node(name: string, url: string, env: Record<string, string>) {
	const nodeID = `${name}${++seq}`;
	const cfg = testConfig({
		databaseUrl: "postgres://unused@127.0.0.1:1/unused",
		namespace: "natsauth",
		env: { NATS_URL: url, METRICS_ENABLED: "false", ...env },
	});
	const broker = new ServiceBroker(brokerOptions(cfg, { nodeID, skipProcessEventRegistration: true, transit: { disableReconnect: true } }));
	broker.createService({ name: `echo-${nodeID}`, actions: { hello: () => `hello from ${nodeID}` } });
	brokers.push(broker);
	return { broker, cfg };
}

/** Two nodes with the right credentials call each other. */
async function expectJoins(url: string, env: Record<string, string>) {
	const a = node("a", url, env).broker;
	const b = node("b", url, env).broker;
	let timer: NodeJS.Timeout | undefined;
	const late = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error("the nodes did not connect within 10 s")), 10_000);
	});
	await Promise.race([Promise.all([a.start(), b.start()]), late]).finally(() => clearTimeout(timer));
	await a.waitForServices([`echo-${b.nodeID}`], 10_000);
	expect(await a.call(`echo-${b.nodeID}.hello`)).toBe(`hello from ${b.nodeID}`);
}

/** A node with `env` never connects: the server refuses it, and the others never see it. */
async function expectRefused(url: string, good: Record<string, string>, env: Record<string, string>) {
	const a = node("a", url, good).broker;
	await a.start();
	// The refusal it logs is expected here.
	const { broker: c, cfg } = node("c", url, { ...env, LOG_LEVEL: "fatal" });
	void c.start(); // never resolves: it cannot connect (and, in this test, does not retry)
	// The same options the node uses, tried directly, to see why.
	const o = (natsTransporter(cfg) as unknown as { options: Record<string, unknown> }).options;
	await expect(connect({ ...o, servers: url, reconnect: false })).rejects.toMatchObject({ code: "AUTHORIZATION_VIOLATION" });
	await new Promise(r => setTimeout(r, 1000));
	expect(c.transit!.connected).toBe(false);
	expect(a.registry.nodes.get(c.nodeID)).toBeUndefined();
}

describe("NATS credentials", () => {
	it("user and password: the right ones join, a wrong or missing password cannot", async () => {
		const server = await natsServer(["--user", "wallet", "--pass", "right-password"]);
		const good = { NATS_USER: "wallet", NATS_PASSWORD: "right-password" };
		await expectJoins(server.url, good);
		await expectRefused(server.url, good, { NATS_USER: "wallet", NATS_PASSWORD: "wrong-password" });
		await expectRefused(server.url, good, {});
	});

	it("token: the right one joins, a wrong or missing one cannot", async () => {
		const server = await natsServer(["--auth", "right-token-0123456789"]);
		const good = { NATS_TOKEN: "right-token-0123456789" };
		await expectJoins(server.url, good);
		await expectRefused(server.url, good, { NATS_TOKEN: "wrong-token" });
		await expectRefused(server.url, good, {});
	});

	it("NKey: the registered key joins, another key cannot", async () => {
		const user = nkeys.createUser();
		const conf = path.join(dir, "nkey.conf");
		writeFileSync(conf, `authorization { users = [ { nkey: "${user.getPublicKey()}" } ] }\n`);
		const server = await natsServer(["-c", conf]);
		const good = { NATS_NKEY_SEED: new TextDecoder().decode(user.getSeed()) };
		await expectJoins(server.url, good);
		await expectRefused(server.url, good, { NATS_NKEY_SEED: new TextDecoder().decode(nkeys.createUser().getSeed()) });
	});
});
