// The alert rules and their scenarios (monitoring/prometheus/alerts.test.yml) through promtool, as
// monitoring/README.md tells an operator to check them. `.ci/run` installs promtool (Debian's prometheus package).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const DIR = path.resolve(__dirname, "..", "..", "monitoring", "prometheus");
const hasPromtool = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0;
if (!hasPromtool) console.warn("alert-rules: promtool is not installed; skipping (apt-get install --no-install-recommends prometheus)");
const promtool = (...args: string[]) => spawnSync("promtool", args, { cwd: DIR, encoding: "utf8", timeout: 60_000 });

describe.skipIf(!hasPromtool)("the alert rules (promtool)", () => {
	it("are valid rules", () => {
		const r = promtool("check", "rules", "alerts.yml");
		expect(r.status, r.stdout + r.stderr).toBe(0);
	});

	it("fire, and stay quiet, as their scenarios say", () => {
		const r = promtool("test", "rules", "alerts.test.yml");
		expect(r.status, r.stdout + r.stderr).toBe(0);
		expect(r.stdout).toContain("SUCCESS");
	});
});
