// The Kubernetes manifests of k8s/, checked against the code they deploy: `kubectl kustomize` builds every
// overlay, every object is validated against the Kubernetes schemas (kubernetes-models, plus a check for
// unknown fields, which the schemas allow), and the invariants that keep a deployment working hold. Ports,
// paths, variables and stop timings come from the code (config/index.ts, moleculer.config.ts,
// services/api.service.ts), never from copies in this file.
import { execFile, spawnSync } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { loadConfig, type Config } from "../../config";
import { brokerOptions } from "../../moleculer.config";
import ApiService from "../../services/api.service";

const ROOT = path.resolve(__dirname, "..", "..");
const K8S = path.join(ROOT, "k8s");
const OVERLAYS = fs.readdirSync(path.join(K8S, "overlays")).sort();
// The component of the roles whose service files have not arrived yet: a commented line in every overlay.
const NOT_YET = "../../components/region-watcher";
// Read by config/index.ts for the embedded PostgreSQL only; unused when DATABASE_URL is set (checked below).
const EMBEDDED_ONLY = ["DATA_DIR", "EMBEDDED_PG_PORT", "EMBEDDED_DATABASE"];
const SECRET_NAME = /SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE_KEY|_KEY$/;
// The roles that keep no state of their own in memory: each must scale by an HPA.
const STATELESS_SERVICES = ["services/api.service.ts", "services/supply.service.ts", "services/order.service.ts", "services/claiming.service.ts"];
/** Roles of which one pod acts per region, the others standing by (services/regions.service.ts: failover, by its role lock). */
const ACTIVE_STANDBY_SERVICES = ["services/regions.service.ts"];
// The services with Kafka clients: the event log's relay and applier, and the region link's global broker.
const KAFKA_SERVICES = ["services/replication.service.ts", "services/link.service.ts"];

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> };
type Container = { name: string; image: string; env?: any[]; envFrom?: any[]; ports?: { name?: string; containerPort: number }[]; [k: string]: any };

// The workers' readiness command (the same in every worker role: the probe test checks each against it).
let READY_SCRIPT = "";

const hasKubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
if (!hasKubectl) console.warn("deploy-k8s: kubectl is not installed; skipping the checks that need `kubectl kustomize`");

function kustomize(dir: string): Obj[] {
	const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 << 20 });
	if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
	return parseAllDocuments(r.stdout).map(d => d.toJS() as Obj).filter(Boolean);
}

/** The overlay built with the not-yet-enabled roles switched on (as it will be once their services exist). */
function buildWithFutureRoles(overlay: string): Obj[] {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wallet-k8s-"));
	try {
		const src = path.join(K8S, "overlays", overlay);
		for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(tmp, f));
		const k = fs.readFileSync(path.join(tmp, "kustomization.yaml"), "utf8");
		if (new RegExp(`^\\s*- ${NOT_YET}$`, "m").test(k)) return kustomize(src);
		const enabled = k.replace(`# - ${NOT_YET}`, `- ${NOT_YET}`);
		if (enabled === k) throw new Error(`${overlay}/kustomization.yaml has no "# - ${NOT_YET}" line to switch on`);
		fs.writeFileSync(path.join(tmp, "kustomization.yaml"), enabled.replaceAll("../../", `${path.relative(tmp, K8S)}/`));
		return kustomize(tmp);
	} finally {
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

// ---- schema validation ----

const MODEL_PACKAGES: Record<string, string> = {
	"monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
	"external-secrets.io": "@kubernetes-models/external-secrets",
};

function modelPackage(apiVersion: string): string {
	const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
	return MODEL_PACKAGES[group] ?? "kubernetes-models";
}

async function validate(obj: Obj): Promise<void> {
	const pkg = modelPackage(obj.apiVersion);
	const mod = await import(`${pkg}/${obj.apiVersion}`).catch(() => ({}) as Record<string, any>);
	const Model = (mod as Record<string, any>)[obj.kind];
	if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
	new Model(obj).validate();
}

// The schemas accept unknown fields, so a misspelt `readinesProbe` would pass them: walk the models' type
// declarations instead and name every field they do not declare.
type Field = { file?: string; map: boolean };
const shapes = new Map<string, Map<string, Field> | null>();

function shape(dts: string): Map<string, Field> | null {
	if (shapes.has(dts)) return shapes.get(dts)!;
	let result: Map<string, Field> | null = null;
	if (fs.existsSync(dts)) {
		const src = fs.readFileSync(dts, "utf8");
		const imports = new Map<string, string>();
		for (const m of src.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
			const spec = m[2].replace(/\.js$/, "");
			imports.set(m[1], spec.startsWith(".") ? path.resolve(path.dirname(dts), `${spec}.d.ts`) : path.join(ROOT, "node_modules", `${spec}.d.ts`));
		}
		const body = /export interface I\w+(?: extends [^{]+)? \{\n([\s\S]*?)\n\}/.exec(src)?.[1];
		if (body) {
			result = new Map();
			for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.+?);?$/gm)) {
				const type = m[2].replace(/^Array<(.*)>$/, "$1");
				result.set(m[1], { file: imports.get(type), map: type.startsWith("{") });
			}
		}
	}
	shapes.set(dts, result);
	return result;
}

