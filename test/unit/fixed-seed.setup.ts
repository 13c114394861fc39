// Mutation testing only (vitest.stryker.config.mts): @fast-check/vitest puts the seed in each test's name,
// and Stryker finds tests by name between its runs, so the seed must not change from one run to the next.
import { fc } from "@fast-check/vitest";

fc.configureGlobal({ seed: 20261125 });
