// Home region as single writer: a write sent to a region that does not own the entity's home region is run
// by the region that does, and answered as if it were local; X-Region names the region that served it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { forwardedWritesFlow } from "../helpers/forwarding-flow";
import { Client } from "../helpers/http";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 2 });
});
afterAll(async () => rs?.stop());

describe("writes through another region", () => {
	it("are forwarded to the home region and answer exactly as there", () => forwardedWritesFlow(rs));

	it("reads are served by the region asked, from its copy", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(a.apiUrl, "erin")).post("/api/v1/supplies", { asset: "BTC", amount: "0.5" })).body;
		await converged(rs);
		const read = await (await Client.as(b.apiUrl, "erin")).get(`/api/v1/supplies/${supply.id}`);
		expect(read.status).toBe(200);
		expect(read.headers.get("x-region")).toBe(b.name);
		expect(read.body).toEqual(supply);
	});
});
