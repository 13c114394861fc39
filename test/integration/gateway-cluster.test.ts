// Input that only hurts once it crosses the transporter: a body nested deep enough to overflow the JSON
// serializer answered 500, and enough of them opened the action's breaker for every user. The gateway
// refuses it (400) before any call, so one user's input cannot take an action down.
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { Client } from "../helpers/http";

let region: Region & { db: TestDatabase };

beforeAll(async () => {
	region = await startTestRegion({
		nodes: [["api"], ["supply", "order", "claiming"]],
		nats: true,
		env: { RATE_LIMIT: "100000", BREAKER_MIN_REQUESTS: "5" },
	});
});

afterAll(async () => {
	await region?.stop();
});

it("a deeply nested or non-object body is a 400, and many of them leave the action up for others", async () => {
	const attacker = await Client.as(region.apiUrl, "deep-attacker");
	const deep = `{"asset":"ETH","amount":"1","x":${"[".repeat(5000)}${"]".repeat(5000)}}`;
	for (let i = 0; i < 25; i++) {
		const r = await attacker.post("/api/v1/supplies", i % 2 ? deep : `[${deep}]`);
		expect(r.status, JSON.stringify(r.body)).toBe(400);
		expect(r.body.error.code).toBe("INVALID_BODY");
	}
	const other = await Client.as(region.apiUrl, "deep-bystander");
	const ok = await other.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
	expect(ok.status, JSON.stringify(ok.body)).toBe(201);
});

it("a node that runs only the gateway holds no database pool; its readiness checks what it uses", async () => {
	const gateway = region.brokers[0];
	expect(gateway.getLocalService("api")).toBeTruthy();
	expect((gateway.getLocalService("api") as unknown as { pool?: unknown }).pool).toBeUndefined();
	const health = (await gateway.call("api.health")) as { status: string; checks: Record<string, string> };
	expect(health).toMatchObject({ status: "ready", checks: { postgres: "not used", transporter: "ok" } });
	// The services' node does use the database.
	expect(((await region.brokers[1].call("$node.health")) as { cpu: unknown }).cpu).toBeDefined();
	expect((region.brokers[1].getLocalService("supply") as unknown as { pool?: unknown }).pool).toBeDefined();
});
