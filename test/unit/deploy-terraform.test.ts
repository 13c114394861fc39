// terraform/, parsed with @cdktf/hcl2json (no provider download, so no `terraform validate` here; .ci/run runs
// `terraform fmt -check`). The checks stand in for what validate and a review would catch: modules are called
// with the variables they declare, references name real outputs, every region gets its cluster, Redis,
// database and Kafka, and the load balancer health-checks the gateway where the code serves readiness.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { loadConfig } from "../../config";
import ApiService from "../../services/api.service";

// Loaded by a specifier in a variable so TypeScript does not read its declarations: they reference the DOM
// library, whose Headers (without keys()) would then clash with Node's in every other file of the project.
const HCL2JSON = "@cdktf/hcl2json";
type ParseHcl = (file: string, content: string) => Promise<Record<string, any>>;
const parseHcl: ParseHcl = async (file, content) => ((await import(HCL2JSON)) as { parse: ParseHcl }).parse(file, content);

const ROOT = path.resolve(__dirname, "..", "..");
const TF = path.join(ROOT, "terraform");
const META = ["source", "for_each", "count", "depends_on", "providers"];

type Block = Record<string, any>;
type Module = { dir: string; variable: Block; output: Block; resource: Block; data: Block; module: Block; text: string; strings: string[] };

/** Every string of a parsed file: hcl2json keeps each expression as one "${...}" string. */
function strings(v: unknown): string[] {
	if (typeof v === "string") return [v];
	if (v && typeof v === "object") return Object.values(v).flatMap(strings);
	return [];
}

async function loadModule(dir: string): Promise<Module> {
	const m: Module = { dir, variable: {}, output: {}, resource: {}, data: {}, module: {}, text: "", strings: [] };
	for (const f of fs.readdirSync(dir).filter(f => f.endsWith(".tf")).sort()) {
		const src = fs.readFileSync(path.join(dir, f), "utf8");
		const json = await parseHcl(f, src);
		m.text += JSON.stringify(json);
		m.strings.push(...strings(json));
		for (const k of ["variable", "output", "module"] as const) Object.assign(m[k], json[k] ?? {});
		for (const k of ["resource", "data"] as const)
			for (const [type, byName] of Object.entries(json[k] ?? {})) m[k][type] = { ...(m[k][type] ?? {}), ...(byName as Block) };
	}
	return m;
}

const first = (v: any) => (Array.isArray(v) ? v[0] : v);
const ref = (name: string) => "${" + name + "}";

function envFile(file: string): Record<string, string> {
	const env: Record<string, string> = {};
	for (const line of fs.readFileSync(path.join(ROOT, "k8s", file), "utf8").split("\n")) {
		const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
		if (m) env[m[1]] = m[2];
	}
	return env;
}

/** The gateway's port as its pods load it: config.env and the region's region.env (KAFKA_BROKERS is per region). */
function gatewayPort(): number {
	// The secrets come from a Secret at run time; a node with NATS_URL set refuses to load without them.
	const secrets = { JWT_SECRET: "stand-in-jwt-secret-of-at-least-32-chars", INTERNAL_SECRET: "stand-in-internal-secret-of-at-least-32-chars" };
	const overlays = fs.readdirSync(path.join(ROOT, "k8s", "overlays"));
	const ports = new Set(overlays.map(o => loadConfig({ ...envFile("base/config.env"), ...envFile(`overlays/${o}/region.env`), ...secrets }).port));
	if (ports.size !== 1) throw new Error(`the overlays' gateways listen on different ports: ${[...ports].join(", ")}`);
	return [...ports][0];
}

function readinessPath(): string {
	const route = (ApiService.settings as any).routes.find((r: any) => Object.values(r.aliases ?? {}).includes("api.ready"));
	const alias = Object.entries(route.aliases).find(([, a]) => a === "api.ready")![0].replace(/^GET\s+/, "");
	return `${route.path}/${alias}`;
}

function k8sDocs(file: string): any[] {
	return parseAllDocuments(fs.readFileSync(path.join(ROOT, "k8s", file), "utf8")).map(d => d.toJS());
}

