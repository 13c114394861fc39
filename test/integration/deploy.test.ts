// The manifests run for real: the migrations Job's command and each role's Deployment, as `kubectl kustomize`
// builds them (environment from the ConfigMaps, SERVICES, the image's start command), on this machine's
// PostgreSQL and Redis. Only what points at Google Cloud is swapped for the local servers, and the ports
// for free ones. NATS is a private nats-server with the manifests' nats.conf (one server, no routes), so it
// requires the token as in a cluster. Kafka is the one thing with no local substitute: the region's Kafka
// (KAFKA_BROKERS) and the link's (LINK_KAFKA_BROKERS, one region's Kafka in every overlay) are Google Cloud
// addresses behind TLS and SASL, and this machine has no such Kafka. So the replication role runs with the
// in-process event log, REPLICATION=memory (the relay and the applier still run for real on the database), and
// with LINK=off: this is one region alone, with no other region to call, so its link service starts no global
// broker (an in-process link, LINK=memory, would only pretend the other regions share this process). The role
// still loads services/link.service.ts with the rest of its SERVICES, and its Kafka credentials still go through
// the configuration's checks. The probes must pass at the manifests' paths, a claim must cross the roles and its
// events leave the outbox, and SIGTERM must stop every role inside the time the kubelet gives it.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item } from "../helpers/http";
import { NATS_SERVER_BIN } from "../helpers/nats-server";
import { freePort } from "../helpers/ports";
import { killProcess } from "../helpers/process";

const ROOT = path.resolve(__dirname, "..", "..");
const OVERLAY = path.join(ROOT, "k8s", "overlays", "us-central1");
const SECRET = "deploy-test-secret-of-at-least-32-characters";
// What the ExternalSecret would copy into wallet-secrets, by key. The NATS token is made as docs/deploy.md
// says ("nats" + hex): nats.conf reads it through an environment variable, which nats-server parses as config
// text, so a value that starts with a digit can read as a number or fail to parse.
const SECRETS: Record<string, string> = {
	JWT_SECRET: SECRET,
	INTERNAL_SECRET: "deploy-test-internal-secret-not-the-jwt-one",
	NATS_TOKEN: `nats${randomBytes(32).toString("hex")}`,
	REDIS_URL,
	// Only the replication role takes it; nothing here connects to Kafka (above).
	KAFKA_SASL_PASSWORD: "deploy-test-stand-in-kafka-key",
};
const hasKubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
if (!hasKubectl) console.warn("deploy integration: kubectl is not installed; skipping (the manifests cannot be built)");

type Obj = { kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string> };
type Role = { name: string; obj: Obj; env: Record<string, string>; ports: Record<string, number>; proc?: ChildProcess; output: string };

function build(): Obj[] {
	const r = spawnSync("kubectl", ["kustomize", OVERLAY], { encoding: "utf8", maxBuffer: 64 << 20 });
	if (r.status !== 0) throw new Error(r.stderr);
	return parseAllDocuments(r.stdout).map(d => d.toJS());
}

