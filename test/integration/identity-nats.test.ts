// Transporter credentials (docs/security.md): against private nats-servers that require a user and
// password, a token, or an NKey, a node configured with them joins the cluster; a node with wrong or
// missing ones cannot connect, so it never sees, nor is seen by, the others.
import { execFileSync } from "node:child_process";
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

/** A node with `env` never connects: the server refuses it (`why`), and the others never see it. */
async function expectRefused(url: string, good: Record<string, string>, env: Record<string, string>, why: object = { code: "AUTHORIZATION_VIOLATION" }) {
	const a = node("a", url, good).broker;
	await a.start();
	// The refusal it logs is expected here.
	const { broker: c, cfg } = node("c", url, { ...env, LOG_LEVEL: "fatal" });
	void c.start(); // never resolves: it cannot connect (and, in this test, does not retry)
	// The same options the node uses, tried directly, to see why.
	const o = (natsTransporter(cfg) as unknown as { options: Record<string, unknown> }).options;
	await expect(connect({ ...o, servers: url, reconnect: false })).rejects.toMatchObject(why);
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

/** A CA, a server certificate for 127.0.0.1 (nats.js checks it as "localhost") and a client certificate, made now (EC P-256, valid a day). */
function certificates() {
	const f = (name: string) => path.join(dir, name);
	const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
	const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
	openssl("req", "-x509", ...key, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "1", "-subj", "/CN=test-ca");
	for (const [name, ext] of [
		["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"],
		["client", "extendedKeyUsage=clientAuth"],
	]) {
		writeFileSync(f(`${name}.ext`), `${ext}\n`);
		openssl("req", ...key, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", `/CN=${name}`);
		openssl("x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial",
			"-out", f(`${name}.pem`), "-days", "1", "-extfile", f(`${name}.ext`));
	}
	return { ca: f("ca.pem"), serverCert: f("server.pem"), serverKey: f("server.key"), clientCert: f("client.pem"), clientKey: f("client.key") };
}

describe("NATS over TLS", () => {
	it("mutual TLS: a node with the CA and a client certificate joins; one without a certificate cannot", async () => {
		const c = certificates();
		const server = await natsServer(["--tls", "--tlscert", c.serverCert, "--tlskey", c.serverKey, "--tlsverify", "--tlscacert", c.ca]);
		const good = { NATS_TLS_CA: c.ca, NATS_TLS_CERT: c.clientCert, NATS_TLS_KEY: c.clientKey };
		await expectJoins(server.url, good);
		// The server refuses a client without a certificate (TLS alert 42, bad certificate; with TLS 1.3 the client may
		// see only the reset that follows the alert).
		await expectRefused(server.url, good, { NATS_TLS_CA: c.ca }, { message: expect.stringMatching(/bad certificate|ECONNRESET/) });
		// Without NATS_TLS_*, nats.js still upgrades (the server requires TLS) but cannot trust its certificate.
		await expectRefused(server.url, good, {}, { message: expect.stringMatching(/unable to verify/) });
	});
});
