// A region without a live node of a service (every node of it lost) sends the call to a healthy region, which
// answers as if it were local (X-Region names it); once only, and never for internal services.
import type { Service } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../helpers/http";
import { converged, startTestRegions, type TestRegions } from "../helpers/regions";

let rs: TestRegions;
beforeAll(async () => {
	rs = await startTestRegions({ count: 3 });
});
afterAll(async () => rs?.stop());

const without = async (region: (typeof rs.regions)[number], name: string) => {
	const svc = region.broker.getLocalService(name) as Service;
	await region.broker.destroyService(svc);
};

describe("a service with no live node in a region", () => {
	it("is served by the next healthy region, reads and writes, with the caller's identity", async () => {
		const [a, b] = rs.regions;
		const ann = await Client.as(a.apiUrl, "ann");
		const mine = (await ann.post("/api/v1/supplies", { asset: "ETH", amount: "2" })).body;
		await converged(rs);
		await without(a, "supply");
		// A read: b's copy, b's answer.
		const read = await ann.get(`/api/v1/supplies/${mine.id}`);
		expect([read.status, read.headers.get("x-region")]).toEqual([200, b.name]);
		expect(read.body).toEqual(mine);
		// A write of a's own supply: rerouted to b, which forwards it to a's owner (a), where the supply service
		// is gone too: the write is refused, retryable, and nothing changed.
		const paused = await ann.post(`/api/v1/supplies/${mine.id}/pause`);
		expect(paused.status).toBe(503);
		expect((await a.db.pool.query(`SELECT status FROM supplies WHERE id = $1`, [mine.id])).rows).toEqual([{ status: "active" }]);
		// A create: served by b (a new supply homed where it was written), with the caller as its owner.
		const made = await ann.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect([made.status, made.headers.get("x-region"), made.body.userId, made.body.homeRegion]).toEqual([201, b.name, "ann", b.name]);
		expect(made.headers.get("location")).toBe(`/api/v1/supplies/${made.body.id}`);
		// Another user cannot reach ann's supply through the detour either.
		expect((await (await Client.as(a.apiUrl, "bob")).get(`/api/v1/supplies/${mine.id}`)).status).toBe(404);
	});

	it("is not rerouted twice: with the service gone in the next region too, the caller gets the retryable 503", async () => {
		const [a, b, c] = rs.regions;
		await without(a, "order");
		await without(b, "order");
		const list = await (await Client.as(a.apiUrl, "ann")).get("/api/v1/orders");
		// a sends it to b (its next region), b has no node either and does not send it on to c.
		expect(list.status).toBe(503);
		// Through c, which has the service, it is served as ever.
		expect((await (await Client.as(c.apiUrl, "ann")).get("/api/v1/orders")).status).toBe(200);
	});
});