/** The container's environment from the manifests, with the cloud endpoints and secrets replaced by local ones. */
async function environment(c: any, objs: Obj[], local: Record<string, string>): Promise<Record<string, string>> {
	const env: Record<string, string> = {};
	for (const from of c.envFrom ?? []) Object.assign(env, objs.find(o => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef.name)!.data);
	for (const e of c.env ?? []) {
		if (e.value !== undefined) env[e.name] = e.value;
		else if (e.valueFrom?.fieldRef) env[e.name] = `${c.name}-${randomBytes(3).toString("hex")}`;
		else if (e.valueFrom?.secretKeyRef) env[e.name] = SECRETS[e.valueFrom.secretKeyRef.key] ?? "";
		else if (e.valueFrom?.configMapKeyRef) {
			const { name, key } = e.valueFrom.configMapKeyRef;
			env[e.name] = objs.find(o => o.kind === "ConfigMap" && o.metadata.name === name)?.data?.[key] ?? "";
		}
	}
	return { ...env, ...local, PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" };
}

function run(command: string[], env: Record<string, string>): { proc: ChildProcess; output: () => string } {
	// "node" is the image's node: here, the one running the tests (the project's pinned Node 22).
	const proc = spawn(process.execPath, command.slice(1), { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
	let out = "";
	const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
	proc.stdout!.on("data", keep);
	proc.stderr!.on("data", keep);
	const reap = () => proc.kill("SIGKILL");
	process.once("exit", reap);
	proc.once("exit", () => process.removeListener("exit", reap));
	return { proc, output: () => out };
}

const exited = (p: ChildProcess, ms: number) =>
	new Promise<{ code: number | null; signal: string | null } | null>(resolve => {
		if (p.exitCode !== null || p.signalCode !== null) return resolve({ code: p.exitCode, signal: p.signalCode });
		const t = setTimeout(() => resolve(null), ms);
		p.once("exit", (code, signal) => {
			clearTimeout(t);
			resolve({ code, signal });
		});
	});

/** One probe as the kubelet runs it: an HTTP GET (200 passes) or a command in the container (exit 0 passes). */
async function probeOnce(role: Role, probe: any): Promise<boolean> {
	if (probe.httpGet) {
		const port = role.ports[probe.httpGet.port];
		return fetch(`http://127.0.0.1:${port}${probe.httpGet.path}`).then(r => r.status === 200, () => false);
	}
	const [, ...args] = probe.exec.command;
	return new Promise(resolve => execFile(process.execPath, args, { env: role.env, timeout: probe.timeoutSeconds * 1000 }, err => resolve(!err)));
}

/** Probes until one passes, for as long as the budget (the startup probe's periodSeconds × failureThreshold). */
async function waitProbe(role: Role, probe: any, budgetMs: number): Promise<boolean> {
	const until = Date.now() + budgetMs;
	while (Date.now() < until) {
		if (role.proc!.exitCode !== null) throw new Error(`${role.name} exited:\n${role.output}`);
		if (await probeOnce(role, probe)) return true;
		await new Promise(r => setTimeout(r, 200));
	}
	return false;
}

/** The region's NATS as nats.yaml runs it: its nats.conf and its container's environment, alone on free ports. */
async function startNats(objs: Obj[], dir: string): Promise<{ url: string; proc: ChildProcess }> {
	const conf = objs.find(o => o.kind === "ConfigMap" && o.metadata.name === "nats-config")!.data!["nats.conf"];
	const local = conf.replace(/^pid_file: .*$/m, `pid_file: "${path.join(dir, "nats.pid")}"`).replace(/^cluster \{[\s\S]*?^\}\n?/m, "");
	expect(local, "the cluster block was not found to drop").not.toMatch(/^cluster/m);
	fs.writeFileSync(path.join(dir, "nats.conf"), local);
	const sts = objs.find(o => o.kind === "StatefulSet" && o.metadata.name === "nats")!;
	const c = sts.spec.template.spec.containers[0];
	const env = await environment(c, objs, {});
	const [port, monitor] = [await freePort(), await freePort()];
	const proc = spawn(NATS_SERVER_BIN, ["--config", path.join(dir, "nats.conf"), "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)], {
		env,
		stdio: ["ignore", "pipe", "pipe"],
	});
	const reap = () => proc.kill("SIGKILL");
	process.once("exit", reap);
	proc.once("exit", () => process.removeListener("exit", reap));
	let log = "";
	await new Promise<void>((resolve, reject) => {
		const onData = (d: Buffer) => {
			log += d.toString();
			if (log.includes("Server is ready")) resolve();
		};
		proc.stdout!.on("data", onData);
		proc.stderr!.on("data", onData);
		proc.once("exit", code => reject(new Error(`nats-server exited with ${code}:\n${log}`)));
		setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 10_000);
	});
	return { url: `nats://127.0.0.1:${port}`, proc };
}

const start = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts.start.match(/'[^']*'|\S+/g).map((w: string) => w.replace(/^'(.*)'$/, "$1"));

describe.skipIf(!hasKubectl)("the k8s manifests, run on this machine", () => {
	let objs: Obj[];
	let db: TestDatabase;
	const roles: Role[] = [];
	let namespace: string;
	let nats: { url: string; proc: ChildProcess };
	let tmp: string;

	beforeAll(async () => {
		objs = build();
		tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-deploy-"));
		nats = await startNats(objs, tmp);
		db = await createTestDatabase();
		namespace = `d${randomBytes(4).toString("hex")}`;
	});

	afterAll(async () => {
		await Promise.all(roles.map(r => killProcess(r.proc)));
		await killProcess(nats?.proc);
		await db?.drop();
		if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
	});

	const local = async (extra: Record<string, string> = {}) => ({
		DATABASE_URL: db.url,
		NATS_URL: nats.url,
		NAMESPACE: namespace,
		// The region's Kafka, swapped for the in-process log, and no region link (above): nothing here reaches
		// KAFKA_BROKERS or LINK_KAFKA_BROKERS.
		REPLICATION: "memory",
		KAFKA_BROKERS: "",
		LINK: "off",
		LINK_KAFKA_BROKERS: "",
		// With no other region to ping, failover has no majority to ask: the region role starts and stays idle.
		FAILOVER: "off",
		...extra,
	});

	it("the region's NATS refuses a client without the token the wallet pods get", async () => {
		const refused = (opts: object) => connect({ servers: nats.url, reconnect: false, ...opts }).then(nc => nc.close().then(() => "connected"), (err: Error) => err.message);
		expect(await refused({})).toMatch(/authorization/i);
		expect(await refused({ token: "not-the-token" })).toMatch(/authorization/i);
		expect(await refused({ token: SECRETS.NATS_TOKEN })).toBe("connected");
	});

	it("the migrations Job's command applies the schema with the Job's environment", async () => {
		const job = objs.find(o => o.kind === "Job")!;
		const c = job.spec.template.spec.containers[0];
		const { proc, output } = run(c.command, await environment(c, objs, await local()));
		const done = await exited(proc, job.spec.activeDeadlineSeconds * 1000);
		expect(done, output()).toEqual({ code: 0, signal: null });
		const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pgmigrations");
		expect(rows[0].n).toBeGreaterThan(0);
	}, 120_000);

	it("starts every role with its Deployment's environment, and each passes its startup, readiness and liveness probes", async () => {
		for (const d of objs.filter(o => o.kind === "Deployment")) {
			const c = d.spec.template.spec.containers[0];
			const ports: Record<string, number> = {};
			for (const p of c.ports) ports[p.name] = await freePort();
			const env = await environment(c, objs, await local({ PORT: String(ports.http ?? 0), METRICS_PORT: String(ports.metrics), RATE_LIMIT: "100000" }));
			// The image's CMD is the start script (test/unit/deploy-docker.test.ts); the Deployments set none.
			expect(c.command).toBeUndefined();
			const { proc, output } = run(start, env);
			const role: Role = { name: d.metadata.name, obj: d, env, ports, proc, output: "" };
			Object.defineProperty(role, "output", { get: output });
			roles.push(role);
		}
		expect(roles.map(r => r.name).sort()).toEqual(["wallet-claiming", "wallet-core", "wallet-gateway", "wallet-region", "wallet-replication"]);
		for (const r of roles) {
			const c = r.obj.spec.template.spec.containers[0];
			const budget = c.startupProbe.periodSeconds * c.startupProbe.failureThreshold * 1000;
			expect(await waitProbe(r, c.startupProbe, budget), `${r.name} startup\n${r.output}`).toBe(true);
			expect(await waitProbe(r, c.readinessProbe, budget), `${r.name} readiness\n${r.output}`).toBe(true);
			expect(await probeOnce(r, c.livenessProbe), `${r.name} liveness`).toBe(true);
		}
		// The replication role is also the region's link: its link service started (with LINK=off it opens no global
		// broker), and its Kafka settings are the manifests' (TLS, SASL/PLAIN as the region's kafka service account).
		const replication = roles.find(r => r.name === "wallet-replication")!;
		expect(replication.output, "the link service did not start in the replication role").toMatch(/Service 'link' started/);
		const kafka = loadConfig(replication.env).replication.kafka;
		expect(kafka.ssl).toBe(true);
		expect(kafka.sasl).toEqual({ mechanism: "plain", username: expect.stringMatching(/^wallet-kafka-us-central1@/), password: SECRETS.KAFKA_SASL_PASSWORD });
	}, 180_000);

	it("serves a claim across the roles, with tokens of the configured issuer and audience", async () => {
		const gateway = roles.find(r => r.name === "wallet-gateway")!;
		const jwt = loadConfig(gateway.env).jwt;
		const scopes = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];
		const api = `http://127.0.0.1:${gateway.ports.http}`;
		const shopper = new Client(api, await signToken(jwt, "alice", scopes));
		const buyer = new Client(api, await signToken(jwt, "bob", scopes));
		// Every role is ready; the gateway learns of the others from their announcements over NATS.
		for (const until = Date.now() + 10_000; Date.now() < until; await new Promise(r => setTimeout(r, 100)))
			if ((await shopper.get("/api/v1/supplies")).status === 200 && (await shopper.get("/api/v1/claims")).status === 200) break;
		const s = await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(s.status, JSON.stringify(s.body)).toBe(201);
		const o = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.25", 2)] });
		expect(o.status, JSON.stringify(o.body)).toBe(201);
		const c = await shopper.post("/api/v1/claims", { orderId: o.body.id, supplyId: s.body.id }, { "Idempotency-Key": "deploy-1" });
		expect(c.status, JSON.stringify(c.body)).toBe(201);
		expect(c.headers.get("x-region")).toBe(gateway.env.REGION);
		// The replication role's relay publishes what the claim wrote to the outbox.
		const unpublished = async () => (await db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL")).rows[0].n;
		for (const until = Date.now() + 10_000; Date.now() < until && (await unpublished()) > 0; ) await new Promise(r => setTimeout(r, 100));
		const { rows } = await db.pool.query("SELECT count(*)::int AS all, count(published_at)::int AS published FROM outbox");
		expect(rows[0].all, "the claim wrote no outbox events").toBeGreaterThan(0);
		expect(rows[0].published, "the relay left outbox events unpublished").toBe(rows[0].all);
	}, 60_000);

	it("stops every role on SIGTERM, by itself, within the grace period the kubelet allows after preStop", async () => {
		expect(roles).toHaveLength(5);
		await Promise.all(
			roles.map(async r => {
				const spec = r.obj.spec.template.spec;
				const allowed = (spec.terminationGracePeriodSeconds - spec.containers[0].lifecycle.preStop.sleep.seconds) * 1000;
				r.proc!.kill("SIGTERM");
				const done = await exited(r.proc!, allowed);
				expect(done, `${r.name} still running ${allowed} ms after SIGTERM: the kubelet would SIGKILL it\n${r.output}`).not.toBeNull();
				expect(done!.signal, r.name).toBeNull();
			}),
		);
	}, 60_000);
});
