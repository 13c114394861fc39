// What a region's link runs of a call from another region (src/regions/bridge.ts, runHere). A call that reaches it
// after its caller gave up is not run: requests wait in Kafka for a link node that is down and arrive when it is
// back. Only actions that check their caller run; one with no live node here is unreachable, not forbidden.
import { type Context, ServiceBroker } from "moleculer";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CallParams, runHere } from "../../src/regions/bridge";

let broker: ServiceBroker;
let runs = 0;
beforeAll(async () => {
	broker = new ServiceBroker({ logger: false });
	broker.createService({
		name: "thing",
		actions: {
			write: {
				permission: "internal",
				handler: () => {
					runs++;
					return "written";
				},
			} as never,
			// No permission: nothing vouches for a caller from another region.
			open: () => "ran",
		},
	});
	await broker.start();
});
afterAll(() => broker.stop());

const call = (deadline?: number, action = "thing.write") =>
	runHere(broker, { params: { action, deadline }, options: {}, requestID: "r1" } as unknown as Context<CallParams>, 1000);

it("runs a call within its caller's deadline", async () => {
	await expect(call(Date.now() + 1000)).resolves.toMatchObject({ result: "written" });
	expect(runs).toBe(1);
});

it("refuses one that arrives after it, without running it", async () => {
	await expect(call(Date.now() - 1)).rejects.toMatchObject({ code: 504, type: "LINK_DEADLINE_PASSED" });
	expect(runs).toBe(1);
});

it("refuses an action that does not check its caller", async () => {
	await expect(call(undefined, "thing.open")).rejects.toMatchObject({ code: 403, type: "FORBIDDEN" });
});

it("answers an action with no live node here as unreachable, to be retried (a role moving to its standby)", async () => {
	await expect(call(undefined, "regions.ping")).rejects.toMatchObject({ code: 503, type: "SERVICE_NOT_AVAILABLE", retryable: true });
});
