// `npm run cluster -- <command>`: a local multi-region cluster on real parts, as separate processes, for people,
// tests, drills and benchmarks. Per region: a nats-server of its own, a database on the local PostgreSQL, a Redis
// key space (the cacher's prefix carries the region), and several Moleculer nodes (`npm start` with the
// region's environment); a redis-server per region unless CLUSTER_REDIS_URL names one to share. Between regions: the Kafka test broker (librdkafka's mock, or KAFKA_BROKERS) carries
// the events and the region link. State (pids, ports, secrets, logs) lives in CLUSTER_DIR (default `.cluster/`).
//
//   up [--regions N] [--nodes M] [--failover] [--durability local|replicated] [--watchers K] [--partitions P]
//                                  --watchers: the region role (failover) on K nodes of its own, one active
//                                  --partitions: of each region's event topic on the test broker (default 4)
//                                  start everything; prints each region's API and metrics ports once all are ready
//   status                         JSON: regions, nodes, pids, URLs, health
//   kill REGION                    SIGKILL every process of the region (its nodes, its NATS and its Redis)
//   start REGION                   start what is dead of a region again (after kill, kill-node), same settings
//   kill-node NODE                 SIGKILL one node (e.g. asia-east1-n1)
//   postgres|nats|redis down|up REGION
//                                  one region's PostgreSQL database refuses connections (its sessions ended) /
//                                  accepts them; its nats-server or redis-server SIGKILLed / started again
//   partition REGION               cut the region off from Kafka (events and link) while it serves its own clients
//   heal [REGION]                  undo partition (of every region without REGION)
//   kafka down|up                  the Kafka test broker drops and refuses every connection / accepts them again
//   down [--keep-databases]        stop everything and drop the cluster's databases (or keep them, to read)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import pg from "pg";
import { cut, heal as healCuts, inCgroup, regionCgroup, removeCgroup } from "./partition";

const ROOT = path.resolve(__dirname, "..");
const DIR = path.resolve(process.env.CLUSTER_DIR ?? path.join(ROOT, ".cluster"));
const STATE = path.join(DIR, "state.json");
const PG_ADMIN = process.env.CLUSTER_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** One Redis for every region (key spaces apart); unset: each region its own redis-server, as deployed. */
const SHARED_REDIS = process.env.CLUSTER_REDIS_URL;
const ALL_REGIONS = ["us-central1", "europe-west1", "asia-east1", "us-east1", "europe-north1"];
// Several clusters may run side by side (tests): each its own namespace (NATS subjects, Redis keys, Kafka topics)
// and databases.
const NAMESPACE = process.env.CLUSTER_NAME ?? "wallet";
if (!/^[a-z][a-z0-9]{0,20}$/.test(NAMESPACE)) throw new Error("CLUSTER_NAME must be lower-case letters and digits");

interface NodeState {
	name: string;
	nodeID: string;
	services: string[];
	apiPort?: number;
	metricsPort: number;
	pid?: number;
}

interface RegionState {
	name: string;
	natsPort: number;
	natsPid?: number;
	/** Its own redis-server (absent with CLUSTER_REDIS_URL). */
	redisPort?: number;
	redisPid?: number;
	database: string;
	apiUrl: string;
	nodes: NodeState[];
	/** The cgroup its nodes run in (what `partition` cuts off); undefined where cgroups cannot be made. */
	cgroup?: string;
	partitioned?: boolean;
}

interface State {
	dir: string;
	/** FAILOVER and CLAIM_DURABILITY of every node (`up --failover [--durability ...]`). */
	failover?: { enabled: boolean; durability: "local" | "replicated" };
	kafka: { bootstrap: string[]; holderPid?: number; external: boolean; /** Of each region's event topic (test broker). */ partitions?: number };
	secrets: { jwt: string; internal: string };
	regions: RegionState[];
}

