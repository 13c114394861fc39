// The tests whose system under test is many processes at once (`npm run cluster`: three regions × two nodes, a
// Kafka test broker, three nats-servers). They run after the rest of `npm test`, alone, so their load does not
// starve the timing-sensitive races of other files (and theirs is not starved either).
import { defineConfig } from "vitest/config";
import base from "./vitest.config.mts";

export const PROCESS_TESTS = ["test/regions/cluster.test.ts", "test/regions/cluster-role.test.ts"];

export default defineConfig({
	...base,
	test: {
		...base.test,
		include: PROCESS_TESTS,
		exclude: [],
		maxWorkers: 1,
		outputFile: process.env.CI ? { json: "test-results-processes.json" } : undefined,
	},
});