function unknownFields(value: unknown, dts: string, at: string): string[] {
	const fields = shape(dts);
	if (!fields || value === null || typeof value !== "object") return [];
	if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(v, dts, `${at}[${i}]`));
	return Object.entries(value).flatMap(([k, v]) => {
		const f = fields.get(k);
		if (!f) return [`${at}.${k}`];
		return f.file && !f.map ? unknownFields(v, f.file, `${at}.${k}`) : [];
	});
}

function modelDts(obj: Obj): string {
	return path.join(ROOT, "node_modules", modelPackage(obj.apiVersion), obj.apiVersion, `${obj.kind}.d.ts`);
}

// ---- reading the built objects ----

const podTemplates = (objs: Obj[]) =>
	objs.filter(o => ["Deployment", "StatefulSet", "Job"].includes(o.kind)).map(o => ({ owner: o, pod: o.spec.template }));
const deployments = (objs: Obj[]) => objs.filter(o => o.kind === "Deployment");
const walletContainer = (o: Obj): Container => o.spec.template.spec.containers.find((c: Container) => c.image.includes("wallet-backend"));
const servicesOf = (o: Obj): string[] =>
	(walletContainer(o).env ?? []).find((e: any) => e.name === "SERVICES")?.value.split(",").map((s: string) => s.trim()) ?? [];
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
	Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The environment a container starts with, as config/index.ts would see it (secret values are stand-ins). */
function containerEnv(c: Container, objs: Obj[]): { env: Record<string, string>; fromSecret: Set<string> } {
	const env: Record<string, string> = {};
	const fromSecret = new Set<string>();
	for (const from of c.envFrom ?? []) {
		if (from.configMapRef) {
			const cm = objs.find(o => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef.name);
			if (!cm) throw new Error(`${c.name}: envFrom names a missing ConfigMap ${from.configMapRef.name}`);
			Object.assign(env, cm.data);
		} else throw new Error(`${c.name}: envFrom ${JSON.stringify(from)} (secrets are referenced key by key)`);
	}
	for (const e of c.env ?? []) {
		if (e.value !== undefined) env[e.name] = e.value;
		else if (e.valueFrom?.secretKeyRef) {
			// One stand-in per variable: real secrets differ (config/index.ts refuses INTERNAL_SECRET = JWT_SECRET).
			env[e.name] = e.name.endsWith("_URL") ? "redis://:stand-in@10.0.0.1:6379" : `stand-in-${e.name}-value-of-at-least-32-chars`;
			fromSecret.add(e.name);
		} else if (e.valueFrom?.configMapKeyRef) {
			const cm = objs.find(o => o.kind === "ConfigMap" && o.metadata.name === e.valueFrom.configMapKeyRef.name);
			env[e.name] = cm?.data?.[e.valueFrom.configMapKeyRef.key] as string;
		} else env[e.name] = "from-the-pod";
	}
	return { env, fromSecret };
}