const log = (m: string) => process.stderr.write(`${m}\n`);
const read = (): State => {
	if (!fs.existsSync(STATE)) throw new Error(`No cluster in ${DIR}: run \`npm run cluster -- up\` first`);
	return JSON.parse(fs.readFileSync(STATE, "utf8"));
};
const write = (s: State) => fs.writeFileSync(STATE, JSON.stringify(s, null, 2));
const alive = (pid?: number) => {
	if (!pid) return false;
	try {
		process.kill(pid, 0);
	} catch {
		return false;
	}
	// A killed process whose parent is gone may linger as a zombie until it is reaped: dead all the same.
	try {
		return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
	} catch {
		return true;
	}
};
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Until something accepts connections on 127.0.0.1:port (at most `ms`): a region's NATS and Redis, before its nodes. */
async function listening(port: number, ms = 3000) {
	for (const until = Date.now() + ms; Date.now() < until; await sleep(10)) {
		const open = await new Promise<boolean>(resolve => {
			const socket = net.connect(port, "127.0.0.1", () => (socket.destroy(), resolve(true)));
			socket.on("error", () => resolve(false));
		});
		if (open) return;
	}
}
const serversUp = (rs: RegionState[]) => Promise.all(rs.flatMap(r => [listening(r.natsPort), ...(r.redisPort ? [listening(r.redisPort)] : [])]));
const option = (name: string, def: string) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? (process.argv[i + 1] ?? def) : def;
};
const flag = (name: string, def: number) => {
	const i = process.argv.indexOf(`--${name}`);
	const v = i > 0 ? Number(process.argv[i + 1]) : def;
	if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
	return v;
};

/** A process that outlives this command: its own session, output to a log file. */
function detached(name: string, cmd: string, args: string[], env: Record<string, string> = {}): number {
	fs.mkdirSync(path.join(DIR, "logs"), { recursive: true });
	const out = fs.openSync(path.join(DIR, "logs", `${name}.log`), "a");
	const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", out, out], detached: true });
	child.unref();
	return child.pid!;
}

function nodeEnv(s: State, r: RegionState, n: NodeState): Record<string, string> {
	return {
		NODE_ENV: "development",
		LOG_FORMAT: "json",
		LOG_LEVEL: process.env.CLUSTER_LOG_LEVEL ?? "info",
		NAMESPACE,
		REGION: r.name,
		REGIONS: s.regions.map(x => x.name).join(","),
		NODE_ID: n.nodeID,
		SERVICES: n.services.map(x => `services/${x}.service.ts`).join(","),
		DATABASE_URL: dbUrl(r.database),
		NATS_URL: `nats://127.0.0.1:${r.natsPort}`,
		REDIS_URL: r.redisPort ? `redis://127.0.0.1:${r.redisPort}` : SHARED_REDIS!,
		JWT_SECRET: s.secrets.jwt,
		INTERNAL_SECRET: s.secrets.internal,
		KAFKA_BROKERS: s.kafka.bootstrap.join(","),
		// The test broker answers an empty fetch only after the whole wait, and rebalances slowly (kafka-mock.md).
		KAFKA_SESSION_TIMEOUT_MS: s.kafka.external ? "10000" : "3000",
		KAFKA_MAX_WAIT_MS: s.kafka.external ? "100" : "10",
		REPLICATION: "kafka",
		LINK: "kafka",
		LINK_MAX_WAIT_MS: s.kafka.external ? "100" : "5",
		// Six node processes starting at once on a small machine can delay a heartbeat past the default 3 s.
		LINK_HEARTBEAT_TIMEOUT_SEC: "6",
		FAILOVER: s.failover?.enabled ? "on" : "off",
		CLAIM_DURABILITY: s.failover?.durability ?? "local",
		PORT: String(n.apiPort ?? 0),
		METRICS_PORT: String(n.metricsPort),
		// More settings for every node, as a JSON object (tests and drills: failpoints, shorter timers).
		...(process.env.CLUSTER_NODE_ENV ? (JSON.parse(process.env.CLUSTER_NODE_ENV) as Record<string, string>) : {}),
	};
}

