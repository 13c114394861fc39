// The README's "Dependencies" table stays true: what it says is used is a dependency, what it says is not used is
// neither a dependency nor imported by the code, and every runtime dependency is named in the section.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "..", "..");
// The packages teams evaluating the backend ask about (issue "Production deployment", item 5).
const ASKED = ["moleculer", "moleculer-web", "moleculer-db", "kafkajs", "ioredis", "pg", "moleculer-prometheus", "nats", "pino", "lodash"];
const CODE = ["config", "services", "src", "mixins", "middlewares", "scripts", "moleculer.config.ts"];

function section(): string {
	const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
	const m = /\n## Dependencies\n([\s\S]*?)(?=\n## |$)/.exec(readme);
	if (!m) throw new Error('README has no "## Dependencies" section');
	return m[1];
}

function rows(): Map<string, boolean> {
	const out = new Map<string, boolean>();
	for (const m of section().matchAll(/^\| `([^`]+)` \| (yes|no) \|/gm)) out.set(m[1], m[2] === "yes");
	return out;
}

function imports(): Set<string> {
	const found = new Set<string>();
	const walk = (p: string) => {
		const full = path.join(ROOT, p);
		if (fs.statSync(full).isDirectory()) for (const f of fs.readdirSync(full)) walk(path.join(p, f));
		else if (p.endsWith(".ts"))
			for (const m of fs.readFileSync(full, "utf8").matchAll(/(?:from|import\(|require\()\s*["']((?:@[^/"']+\/)?[^/"']+)/g)) found.add(m[1]);
	};
	for (const p of CODE) walk(p);
	return found;
}

describe("README Dependencies", () => {
	const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
	const deps = Object.keys(pkg.dependencies);
	const all = new Set([...deps, ...Object.keys(pkg.devDependencies)]);

	it("answers for every package teams ask about, and says the truth about each", () => {
		const table = rows();
		expect([...table.keys()]).toEqual(ASKED);
		const used = imports();
		for (const [name, yes] of table) {
			if (yes) expect(deps, `${name} is marked used but is not a dependency`).toContain(name);
			else {
				expect(all.has(name), `${name} is marked unused but package.json has it`).toBe(false);
				expect(used.has(name), `${name} is marked unused but the code imports it`).toBe(false);
			}
		}
	});

	it("names every runtime dependency", () => {
		const text = section();
		expect(deps.filter(d => !text.includes(`\`${d}\``)), "dependencies the README does not explain").toEqual([]);
	});
});
