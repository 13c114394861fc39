// Stryker's view of the tests for src/store (the SQL side): the tests that run the store's code against a real
// PostgreSQL (commands, their agreement with the domain, the sweeper, lists and the REST contract on one node),
// and store.test.ts for what those do not read (each refusal's body, creates, events, rows, list filters and bounds).
import { defineConfig } from "vitest/config";
import base from "./vitest.config.mts";

export default defineConfig({
	...base,
	test: {
		...base.test,
		include: [
			"test/integration/commands.test.ts",
			"test/integration/commands-spec.test.ts",
			"test/integration/sweeper.test.ts",
			"test/integration/api.test.ts",
			"test/integration/store.test.ts",
		],
		setupFiles: ["test/unit/fixed-seed.setup.ts"],
		reporters: ["default"],
		outputFile: undefined,
	},
});