function dbUrl(database: string) {
	const u = new URL(PG_ADMIN);
	u.pathname = `/${database}`;
	return u.toString();
}

/** One connection for `fn`: to the server's admin database, or to `url` (a region's database). */
async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = PG_ADMIN, connectionTimeoutMillis?: number): Promise<T> {
	const c = new pg.Client({ connectionString: url, connectionTimeoutMillis });
	await c.connect();
	try {
		return await fn(c);
	} finally {
		await c.end();
	}
}

function startNats(r: RegionState) {
	r.natsPid = detached(`${r.name}-nats`, process.env.NATS_SERVER_BIN ?? "/usr/sbin/nats-server", ["-a", "127.0.0.1", "-p", String(r.natsPort)]);
}

function startRedis(r: RegionState) {
	if (!r.redisPort) return;
	r.redisPid = detached(`${r.name}-redis`, process.env.REDIS_SERVER_BIN ?? "redis-server", [
		"--port", String(r.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
	]);
}

/** Starts the nodes of the region that are not running. */
function startNodes(s: State, r: RegionState) {
	for (const n of r.nodes.filter(x => !alive(x.pid))) n.pid = detached(n.name, ...inCgroup(r.cgroup, process.execPath, ["--max-semi-space-size=64", "--import", "tsx", "scripts/start.ts"]), nodeEnv(s, r, n));
}

type RegionsView = { failover?: boolean; regions: { name: string; health: string; leaseRemainingMs?: number | null }[] };

/** Ready to serve, and linked: every other region's link answers (the region link joins Kafka after start). */
async function ready(s: State, r: RegionState, timeoutMs = 180_000) {
	const until = Date.now() + timeoutMs;
	// Imported here, once the region's nodes are on their way: a region's `start` (a drill's fail-back clock runs)
	// spawns them without loading the config, jose and Moleculer's errors first (≈ 0.4 s of an idle core).
	const { loadConfig } = require("../config") as typeof import("../config");
	const { signToken } = require("../src/lib/jwt") as typeof import("../src/lib/jwt");
	const token = await signToken(loadConfig({ JWT_SECRET: s.secrets.jwt, NODE_ENV: "test" }).jwt, "cluster", ["order:read", "claim:read"]);
	const api = (p: string) =>
		fetch(`${r.apiUrl}${p}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) }).catch(() => undefined);
	for (;;) {
		const ok = await fetch(`${r.apiUrl.replace("/api/v1", "")}/health/ready`, { signal: AbortSignal.timeout(2000) })
			.then(x => x.status === 200)
			.catch(() => false);
		const linked =
			ok &&
			(await fetch(`${r.apiUrl}/regions`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) })
				.then(x => x.json() as Promise<RegionsView>)
				.then(
					(b: RegionsView) =>
						b.regions.every(x => x.health === "up" || !s.regions.some(y => y.name === x.name && alive(y.nodes[0].pid))) &&
						// With failover, the region writes once a majority granted it a lease on its own entities.
						(!b.failover || (b.regions.find(x => x.name === r.name)?.leaseRemainingMs ?? 0) > 0),
				)
				.catch(() => false));
		// The order actor's nodes have joined the gateway's view too (a claims list reaches the claiming service).
		if (linked && (await api("/claims"))?.status === 200) return;
		const dead = r.nodes.find(n => !alive(n.pid));
		if (dead) throw new Error(`${dead.name} exited: see ${path.join(DIR, "logs", `${dead.name}.log`)}`);
		if (Date.now() > until) throw new Error(`${r.name} was not ready in ${timeoutMs} ms (logs in ${path.join(DIR, "logs")})`);
		await sleep(250);
	}
}

/** Holds the Kafka test broker for the cluster's lifetime (the broker stops when its stdin closes). */
async function kafkaHolder(partitions: number, regions: string[]) {
	// Imported here: the other commands (a region's `start`, in a drill's fail-back time) need neither Moleculer nor kafkajs.
	const { linkNodeID, linkTopics } = require("../src/regions/bridge") as typeof import("../src/regions/bridge");
	const { startKafkaMock } = require("../src/replication/kafka-mock") as typeof import("../src/replication/kafka-mock");
	const { topicFor } = require("../src/replication/event-log") as typeof import("../src/replication/event-log");
	// The test broker cannot create topics on request: the events' topics, and the region link's (Moleculer's
	// Kafka transporter, one set per link node: node 0 of each region).
	const link = linkTopics(`${NAMESPACE}-global`, regions.map(r => linkNodeID(r, `${r}-n0`))).map(name => ({ name, partitions: 1 }));
	const mock = await startKafkaMock({ topics: [...regions.map(r => ({ name: topicFor(NAMESPACE, r), partitions })), ...link] });
	fs.writeFileSync(path.join(DIR, "kafka.json"), JSON.stringify({ bootstrap: mock.bootstrap }));
	const stop = async () => {
		await mock.stop();
		process.exit(0);
	};
	process.on("SIGTERM", () => void stop());
	process.on("SIGINT", () => void stop());
	// `cluster kafka down|up`: a broker restart as clients see it (its data stays, as a real broker's log does).
	process.on("SIGUSR1", () => void mock.down().then(() => console.log("brokers down"), err => console.error(err)));
	process.on("SIGUSR2", () => void mock.up().then(() => console.log("brokers up"), err => console.error(err)));
	setInterval(() => undefined, 1 << 30);
}

async function up() {
	if (fs.existsSync(STATE) && read().regions.some(r => r.nodes.some(n => alive(n.pid))))
		throw new Error(`A cluster is already running from ${DIR}: \`npm run cluster -- down\` first`);
	const count = flag("regions", 3);
	const nodes = flag("nodes", 2);
	// The region role (failover) on nodes of its own, one active and the others standing by, as in k8s.
	const watchers = process.argv.includes("--watchers") ? flag("watchers", 1) : 0;
	if (nodes + watchers > 10) throw new Error("--nodes and --watchers are at most 10 together (a region's ports)");
	if (count > ALL_REGIONS.length) throw new Error(`--regions is at most ${ALL_REGIONS.length}`);
	fs.rmSync(DIR, { recursive: true, force: true });
	fs.mkdirSync(DIR, { recursive: true });
	const names = ALL_REGIONS.slice(0, count);
	const base = Number(process.env.CLUSTER_PORT_BASE ?? 4000);
	const external = !!process.env.KAFKA_BROKERS;
	const durability = option("durability", "local");
	// A partition is the unit a region's appliers share; only node 0 applies here, so more only split its work
	// into more batches (docs/multi-region.md, "Replication lag"). Four keep several partitions' paths in use.
	const partitions = flag("partitions", 4);
	if (external && process.argv.includes("--partitions")) throw new Error("--partitions sets the test broker's topics; a KAFKA_BROKERS cluster has its own");
	if (durability !== "local" && durability !== "replicated") throw new Error("--durability must be local or replicated");
	const s: State = {
		dir: DIR,
		failover: { enabled: process.argv.includes("--failover"), durability },
		kafka: { bootstrap: external ? process.env.KAFKA_BROKERS!.split(",") : [], external, partitions: external ? undefined : partitions },
		secrets: { jwt: randomBytes(32).toString("base64url"), internal: randomBytes(32).toString("base64url") },
		regions: names.map((name, i) => ({
			name,
			natsPort: base + 100 + i,
			redisPort: SHARED_REDIS ? undefined : base + 200 + i,
			database: `${NAMESPACE}_${name.replace(/-/g, "_")}`,
			apiUrl: `http://127.0.0.1:${base + i * 10}/api/v1`,
			cgroup: regionCgroup(NAMESPACE, name),
			// Node 0: the gateway, supply and order, replication, the region link and (without --watchers) the region
			// role; the others: the order actor; then the --watchers nodes, which run the region role alone.
			nodes: [
				...Array.from({ length: nodes }, (_, k) => ({
					name: `${name}-n${k}`,
					nodeID: `${name}-n${k}`,
					services: k === 0 ? ["api", "supply", "order", "replication", "link", ...(watchers ? [] : ["regions"])] : ["claiming"],
					apiPort: k === 0 ? base + i * 10 : undefined,
					metricsPort: base + 1000 + i * 10 + k,
				})),
				...Array.from({ length: watchers }, (_, k) => ({
					name: `${name}-w${k}`,
					nodeID: `${name}-w${k}`,
					services: ["regions"],
					apiPort: undefined,
					metricsPort: base + 1000 + i * 10 + nodes + k,
				})),
			],
		})),
	};
	if (nodes === 1) s.regions.forEach(r => r.nodes[0].services.push("claiming"));
	// The claiming nodes' index is what tests and drills rely on (n<k>); the role nodes come after them.
	if (!external) {
		const holder = detached("kafka", process.execPath, ["--import", "tsx", "scripts/cluster.ts", "kafka-holder", String(partitions), ...names], { CLUSTER_DIR: DIR });
		fs.writeFileSync(path.join(DIR, "kafka.pid"), String(holder));
		const file = path.join(DIR, "kafka.json");
		for (let i = 0; !fs.existsSync(file); i++) {
			if (i > 200 || !alive(holder)) throw new Error(`The Kafka test broker did not start: see ${path.join(DIR, "logs", "kafka.log")}`);
			await sleep(100);
		}
		s.kafka = { ...s.kafka, bootstrap: JSON.parse(fs.readFileSync(file, "utf8")).bootstrap, holderPid: holder };
	}
	await admin(async c => {
		for (const r of s.regions) {
			await c.query(`DROP DATABASE IF EXISTS ${r.database} WITH (FORCE)`);
			await c.query(`CREATE DATABASE ${r.database}`);
		}
	});
	for (const r of s.regions) {
		startNats(r);
		startRedis(r);
	}
	write(s);
	await serversUp(s.regions);
	for (const r of s.regions) startNodes(s, r);
	write(s);
	await Promise.all(s.regions.map(r => ready(s, r)));
	const fo = s.failover!.enabled ? `failover on (${s.failover!.durability})` : "failover off";
	console.log(`cluster up (${DIR}): ${s.regions.length} regions × ${nodes} nodes${watchers ? ` + ${watchers} region-role nodes` : ""}, Kafka ${s.kafka.bootstrap.join(",")}, ${fo}`);
	for (const r of s.regions)
		console.log(`  ${r.name.padEnd(14)} API ${r.apiUrl}   metrics ${r.nodes.map(n => n.metricsPort).join(",")}   NATS :${r.natsPort}`);
	console.log(`  tokens: JWT_SECRET=${s.secrets.jwt} npm run -s token -- <user>`);
}

async function status() {
	const s = read();
	const regions = await Promise.all(
		s.regions.map(async r => ({
			name: r.name,
			apiUrl: r.apiUrl,
			ready: await fetch(`${r.apiUrl.replace("/api/v1", "")}/health/ready`, { signal: AbortSignal.timeout(2000) })
				.then(x => x.status === 200)
				.catch(() => false),
			partitioned: !!r.partitioned,
			nats: { port: r.natsPort, pid: r.natsPid, alive: alive(r.natsPid) },
			redis: r.redisPort ? { port: r.redisPort, pid: r.redisPid, alive: alive(r.redisPid) } : { url: SHARED_REDIS },
			database: r.database,
			nodes: r.nodes.map(n => ({ nodeID: n.nodeID, services: n.services, pid: n.pid, alive: alive(n.pid), metricsPort: n.metricsPort })),
			// The node that runs the region role now (failover: the holder of the role lock).
			activeRole: s.failover?.enabled ? await activeRole(r).catch(() => null) : null,
		})),
	);
	console.log(JSON.stringify({ dir: s.dir, failover: s.failover, kafka: { ...s.kafka, alive: s.kafka.external || alive(s.kafka.holderPid) }, regions }, null, 2));
}

/** The node holding a region's role lock (services/regions.service.ts), as its database sees it. */
function activeRole(r: { name: string; database: string }): Promise<string | null> {
	const { roleHolder } = require("../src/regions/role-lock") as typeof import("../src/regions/role-lock");
	return admin(c => roleHolder(c, r.name), dbUrl(r.database), 2000);
}

function region(s: State, name: string | undefined): RegionState {
	const r = s.regions.find(x => x.name === name);
	if (!r) throw new Error(`No region "${name}" in this cluster (${s.regions.map(x => x.name).join(", ")})`);
	return r;
}

async function kill(name?: string) {
	const s = read();
	const r = region(s, name);
	await killPids([...r.nodes.map(n => n.pid), r.natsPid, r.redisPid]);
	console.log(`killed ${r.name}: ${r.nodes.length} nodes, its NATS${r.redisPort ? " and its Redis" : ""}`);
}

async function killPids(all: (number | undefined)[]) {
	const pids = all.filter(alive);
	for (const pid of pids) process.kill(pid!, "SIGKILL");
	for (const until = Date.now() + 5000; pids.some(alive) && Date.now() < until; ) await sleep(50);
}

async function killNode(nodeName?: string) {
	const s = read();
	const n = s.regions.flatMap(r => r.nodes).find(x => x.name === nodeName);
	if (!n) throw new Error(`No node "${nodeName}" in this cluster (${s.regions.flatMap(r => r.nodes.map(x => x.name)).join(", ")})`);
	await killPids([n.pid]);
	console.log(`killed ${n.name} (${n.services.join(", ")})`);
}

async function start(name?: string) {
	const s = read();
	const r = region(s, name);
	if (r.nodes.every(n => alive(n.pid)) && alive(r.natsPid) && (!r.redisPort || alive(r.redisPid))) throw new Error(`${r.name} is running: \`kill\` it first`);
	if (!alive(r.natsPid)) startNats(r);
	if (r.redisPort && !alive(r.redisPid)) startRedis(r);
	await serversUp([r]);
	startNodes(s, r);
	write(s);
	await ready(s, r);
	console.log(`started ${r.name}: API ${r.apiUrl}`);
}

function partition(name?: string) {
	const s = read();
	const r = region(s, name);
	cut(NAMESPACE, r.name, r.cgroup, s.kafka.bootstrap);
	r.partitioned = true;
	write(s);
	console.log(`partitioned ${r.name}: its nodes reach nothing on ${s.kafka.bootstrap.join(",")} (events, region link) until \`heal\``);
}

function heal(name?: string) {
	const s = read();
	if (name) region(s, name);
	const healed = healCuts(NAMESPACE, name);
	for (const r of s.regions) if (!name || r.name === name) r.partitioned = false;
	write(s);
	console.log(healed.length ? `healed ${healed.join(", ")}` : "nothing was cut");
}

/** One of a region's own parts goes away, or comes back: what its nodes see when it crashes and restarts. */
async function part(kind: "postgres" | "nats" | "redis", what?: string, name?: string) {
	if (what !== "down" && what !== "up") throw new Error(`usage: npm run cluster -- ${kind} down|up REGION`);
	const s = read();
	const r = region(s, name);
	if (kind === "postgres") {
		// The server is shared by the regions' databases: the region's own database is the part that goes.
		await admin(async c => {
			await c.query(`ALTER DATABASE ${r.database} WITH ALLOW_CONNECTIONS ${what === "up"}`);
			if (what === "down") await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [r.database]);
		});
	} else if (kind === "nats") {
		if (what === "down") await killPids([r.natsPid]);
		else if (!alive(r.natsPid)) startNats(r);
	} else {
		if (!r.redisPort) throw new Error("redis down|up needs a Redis per region (this cluster shares CLUSTER_REDIS_URL)");
		if (what === "down") await killPids([r.redisPid]);
		else if (!alive(r.redisPid)) startRedis(r);
	}
	write(s);
	console.log(`${kind} of ${r.name} ${what}`);
}