/** Every environment variable name config/index.ts reads, found in its source (so variables added later count). */
function configVariables(): string[] {
	const src = fs.readFileSync(path.join(ROOT, "config", "index.ts"), "utf8");
	const names = new Set<string>();
	for (const re of [/\benv,\s*"([A-Z][A-Z0-9_]*)"/g, /\benv\.([A-Z][A-Z0-9_]*)\b/g, /\benv\[\s*"([A-Z][A-Z0-9_]*)"\s*\]/g])
		for (const m of src.matchAll(re)) names.add(m[1]);
	return [...names].sort();
}

function resolvePort(c: Container, port: number | string): number {
	if (typeof port === "number") return port;
	const p = c.ports?.find(x => x.name === port);
	if (!p) throw new Error(`${c.name} has no port named ${port}`);
	return p.containerPort;
}

/** A NetworkPolicy port as the pod would see it: a name the pod does not have matches nothing. */
const policyPort = (c: Container, port: number | string) => (typeof port === "number" ? port : (c.ports?.find(x => x.name === port)?.containerPort ?? `unmatched:${port}`));

function healthPaths(): { live: string; ready: string } {
	const route = (ApiService.settings as any).routes.find((r: any) => Object.values(r.aliases ?? {}).includes("api.ready"));
	const alias = (action: string) => Object.entries(route.aliases).find(([, a]) => a === action)![0].replace(/^GET\s+/, "");
	return { live: `${route.path}/${alias("api.live")}`, ready: `${route.path}/${alias("api.ready")}` };
}

function metricsEndpoint(cfg: Config): { port: number; path: string } {
	const reporter = (brokerOptions(cfg).metrics as any).reporter[0];
	return { port: reporter.opts.port, path: reporter.opts.path };
}