describe("terraform", () => {
	let root: Module;
	const modules: Record<string, Module> = {};

	beforeAll(async () => {
		root = await loadModule(TF);
		for (const name of fs.readdirSync(path.join(TF, "modules"))) modules[`./modules/${name}`] = await loadModule(path.join(TF, "modules", name));
	});

	const all = () => [root, ...Object.values(modules)];

	it("calls every module with the variables it declares, and refers only to outputs and variables that exist", () => {
		for (const [name, call] of Object.entries(root.module)) {
			const c = first(call);
			const mod = modules[c.source];
			expect(mod, `module ${name}: ${c.source}`).toBeTruthy();
			const passed = Object.keys(c).filter(k => !META.includes(k));
			expect(passed.filter(k => !(k in mod.variable)), `module ${name} passes undeclared`).toEqual([]);
			const required = Object.entries(mod.variable).filter(([, v]) => !("default" in first(v))).map(([k]) => k);
			expect(required.filter(k => !passed.includes(k)), `module ${name} misses`).toEqual([]);
		}
		for (const m of Object.values(modules).concat(root)) {
			for (const [, v] of m.text.matchAll(/\bvar\.(\w+)/g)) expect(m.variable, `${m.dir}: var.${v}`).toHaveProperty(v);
			for (const [, mod, out] of m.text.matchAll(/\bmodule\.(\w+)(?:\[[^\]]+\])?\.(\w+)/g)) {
				const call = first(root.module[mod]);
				expect(call, `${m.dir}: module.${mod}`).toBeTruthy();
				expect(modules[call.source].output, `${m.dir}: module.${mod}.${out}`).toHaveProperty(out);
			}
			// `for r, m in module.region : ... m.output_name`
			for (const expr of m.strings)
				for (const [, item, mod] of expr.matchAll(/for \w+, (\w+) in module\.(\w+)\s*:/g))
					for (const [, out] of expr.matchAll(new RegExp(`\\b${item}\\.(\\w+)`, "g")))
						expect(modules[first(root.module[mod]).source].output, `${m.dir}: ${item}.${out} of module.${mod}`).toHaveProperty(out);
		}
	});

	it("health-checks the gateway's readiness path on the port the code listens on", () => {
		const lb = modules["./modules/global-lb"];
		const call = first(root.module.global_lb);
		const hc = first(first(lb.resource.google_compute_health_check.gateway).http_health_check);
		expect(hc.request_path).toBe(ref("var.health_path"));
		expect(hc.port).toBe(ref("var.health_port"));
		expect(call.health_path).toBe(readinessPath());
		expect(call.health_port).toBe(ref("var.gateway_health_port"));
		expect(first(root.variable.gateway_health_port).default).toBe(gatewayPort());
		// The backends are the NEGs GKE creates for the gateway Service, by the name its annotation gives.
		const svc = k8sDocs("base/service.yaml")[0];
		const neg = JSON.parse(svc.metadata.annotations["cloud.google.com/neg"]);
		const [[negPort, { name: negName }]] = Object.entries<any>(neg.exposed_ports);
		expect(call.neg_name).toBe(ref("var.gateway_neg_name"));
		expect(first(root.variable.gateway_neg_name).default).toBe(negName);
		expect(svc.spec.ports.find((p: any) => String(p.port) === negPort)?.targetPort).toBe("http");
		const backend = first(lb.resource.google_compute_backend_service.gateway);
		expect(backend.health_checks).toEqual([ref("google_compute_health_check.gateway.id")]);
		expect(first(lb.data.google_compute_network_endpoint_group.gateway).name).toBe(ref("var.neg_name"));
		// The load balancer stops sending before the pod stops serving: draining ends within the preStop sleep.
		const gateway = k8sDocs("base/roles/gateway.yaml").find(d => d.kind === "Deployment");
		const preStop = gateway.spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds;
		expect(first(lb.variable.drain_seconds).default).toBeLessThanOrEqual(preStop);
		expect(backend.connection_draining_timeout_sec).toBe(ref("var.drain_seconds"));
		// The firewall admits the same sources as the gateway's NetworkPolicy, on the health port.
		const fw = first(lb.resource.google_compute_firewall.lb_to_gateway);
		const policy = k8sDocs("base/network-policy.yaml").find(p => p.metadata.name === "gateway-from-load-balancer");
		expect(fw.source_ranges).toEqual(policy.spec.ingress[0].from.map((f: any) => f.ipBlock.cidr));
		expect(first(fw.allow).ports).toEqual([ref("tostring(var.health_port)")]);
	});

	it("builds every region with its cluster, Redis, private database with backups, and Kafka", () => {
		const region = modules["./modules/region"];
		const overlays = fs.readdirSync(path.join(ROOT, "k8s", "overlays")).sort();
		expect(Object.keys(first(root.variable.regions).default).sort()).toEqual([...loadConfig({}).regions].sort());
		expect(Object.keys(first(root.variable.regions).default).sort()).toEqual(overlays);
		for (const call of ["region", "mirror"]) expect(first(root.module[call]).for_each, call).toBe(ref("var.regions"));
		for (const type of ["google_container_cluster", "google_container_node_pool", "google_redis_instance", "google_sql_database_instance", "google_managed_kafka_cluster", "google_managed_kafka_connect_cluster"])
			expect(Object.keys(region.resource[type] ?? {}), type).toHaveLength(1);
		const cluster = first(Object.values(region.resource.google_container_cluster)[0]);
		expect(first(cluster.workload_identity_config).workload_pool).toBeTruthy();
		expect(cluster.datapath_provider, "NetworkPolicy enforcement").toBe("ADVANCED_DATAPATH");
		expect(first(cluster.private_cluster_config).enable_private_nodes).toBe(true);
		const settings = first(first(Object.values(region.resource.google_sql_database_instance)[0]).settings);
		const ip = first(settings.ip_configuration);
		expect(ip.ipv4_enabled, "no public IP").toBe(false);
		expect(ip.private_network).toBeTruthy();
		const backups = first(settings.backup_configuration);
		expect(backups.enabled).toBe(true);
		expect(backups.point_in_time_recovery_enabled).toBe(true);
		expect(settings.availability_type).toBe("REGIONAL");
		const redis = first(Object.values(region.resource.google_redis_instance)[0]);
		expect(redis.tier).toBe("STANDARD_HA");
		expect(redis.connect_mode).toBe("PRIVATE_SERVICE_ACCESS");
		expect(first(root.module.mirror).sources).toContain("kafka_bootstrap");
		// terraform writes every key the overlays' region.env files hold.
		const envOut = JSON.stringify(root.output.k8s_region_env);
		for (const o of overlays) {
			const keys = fs.readFileSync(path.join(ROOT, "k8s", "overlays", o, "region.env"), "utf8").split("\n").filter(l => /^[A-Z]/.test(l)).map(l => l.split("=")[0]);
			expect(keys.filter(k => !envOut.includes(`${k}=`)), `${o}/region.env keys terraform does not output`).toEqual([]);
		}
	});

	it("types, describes and validates its variables, and describes its outputs", () => {
		for (const m of all()) {
			for (const [name, v] of Object.entries(m.variable)) {
				const d = first(v);
				expect(d.type, `${m.dir} var.${name}: type`).toBeTruthy();
				expect(String(d.description ?? "").length, `${m.dir} var.${name}: description`).toBeGreaterThan(10);
			}
			for (const [name, o] of Object.entries(m.output)) expect(String(first(o).description ?? "").length, `${m.dir} output ${name}`).toBeGreaterThan(10);
		}
		const unvalidated = Object.entries(root.variable).filter(([, v]) => first(v).type !== "${bool}" && !first(v).validation).map(([k]) => k);
		expect(unvalidated, "root variables without validation").toEqual([]);
	});

	it("creates every secret the ExternalSecret reads, and lets the External Secrets account of each region read it", () => {
		const external = k8sDocs("base/secrets.yaml").find(d => d.kind === "ExternalSecret");
		// The base names the region REGION (k8s/components/region puts the overlay's region in its place).
		const wanted = external.spec.data.map((d: any) => d.remoteRef.key as string).sort();
		const region = modules["./modules/region"];
		const secretsOf = (m: Module) =>
			Object.entries<any>(m.resource.google_secret_manager_secret ?? {}).map(([name, r]) => ({ name, id: String(first(r).secret_id).replace(ref("var.region"), "REGION") }));
		const shared = secretsOf(root);
		const perRegion = secretsOf(region);
		expect([...shared, ...perRegion].map(x => x.id).sort()).toEqual(wanted);
		// Shared ones come in as variables of the region module; its own are granted by reference.
		const grants = JSON.stringify(first(region.resource.google_secret_manager_secret_iam_member.secrets).for_each);
		for (const { name } of perRegion) expect(grants, `wallet-REGION secret ${name} is not readable by the External Secrets account`).toContain(`google_secret_manager_secret.${name}.id`);
		const call = first(root.module.region);
		for (const { name } of shared) {
			const variable = Object.entries<string>(call).find(([, v]) => v === ref(`google_secret_manager_secret.${name}.id`))?.[0];
			expect(variable, `shared secret ${name} is not passed to the region module`).toBeTruthy();
			expect(grants, `shared secret ${name} is not readable by the External Secrets account`).toContain(`var.${variable}`);
		}
	});

	it("keeps secrets out of state and grants no broad roles", () => {
		for (const m of all()) {
			for (const type of ["random_password", "random_string", "tls_private_key", "google_secret_manager_secret_version", "google_service_account_key"])
				expect(m.resource[type], `${m.dir}: ${type} puts a secret in the state`).toBeUndefined();
			for (const u of Object.values<any>(m.resource.google_sql_user ?? {})) {
				expect(first(u).type).toMatch(/^CLOUD_IAM_/);
				expect(first(u).password).toBeUndefined();
			}
			for (const type of ["google_project_iam_member", "google_project_iam_binding", "google_project_iam_policy"])
				for (const [name, b] of Object.entries<any>(m.resource[type] ?? {})) {
					const b0 = first(b);
					expect(type, `${m.dir} ${name}`).not.toBe("google_project_iam_policy");
					const roles = b0.for_each ? [...JSON.stringify(b0.for_each).matchAll(/roles\/[\w.]+/g)].map(r => r[0]) : [b0.role];
					expect(roles.length, `${m.dir} ${name}`).toBeGreaterThan(0);
					for (const role of roles) expect(role, `${m.dir} ${type}.${name}`).not.toMatch(/owner|editor|admin/i);
				}
		}
		expect(parseYaml(fs.readFileSync(path.join(ROOT, "k8s", "base", "secrets.yaml"), "utf8").split("---")[1]).kind).toBe("ExternalSecret");
	});
});