function kafka(what?: string) {
	const s = read();
	if (s.kafka.external || !s.kafka.holderPid) throw new Error("kafka down|up drives the Kafka test broker; this cluster uses KAFKA_BROKERS");
	if (what !== "down" && what !== "up") throw new Error("usage: npm run cluster -- kafka down|up");
	process.kill(s.kafka.holderPid, what === "down" ? "SIGUSR1" : "SIGUSR2");
	console.log(`kafka ${what}`);
}

async function stopPid(pid: number | undefined, ms = 10_000) {
	if (!alive(pid)) return;
	process.kill(pid!, "SIGTERM");
	for (const until = Date.now() + ms; alive(pid) && Date.now() < until; ) await sleep(100);
	if (alive(pid)) process.kill(pid!, "SIGKILL");
}

async function down(keepLogs = false) {
	if (!fs.existsSync(STATE)) return console.log(`no cluster in ${DIR}`);
	const s = read();
	healCuts(NAMESPACE);
	await Promise.all(s.regions.flatMap(r => r.nodes.map(n => stopPid(n.pid))));
	await Promise.all(s.regions.flatMap(r => [stopPid(r.natsPid), stopPid(r.redisPid)]));
	for (const r of s.regions) removeCgroup(r.cgroup);
	await stopPid(s.kafka.holderPid);
	if (!process.argv.includes("--keep-databases"))
		await admin(async c => {
			for (const r of s.regions) {
				// A database left refusing connections (`postgres down`) is dropped all the same.
				await c.query(`ALTER DATABASE ${r.database} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
				await c.query(`DROP DATABASE IF EXISTS ${r.database} WITH (FORCE)`);
			}
		}).catch(err => log(`databases not dropped: ${(err as Error).message}`));
	if (keepLogs) fs.rmSync(STATE, { force: true });
	else fs.rmSync(DIR, { recursive: true, force: true });
	console.log("cluster down");
}

/** The Kafka holder of an `up` that failed before it wrote its state. */
function readHolderPid(): number | undefined {
	const pidFile = path.join(DIR, "kafka.pid");
	return fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, "utf8")) : undefined;
}

async function main() {
	const [cmd, arg, arg2] = process.argv.slice(2);
	switch (cmd) {
		case "up":
			// A cluster that could not come up is taken down again: no process or database is left behind.
			return up().catch(async err => {
				// Its logs stay, to read why.
				if (fs.existsSync(STATE)) await down(true).catch(() => undefined);
				else await stopPid(readHolderPid()).catch(() => undefined);
				throw err;
			});
		case "status":
			return status();
		case "kill":
			return kill(arg);
		case "start":
			return start(arg);
		case "kill-node":
			return killNode(arg);
		case "postgres":
		case "nats":
		case "redis":
			return part(cmd, arg, arg2);
		case "down":
			return down();
		case "kafka-holder":
			return kafkaHolder(Number(process.argv[3]), process.argv.slice(4));
		case "partition":
			return partition(arg);
		case "heal":
			return heal(arg);
		case "kafka":
			return kafka(arg);
		default:
			throw new Error(
				"usage: npm run cluster -- up [--regions N] [--nodes M] [--failover] [--durability local|replicated] [--watchers K] [--partitions P] | status | kill REGION | kill-node NODE | start REGION | postgres|nats|redis down|up REGION | partition REGION | heal [REGION] | kafka down|up | down",
			);
	}
}

main().then(
	() => {
		if (process.argv[2] !== "kafka-holder") process.exit(0);
	},
	err => {
		log(`cluster: ${(err as Error).message}`);
		process.exit(1);
	},
);