describe("k8s manifests", () => {
	const built: Record<string, Obj[]> = {};
	let allRoles: Obj[] = [];

	beforeAll(() => {
		if (!hasKubectl) return;
		for (const o of OVERLAYS) built[o] = kustomize(path.join(K8S, "overlays", o));
		allRoles = buildWithFutureRoles(OVERLAYS[0]);
		const core = deployments(built[OVERLAYS[0]]).find(d => !servicesOf(d).includes("services/api.service.ts"))!;
		READY_SCRIPT = walletContainer(core).readinessProbe.exec.command[2];
	});

	const each = (fn: (name: string, objs: Obj[]) => void) => () => {
		for (const [name, objs] of [...Object.entries(built), [`${OVERLAYS[0]}+future-roles`, allRoles] as const]) fn(name, objs);
	};

	it("has one overlay per region of the code's default REGIONS", () => {
		expect(OVERLAYS).toEqual([...loadConfig({}).regions].sort());
	});

	it.skipIf(!hasKubectl)("builds every overlay into objects valid against the Kubernetes schemas, with no unknown fields", async () => {
		for (const [name, objs] of [...Object.entries(built), ["future-roles", allRoles] as const]) {
			expect(objs.length, name).toBeGreaterThan(20);
			for (const o of objs) {
				await validate(o).catch(err => {
					throw new Error(`${name}: ${o.kind}/${o.metadata.name}: ${err.message}`);
				});
				expect(unknownFields(o, modelDts(o), `${o.kind}/${o.metadata.name}`), name).toEqual([]);
			}
		}
	});

	it.skipIf(!hasKubectl)("probes, ports and scrape settings are the ones the code listens on", each((name, objs) => {
		const health = healthPaths();
		for (const d of deployments(objs)) {
			const c = walletContainer(d);
			const cfg = loadConfig(containerEnv(c, objs).env);
			const metrics = metricsEndpoint(cfg);
			const where = `${name} ${d.metadata.name}`;
			expect(cfg.metrics.enabled, where).toBe(true);
			expect(resolvePort(c, "metrics"), where).toBe(metrics.port);
			expect(d.spec.template.metadata.annotations["prometheus.io/port"], where).toBe(String(metrics.port));
			expect(d.spec.template.metadata.annotations["prometheus.io/path"], where).toBe(metrics.path);
			const at = (p: string) => {
				const get = c[p].httpGet;
				return `${get.path}@${resolvePort(c, get.port)}`;
			};
			for (const p of ["startupProbe", "livenessProbe"]) expect(c[p]?.httpGet, `${where} ${p}`).toBeTruthy();
			if (servicesOf(d).includes("services/api.service.ts")) {
				expect(c.readinessProbe?.httpGet, where).toBeTruthy();
				expect(resolvePort(c, "http"), where).toBe(cfg.port);
				expect(at("livenessProbe"), where).toBe(`${health.live}@${cfg.port}`);
				expect(at("startupProbe"), where).toBe(`${health.live}@${cfg.port}`);
				expect(at("readinessProbe"), where).toBe(`${health.ready}@${cfg.port}`);
			} else {
				// Only the gateway serves HTTP; the other roles answer on the metrics endpoint.
				expect(c.ports?.map(p => p.name), where).toEqual(["metrics"]);
				for (const p of ["startupProbe", "livenessProbe"]) expect(at(p), `${where} ${p}`).toBe(`${metrics.path}@${metrics.port}`);
				// Readiness asks the same endpoint from inside the container, on the port its own environment sets.
				const [node, flag, script] = c.readinessProbe?.exec?.command ?? [];
				expect([node, flag], where).toEqual(["node", "-e"]);
				expect(script, where).toContain("process.env.METRICS_PORT");
				expect(script, where).toContain(`'${metrics.path}'`);
				expect(script, where).toBe(READY_SCRIPT);
			}
		}
		const svc = objs.find(o => o.kind === "Service" && o.metadata.name === "wallet-gateway")!;
		const gateway = deployments(objs).find(d => matches(svc.spec.selector, d.spec.template.metadata.labels))!;
		const gwCfg = loadConfig(containerEnv(walletContainer(gateway), objs).env);
		expect(servicesOf(gateway)).toContain("services/api.service.ts");
		expect(resolvePort(walletContainer(gateway), svc.spec.ports[0].targetPort)).toBe(gwCfg.port);
		const monitor = objs.find(o => o.kind === "PodMonitor")!;
		for (const d of deployments(objs))
			if (matches(monitor.spec.selector.matchLabels, d.spec.template.metadata.labels))
				expect(walletContainer(d).ports?.map(p => p.name), d.metadata.name).toContain(monitor.spec.podMetricsEndpoints[0].port);
	}));

	it.skipIf(!hasKubectl)("preStop and terminationGracePeriodSeconds leave room for the broker's graceful stop, and no more than needed", each((name, objs) => {
		for (const d of deployments(objs)) {
			const cfg = loadConfig(containerEnv(walletContainer(d), objs).env);
			const opts = brokerOptions(cfg) as any;
			const stopMs = opts.registry.stopDelay + opts.tracking.shutdownTimeout;
			const preStop = walletContainer(d).lifecycle?.preStop?.sleep?.seconds;
			const grace = d.spec.template.spec.terminationGracePeriodSeconds;
			const where = `${name} ${d.metadata.name}: preStop ${preStop}s + stop ${stopMs}ms vs grace ${grace}s`;
			expect(preStop, where).toBeGreaterThan(0);
			// 2 s for the services' own stopped() (pool end, Redis quit) after the tracked requests finish.
			expect(grace * 1000, where).toBeGreaterThanOrEqual(preStop * 1000 + stopMs + 2000);
			// A much longer grace period only hides a stuck stop for longer.
			expect(grace * 1000, where).toBeLessThanOrEqual(preStop * 1000 + stopMs + 15_000);
		}
	}));

	it.skipIf(!hasKubectl)("provides every variable config/index.ts reads to every role and the migrations Job, with valid production values", each((name, objs) => {
		const vars = configVariables();
		expect(vars).toEqual(expect.arrayContaining(["PORT", "METRICS_PORT", "DATABASE_URL", "JWT_SECRET", ...EMBEDDED_ONLY]));
		const pods = podTemplates(objs).filter(t => t.pod.spec.containers.some((c: Container) => c.image.includes("wallet-backend")));
		expect(pods.map(p => p.owner.kind)).toContain("Job");
		for (const { owner, pod } of pods) {
			const c: Container = pod.spec.containers.find((x: Container) => x.image.includes("wallet-backend"));
			const { env } = containerEnv(c, objs);
			const where = `${name} ${owner.kind}/${owner.metadata.name}`;
			expect(vars.filter(v => !(v in env) && !EMBEDDED_ONLY.includes(v)).join(" "), `${where} lacks`).toBe("");
			expect(() => loadConfig(env), where).not.toThrow();
			expect(env.DATABASE_URL, where).toMatch(/^postgres(ql)?:\/\//);
			const cfg = loadConfig(env);
			expect(cfg.env, where).toBe("production");
			expect(cfg.migrateOnStart, `${where}: nodes must not migrate; the Job does`).toBe(false);
			expect(cfg.regions, where).toContain(cfg.region);
		}
	}));

	it.skipIf(!hasKubectl)("holds secrets by reference only", each((name, objs) => {
		expect(objs.filter(o => o.kind === "Secret").map(o => o.metadata.name), `${name}: Secret objects`).toEqual([]);
		const external = objs.filter(o => o.kind === "ExternalSecret");
		const secretKeys = new Map(external.map(e => [e.spec.target.name, new Set(e.spec.data.map((d: any) => d.secretKey))]));
		for (const cm of objs.filter(o => o.kind === "ConfigMap" && !o.metadata.name.startsWith("wallet-grafana") && !o.metadata.name.startsWith("wallet-prometheus")))
			for (const [k, v] of Object.entries(cm.data ?? {})) {
				if (SECRET_NAME.test(k)) expect(v, `${name} ConfigMap ${cm.metadata.name} holds ${k}`).toBe("");
				expect(v, `${name} ConfigMap ${cm.metadata.name}.${k} has a password in a URL`).not.toMatch(/:\/\/[^/@\s:]*:[^/@\s]+@/);
			}
		const secretVars = configVariables().filter(v => SECRET_NAME.test(v));
		expect(secretVars).toContain("JWT_SECRET");
		for (const d of [...deployments(objs), ...objs.filter(o => o.kind === "Job")]) {
			const c: Container = d.spec.template.spec.containers.find((x: Container) => x.image.includes("wallet-backend"));
			const { fromSecret, env } = containerEnv(c, objs);
			for (const e of c.env ?? [])
				if (e.valueFrom?.secretKeyRef) {
					const ref = e.valueFrom.secretKeyRef;
					expect(secretKeys.get(ref.name)?.has(ref.key), `${name} ${d.metadata.name}: ${ref.name}/${ref.key} is not provided by an ExternalSecret`).toBe(true);
				}
			for (const v of secretVars)
				if (v in env && env[v] !== "") expect(fromSecret.has(v), `${name} ${d.metadata.name}: ${v} must come from a Secret`).toBe(true);
		}
	}));

	it.skipIf(!hasKubectl)("gives the Kafka clients TLS and SASL, the Kafka key to no other role, and every region the same link Kafka", () => {
		const linkBrokers = new Set<string>();
		for (const [name, objs] of [...Object.entries(built), [`${OVERLAYS[0]}+future-roles`, allRoles] as const]) {
			const pods = [...deployments(objs), ...objs.filter(o => o.kind === "Job")];
			const kafkaRoles = pods.filter(d => d.kind === "Deployment" && servicesOf(d).some(f => KAFKA_SERVICES.includes(f)));
			expect(kafkaRoles.length, `${name}: a role runs the Kafka clients`).toBeGreaterThan(0);
			for (const d of pods) {
				const where = `${name} ${d.kind}/${d.metadata.name}`;
				const cfg = loadConfig(containerEnv(walletContainer(d), objs).env);
				if (kafkaRoles.includes(d)) {
					expect(cfg.replication.mode, where).toBe("kafka");
					expect(cfg.replication.link, where).toBe("kafka");
					expect(cfg.replication.kafka.ssl, `${where}: Managed Kafka takes TLS only`).toBe(true);
					expect(cfg.replication.kafka.sasl?.mechanism, where).toBe("plain");
					expect(cfg.replication.kafka.sasl?.username, `${where}: the region's kafka service account`).toMatch(new RegExp(`^wallet-kafka-${cfg.region}@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$`));
					expect(cfg.replication.kafka.topology, where).toBe("mirrored");
					for (const b of cfg.replication.linkKafka.brokers) linkBrokers.add(b);
				} else expect(cfg.replication.kafka.sasl, `${where} runs no Kafka client and must not hold the Kafka key`).toBeUndefined();
			}
		}
		// Every region's link nodes must meet on one Kafka, or no region ever sees another.
		expect([...linkBrokers]).toHaveLength(1);
	});

	it.skipIf(!hasKubectl)("runs no container as root, privileged, with a writable root filesystem or with capabilities", each((name, objs) => {
		for (const { owner, pod } of podTemplates(objs)) {
			const podSc = pod.spec.securityContext ?? {};
			expect(podSc.seccompProfile?.type, `${name} ${owner.metadata.name}`).toBe("RuntimeDefault");
			expect(pod.spec.hostNetwork ?? false).toBe(false);
			for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
				const sc = c.securityContext ?? {};
				const where = `${name} ${owner.kind}/${owner.metadata.name} container ${c.name}`;
				expect(sc.runAsNonRoot ?? podSc.runAsNonRoot, where).toBe(true);
				expect(sc.runAsUser ?? podSc.runAsUser, where).toBeGreaterThan(0);
				expect(sc.allowPrivilegeEscalation, where).toBe(false);
				expect(sc.readOnlyRootFilesystem, where).toBe(true);
				expect(sc.privileged ?? false, where).toBe(false);
				expect(sc.capabilities?.drop, where).toEqual(["ALL"]);
				expect(sc.capabilities?.add ?? [], where).toEqual([]);
				expect(c.resources?.requests?.cpu, `${where}: cpu request`).toBeTruthy();
				expect(c.resources?.requests?.memory, `${where}: memory request`).toBeTruthy();
				expect(c.resources?.limits?.memory, `${where}: memory limit`).toBeTruthy();
			}
		}
	}));

	it.skipIf(!hasKubectl)("gives every role a PDB that lets a node drain, spreads it across zones, and autoscales the stateless ones", each((name, objs) => {
		const workloads = objs.filter(o => o.kind === "Deployment" || o.kind === "StatefulSet");
		for (const w of workloads) {
			const labels = w.spec.template.metadata.labels;
			const where = `${name} ${w.kind}/${w.metadata.name}`;
			const pdbs = objs.filter(o => o.kind === "PodDisruptionBudget" && matches(o.spec.selector.matchLabels, labels));
			expect(pdbs.length, `${where}: PDBs`).toBe(1);
			expect(pdbs[0].spec.maxUnavailable, `${where}: a PDB with minAvailable can block every drain`).toBeGreaterThanOrEqual(1);
			const zone = w.spec.template.spec.topologySpreadConstraints?.find((t: any) => t.topologyKey === "topology.kubernetes.io/zone");
			expect(zone?.whenUnsatisfiable, where).toBe("DoNotSchedule");
			expect(matches(zone.labelSelector.matchLabels, labels), where).toBe(true);
			if (w.kind !== "Deployment") continue;
			const hpa = objs.find(o => o.kind === "HorizontalPodAutoscaler" && o.spec.scaleTargetRef.name === w.metadata.name);
			if (servicesOf(w).some(s => STATELESS_SERVICES.includes(s))) {
				expect(hpa, `${where}: HPA`).toBeTruthy();
				expect(hpa!.spec.minReplicas, `${where}: one pod per zone at least`).toBeGreaterThanOrEqual(3);
				// A fixed replicas count would reset the HPA's choice on every apply.
				expect(w.spec.replicas, `${where}: replicas is the HPA's`).toBeUndefined();
			} else if (servicesOf(w).some(s => ACTIVE_STANDBY_SERVICES.includes(s))) {
				// One acts (the role lock), one stands by; an update never leaves the region without a pod to take over.
				expect(w.spec.replicas, `${where}: replicas`).toBe(2);
				expect(w.spec.strategy, `${where}: strategy`).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
			} else expect(w.spec.replicas, `${where}: replicas`).toBeGreaterThanOrEqual(2);
		}
		for (const pdb of objs.filter(o => o.kind === "PodDisruptionBudget"))
			expect(workloads.some(w => matches(pdb.spec.selector.matchLabels, w.spec.template.metadata.labels)), `${name} PDB ${pdb.metadata.name} selects nothing`).toBe(true);
	}));

	it.skipIf(!hasKubectl)("runs every service file in some role, from one image, and only files that exist", () => {
		const files = fs.readdirSync(path.join(ROOT, "services")).filter(f => f.endsWith(".service.ts")).map(f => `services/${f}`);
		const future = deployments(allRoles).flatMap(servicesOf).filter(f => !deployments(built[OVERLAYS[0]]).flatMap(servicesOf).includes(f));
		const arrived = future.filter(f => files.includes(f));
		expect(arrived, `these files exist now: switch on ${NOT_YET} in every overlay`).toEqual([]);
		for (const [name, objs] of Object.entries(built)) {
			const run = deployments(objs).flatMap(servicesOf);
			expect(run.filter(f => !files.includes(f)), `${name} runs missing files`).toEqual([]);
			expect(files.filter(f => !run.includes(f)), `${name} runs no node for`).toEqual([]);
			expect(new Set(run).size, `${name}: a service file in two roles`).toBe(run.length);
		}
		for (const objs of [...Object.values(built), allRoles]) {
			const images = new Set(podTemplates(objs).flatMap(t => t.pod.spec.containers).map((c: Container) => c.image).filter((i: string) => i.includes("wallet-backend")));
			expect(images.size).toBe(1);
			for (const { owner, pod } of podTemplates(objs))
				if (owner.metadata.labels?.["wallet.io/database"] === "true")
					expect(pod.spec.initContainers?.map((c: Container) => c.name), `${owner.metadata.name}: Cloud SQL proxy`).toEqual(["cloud-sql-proxy"]);
		}
		const job = built[OVERLAYS[0]].find(o => o.kind === "Job")!;
		const script = /tsx (\S+)/.exec(JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts.migrate)![1];
		expect(job.spec.template.spec.containers[0].command).toContain(script);
		expect(job.metadata.annotations?.["argocd.argoproj.io/hook"]).toBe("PreSync");
	});

	it.skipIf(!hasKubectl)("lets only the gateway take traffic from outside, and only the project's pods reach NATS", each((name, objs) => {
		const policies = objs.filter(o => o.kind === "NetworkPolicy");
		expect(policies.some(p => Object.keys(p.spec.podSelector).length === 0 && p.spec.policyTypes.includes("Ingress") && !p.spec.ingress), `${name}: default deny`).toBe(true);
		const walletPodLabels = podTemplates(objs).filter(t => t.owner.kind !== "StatefulSet").map(t => t.pod.metadata.labels);
		for (const { owner, pod } of podTemplates(objs)) {
			const labels = pod.metadata.labels;
			const c: Container = pod.spec.containers[0];
			const rules = policies.filter(p => matches(p.spec.podSelector.matchLabels ?? {}, labels)).flatMap(p => p.spec.ingress ?? []);
			for (const rule of rules) {
				const ports = (rule.ports ?? []).map((p: any) => policyPort(c, p.port));
				const where = `${name} ${owner.metadata.name} ingress ${JSON.stringify(rule.from)}`;
				expect(rule.from?.length, `${where}: a rule without "from" admits everyone`).toBeGreaterThan(0);
				expect(ports.length, `${where}: a rule without ports admits every port`).toBeGreaterThan(0);
				for (const from of rule.from) {
					if (from.ipBlock) {
						expect(servicesOf(owner), `${where}: only the gateway takes outside traffic`).toContain("services/api.service.ts");
						expect(ports, where).toEqual([loadConfig(containerEnv(c, objs).env).port]);
					} else if (from.namespaceSelector) {
						expect(from.namespaceSelector.matchExpressions?.[0]?.values, where).toEqual(["monitoring", "gmp-system"]);
						expect(rule.ports.map((p: any) => p.port), where).toEqual(["metrics"]);
					} else {
						// Same-namespace pods: into NATS only from wallet pods (and NATS routes from NATS).
						expect(owner.metadata.name, where).toBe("nats");
						const admitted = walletPodLabels.filter(l => matches(from.podSelector.matchLabels, l));
						if (ports.includes(4222)) {
							expect(from.podSelector.matchLabels, where).toEqual({ "app.kubernetes.io/part-of": "wallet" });
							expect(admitted.length, where).toBe(walletPodLabels.length);
						} else expect(from.podSelector.matchLabels, where).toEqual({ "app.kubernetes.io/name": "nats" });
					}
				}
			}
		}
		expect(objs.filter(o => o.kind === "Service" && ["LoadBalancer", "NodePort"].includes(o.spec.type)), `${name}: public Services`).toEqual([]);
	}));

	it.skipIf(!hasKubectl)("overlays differ only where regions differ", () => {
		const hash = /-[a-z0-9]{10}\b/g;
		const normal = (overlay: string) => {
			const region = overlay;
			const regionEnv = built[overlay].find(o => o.kind === "ConfigMap" && o.metadata.name.startsWith("wallet-region-"))!;
			// The region ConfigMap's values are the region's by definition; its keys must be the same everywhere.
			const objs = built[overlay].map(o => (o === regionEnv ? { ...o, data: Object.keys(o.data!).sort() } : o));
			// REGIONS names every region in every overlay: keep it whole before replacing this region's name.
			const all = built[overlay].find(o => o.kind === "ConfigMap" && o.metadata.name.startsWith("wallet-config-"))!.data!.REGIONS;
			return JSON.parse(JSON.stringify(objs).replace(hash, "-HASH").replaceAll(all, "ALL_REGIONS").replaceAll(region, "REGION"));
		};
		for (const o of OVERLAYS) {
			const env = built[o].find(x => x.kind === "ConfigMap" && x.metadata.name.startsWith("wallet-region-"))!.data!;
			expect(env.REGION, `${o}/region.env`).toBe(o);
			expect(normal(o), `${o} differs from ${OVERLAYS[0]} beyond its region`).toEqual(normal(OVERLAYS[0]));
		}
	});

	it.skipIf(!hasKubectl)("the workers' readiness command passes only once the broker has started its services", async () => {
		expect(READY_SCRIPT).toBeTruthy();
		const metricsLine = async (value: number | null) => {
			const srv = http.createServer((_req, res) => {
				res.end(value === null ? "" : `# HELP moleculer_broker_started Broker started\nmoleculer_broker_started{namespace="wallet",nodeID="n1",region="us-central1"} ${value}\n`);
			});
			await new Promise<void>(r => srv.listen(0, "127.0.0.1", r));
			const port = (srv.address() as AddressInfo).port;
			const code = await new Promise<number | null>(resolve =>
				execFile(process.execPath, ["-e", READY_SCRIPT], { env: { METRICS_PORT: String(port) } }, err => resolve(err ? ((err as any).code ?? -1) : 0)),
			);
			await new Promise(r => srv.close(r));
			return code;
		};
		expect(await metricsLine(1)).toBe(0);
		expect(await metricsLine(0)).toBe(1);
		expect(await metricsLine(null)).toBe(1);
	});

	it("ships the dashboard and alert rules of monitoring/ unchanged", () => {
		for (const [copy, original] of [
			["k8s/base/monitoring/region-dashboard.json", "monitoring/grafana/region-dashboard.json"],
			["k8s/base/monitoring/alerts.yml", "monitoring/prometheus/alerts.yml"],
		])
			expect(fs.readFileSync(path.join(ROOT, copy), "utf8"), `${copy} differs from ${original}: copy it again`).toBe(fs.readFileSync(path.join(ROOT, original), "utf8"));
		const k = parseYaml(fs.readFileSync(path.join(K8S, "base", "monitoring", "kustomization.yaml"), "utf8"));
		expect(k.configMapGenerator.flatMap((g: any) => g.files).sort()).toEqual(["alerts.yml", "region-dashboard.json"]);
		// The PrometheusRule carries the same groups (regenerate it from alerts.yml when they change).
		const rule = parseYaml(fs.readFileSync(path.join(K8S, "base", "monitoring", "prometheus-rule.yaml"), "utf8"));
		const alerts = parseYaml(fs.readFileSync(path.join(ROOT, "monitoring", "prometheus", "alerts.yml"), "utf8"));
		expect(rule.spec.groups, "prometheus-rule.yaml differs from monitoring/prometheus/alerts.yml").toEqual(alerts.groups);
		expect(k.resources).toContain("prometheus-rule.yaml");
	});
});
