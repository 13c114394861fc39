import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		pool: "forks",
		// Two cores: integration files start real brokers and PostgreSQL databases.
		maxWorkers: 2,
		testTimeout: 60_000,
		hookTimeout: 60_000,
		env: { NODE_ENV: "test" },
	},
});
