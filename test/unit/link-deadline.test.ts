// A call that reaches a region's link after its caller gave up is not run (src/regions/bridge.ts, runHere):
// requests wait in Kafka for a link node that is down and arrive when it is back.
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
		},
	});
	await broker.start();
});
afterAll(() => broker.stop());

const call = (deadline?: number) =>
	runHere(broker, { params: { action: "thing.write", deadline }, options: {}, requestID: "r1" } as unknown as Context<CallParams>, 1000);

it("runs a call within its caller's deadline", async () => {
	await expect(call(Date.now() + 1000)).resolves.toMatchObject({ result: "written" });
	expect(runs).toBe(1);
});

it("refuses one that arrives after it, without running it", async () => {
	await expect(call(Date.now() - 1)).rejects.toMatchObject({ code: 504, type: "LINK_DEADLINE_PASSED" });
	expect(runs).toBe(1);
});
