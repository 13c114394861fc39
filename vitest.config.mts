import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		// The many-process tests run after the rest, alone (vitest.processes.config.mts; `npm test` runs both).
		exclude: ["test/regions/cluster.test.ts", "test/regions/cluster-role.test.ts", "node_modules/**"],
		pool: "forks",
		// Two cores: integration files start real brokers and PostgreSQL databases.
		maxWorkers: 2,
		testTimeout: 60_000,
		hookTimeout: 60_000,
		env: { NODE_ENV: "test" },
		// CI also writes a JSON report, from which .ci/run prints a plain "N passed, N failed" line.
		reporters: process.env.CI ? ["default", "json"] : ["default"],
		outputFile: process.env.CI ? { json: "test-results.json" } : undefined,
	},
});
