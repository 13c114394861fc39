// Stryker's view of the tests: the unit tests of the pure domain code (src/domain), which need no
// services. The other unit tests (config, jwt, mailbox) exercise other code and would only slow each mutant.
import { defineConfig } from "vitest/config";
import base from "./vitest.config.mts";

export default defineConfig({
	...base,
	test: {
		...base.test,
		include: ["test/unit/{money,order,claim,supply,permissions,views,http-errors}.test.ts", "test/unit/*.property.test.ts"],
		setupFiles: ["test/unit/fixed-seed.setup.ts"],
		reporters: ["default"],
		outputFile: undefined,
	},
});
