// The Dockerfile and .dockerignore, parsed (dockerfile-ast): building the image needs a registry for the base
// image, which this machine has not. The checks hold the image to what the code and the manifests expect.
import fs from "node:fs";
import path from "node:path";
import { DockerfileParser, type Copy, type Instruction, type JSONInstruction } from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../../config";

const ROOT = path.resolve(__dirname, "..", "..");
const dockerfile = DockerfileParser.parse(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8"));
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

type Stage = { name: string; image: string; instructions: Instruction[] };

/** Stages in order, with the base image's ARG defaults substituted. */
function stages(): Stage[] {
	const args = new Map<string, string>();
	for (const a of dockerfile.getInitialARGs())
		for (const p of a.getProperties()) if (p.getValue() !== null) args.set(p.getName(), p.getValue()!);
	const out: Stage[] = [];
	for (const ins of dockerfile.getInstructions()) {
		if (ins.getKeyword() === "FROM") {
			const words = ins.getArguments().map(a => a.getValue());
			const image = words[0].replace(/\$\{?(\w+)\}?/g, (_, n) => args.get(n) ?? `$${n}`);
			out.push({ name: words[2] ?? String(out.length), image, instructions: [] });
		} else if (out.length) out[out.length - 1].instructions.push(ins);
	}
	return out;
}

const keyword = (s: Stage, k: string) => s.instructions.filter(i => i.getKeyword() === k);
const fromStage = (c: Instruction) => (c as Copy).getFromFlag()?.getValue() ?? null;
const copyArgs = (c: Instruction) => c.getArguments().map(a => a.getValue());
const jsonArgs = (i: Instruction) => (i as JSONInstruction).getJSONStrings().map(a => JSON.parse(a.getValue()) as string);

function ignorePatterns(): string[] {
	return fs.readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map(l => l.trim()).filter(l => l && !l.startsWith("#"));
}

/** Docker's matching, for the patterns this repository uses: `**` crosses folders, `*` does not. */
function ignored(file: string, patterns = ignorePatterns()): boolean {
	let out = false;
	for (const p of patterns) {
		const negate = p.startsWith("!");
		const glob = (negate ? p.slice(1) : p).replace(/^\/|\/$/g, "");
		const re = new RegExp(`^${glob.replace(/[.+^$()|[\]{}]/g, "\\$&").replace(/\*\*\//g, "\0").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]").replace(/\0/g, "(.*/)?")}(/.*)?$`);
		if (re.test(file)) out = !negate;
	}
	return out;
}

describe("Dockerfile", () => {
	const all = stages();
	const runtime = all[all.length - 1];

	it("builds in stages and runs on a slim base of the Node major the project pins", () => {
		expect(all.map(s => s.name)).toEqual(["build", "deps", "runtime"]);
		const major = pkg.devDependencies.node.split(".")[0];
		for (const s of all) expect(s.image, s.name).toMatch(new RegExp(`^node:${major}(\\.[\\d.]+)?-[a-z]+-slim(@sha256:[0-9a-f]{64})?$`));
		expect(pkg.engines.node).toMatch(new RegExp(`^>=${major}\\.`));
	});

	it("installs dev dependencies only to type-check, and ships production dependencies only", () => {
		const runs = (s: Stage) => keyword(s, "RUN").map(r => r.getArgumentsContent() ?? "");
		expect(runs(all[0]).some(r => /npm ci\b/.test(r) && !r.includes("--omit=dev")), "build: npm ci with dev dependencies").toBe(true);
		expect(runs(all[0]).some(r => /tsc -p \./.test(r)), "build: type-check").toBe(true);
		expect(runs(all[1]).some(r => /npm ci\b.*--omit=dev/.test(r)), "deps: npm ci --omit=dev").toBe(true);
		expect(runs(runtime), "runtime installs nothing").toEqual([]);
		const copies = keyword(runtime, "COPY");
		expect(copies.filter(c => copyArgs(c).some(a => a.includes("node_modules"))).map(c => [fromStage(c), ...copyArgs(c)])).toEqual([["deps", "/app/node_modules", "./node_modules"]]);
		expect(copies.map(fromStage).filter(f => f === null), "runtime copies from stages only, never the context").toEqual([]);
	});

	it("copies every runtime source folder the type-check covers, and nothing .dockerignore drops", () => {
		const tsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, "tsconfig.json"), "utf8"));
		const needed = tsconfig.include.filter((p: string) => !["test", "bench", "vitest.config.mts"].includes(p));
		const copied = keyword(runtime, "COPY").flatMap(c => copyArgs(c).slice(0, -1)).map(s => s.replace(/^\/app\//, ""));
		expect(needed.filter((p: string) => !copied.includes(p)), "runtime lacks").toEqual([]);
		expect(copied).toContain("migrations");
		expect(copied).toContain("package.json");
		const fromContext = all.flatMap(s => keyword(s, "COPY")).filter(c => fromStage(c) === null).flatMap(c => copyArgs(c).slice(0, -1));
		expect(fromContext.filter(f => ignored(f)), "copied but ignored").toEqual([]);
		expect(fromContext.filter(f => f === "." || f.includes("*")), "no wholesale COPY").toEqual([]);
	});

	it("keeps secrets, local state and source maps out of the build context", () => {
		for (const f of [".env", ".env.production", "config/.env", "data/postgres/PG_VERSION", "node_modules/x/index.js", ".git/config", "certs/tls.key", "certs/ca.pem", "src/lib/jwt.js.map", "terraform/terraform.tfstate", "terraform/prod.tfvars", "gcp-credentials.json"])
			expect(ignored(f), f).toBe(true);
		for (const f of ["src/lib/jwt.ts", "services/api.service.ts", "package-lock.json", "migrations/001_init.sql", "tsconfig.json"]) expect(ignored(f), f).toBe(false);
		for (const ins of dockerfile.getInstructions().filter(i => ["ENV", "ARG", "LABEL"].includes(i.getKeyword())))
			expect(ins.getArgumentsContent(), "a secret in the image's metadata").not.toMatch(/SECRET|PASSWORD|TOKEN|_KEY\b/i);
	});

	it("runs as a numeric non-root user, the one the manifests run as", () => {
		const users = keyword(runtime, "USER").map(u => u.getArgumentsContent()!);
		expect(users).toHaveLength(1);
		const [uid, gid] = users[0].split(":").map(Number);
		expect(uid).toBeGreaterThan(0);
		expect(gid).toBeGreaterThan(0);
		for (const f of ["base/roles/gateway.yaml", "base/roles/core.yaml", "base/roles/claiming.yaml", "base/migrate-job.yaml"]) {
			const docs = parseAllDocuments(fs.readFileSync(path.join(ROOT, "k8s", f), "utf8")).map(d => d.toJS());
			const pod = docs.find(d => d.kind === "Deployment" || d.kind === "Job").spec.template.spec;
			expect(pod.securityContext.runAsUser, f).toBe(uid);
			expect(pod.securityContext.runAsGroup, f).toBe(gid);
		}
	});

	it("starts what `npm start` starts, as PID 1, and exposes the ports the code listens on", () => {
		const cmds = keyword(runtime, "CMD");
		expect(cmds).toHaveLength(1);
		expect(keyword(runtime, "ENTRYPOINT")).toHaveLength(0);
		const start = (pkg.scripts.start as string).match(/'[^']*'|\S+/g)!.map(w => w.replace(/^'(.*)'$/, "$1"));
		expect(jsonArgs(cmds[0]), "exec form of the start script").toEqual(start);
		const cfg = loadConfig({});
		const exposed = keyword(runtime, "EXPOSE").flatMap(e => e.getArguments().map(a => Number(a.getValue())));
		expect(exposed.sort()).toEqual([cfg.port, cfg.metrics.port].sort());
		// A decision either way, stated in the file: Kubernetes ignores HEALTHCHECK, the probes are in k8s/.
		expect(keyword(runtime, "HEALTHCHECK")).toHaveLength(1);
		const env = keyword(runtime, "ENV").map(e => e.getArgumentsContent()).join(" ");
		expect(env).toMatch(/NODE_ENV=production/);
	});
});
