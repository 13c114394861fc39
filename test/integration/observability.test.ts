// A request can be followed: its X-Request-ID is on every log line it caused, on every node, and on
// the spans of its trace (HTTP, actions, SQL, cache) exported to a Zipkin-compatible collector.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { REDIS_URL } from "../helpers/env";
import { Client, item, tokenFor } from "../helpers/http";

type Line = Record<string, any>;
const lines: Line[] = [];
const rawLines: string[] = [];
const sink = {
	write(chunk: string) {
		for (const l of chunk.split("\n").filter(Boolean)) {
			rawLines.push(l);
			lines.push(JSON.parse(l));
		}
	},
};

const spans: Record<string, any>[] = [];
let collector: http.Server;
let region: Region & { db: TestDatabase };

beforeAll(async () => {
	// A stand-in for Jaeger's or an OpenTelemetry collector's Zipkin receiver.
	collector = http.createServer((req, res) => {
		let body = "";
		req.on("data", d => (body += d));
		req.on("end", () => {
			if (req.url === "/api/v2/spans") spans.push(...JSON.parse(body));
			res.writeHead(202).end();
		});
	});
	await new Promise<void>(r => collector.listen(0, "127.0.0.1", r));
	region = await startTestRegion({
		redisUrl: REDIS_URL,
		nats: true,
		nodes: [["api"], ["supply", "order"], ["claiming"]],
		logSink: sink,
		env: {
			LOG_LEVEL: "info",
			TRACING_EXPORTER: "zipkin",
			TRACING_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
		},
	});
});

afterAll(async () => {
	await region?.stop();
	await new Promise(r => collector?.close(r));
});

describe("following a request", () => {
	it("through the logs of every node it touched, with tokens redacted", async () => {
		const shopper = await Client.as(region.apiUrl, "obs-shopper");
		const buyer = await Client.as(region.apiUrl, "obs-buyer");
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "3" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] }, { "x-request-id": "obs-order-1" })).body;
		const c = await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "obs-1", "x-request-id": "obs-claim-1" });
		expect(c.status).toBe(201);
		const bad = await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "obs-2", "x-request-id": "obs-conflict-1" });
		expect(bad.status).toBe(409);

		const of = (id: string) => lines.filter(l => l.requestId === id);
		await expect.poll(() => of("obs-claim-1").length).toBeGreaterThan(1);
		const claimLines = of("obs-claim-1");
		// The gateway's access log and the claiming node's state change, both carrying the id.
		expect(new Set(claimLines.map(l => l.nodeID))).toEqual(new Set(["api-0", "claiming-2"]));
		expect(claimLines.some(l => l.nodeID === "api-0" && /POST \/api\/v1\/claims 201/.test(l.msg))).toBe(true);
		expect(claimLines.some(l => l.nodeID === "claiming-2" && /claimed/.test(l.msg) && l.claimId === c.body.id)).toBe(true);
		// Every line names its region, node and service; Moleculer's log objects survive pino.
		for (const l of claimLines) expect(l).toMatchObject({ region: "us-central1", ns: region.namespace });
		expect(of("obs-order-1").some(l => l.nodeID === "supply+order-1" && l.svc === "order" && l.asset === "ETH")).toBe(true);
		expect(of("obs-conflict-1").some(l => /409 ORDER_NOT_OPEN/.test(l.msg))).toBe(true);

		const token = await tokenFor("obs-shopper");
		expect(rawLines.some(l => l.includes(token.split(".")[2]))).toBe(false);
	});

	it("through its trace: HTTP, action, SQL and cache spans tagged with the request id", async () => {
		const shopper = await Client.as(region.apiUrl, "trace-shopper");
		const buyer = await Client.as(region.apiUrl, "trace-buyer");
		const s = (await shopper.post("/api/v1/supplies", { asset: "ETH", amount: "3" })).body;
		const o = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("1")] })).body;
		await shopper.post("/api/v1/claims", { orderId: o.id, supplyId: s.id }, { "idempotency-key": "trace-1", "x-request-id": "trace-claim-1" });
		await buyer.get(`/api/v1/orders/${o.id}`, { "x-request-id": "trace-read-1" });

		const traceOf = (id: string) => spans.filter(sp => sp.tags?.requestId === id);
		await expect.poll(() => traceOf("trace-claim-1").map(sp => sp.name), { timeout: 10_000, interval: 250 }).toEqual(
			// The whole claim is one statement: SELECT order_commands(...).
			expect.arrayContaining(["POST /api/v1/claims", "action 'claiming.claim'", "action 'claiming.command'", "sql SELECT"]),
		);
		const claimTrace = traceOf("trace-claim-1");
		// One trace, spanning the gateway node and the claiming node.
		expect(new Set(claimTrace.map(sp => sp.traceId)).size).toBe(1);
		expect(new Set(claimTrace.map(sp => sp.localEndpoint?.serviceName))).toEqual(new Set(["api", "claiming"]));
		await expect.poll(() => traceOf("trace-read-1").map(sp => sp.name), { timeout: 10_000, interval: 250 }).toEqual(
			expect.arrayContaining(["GET /api/v1/orders/" + o.id, "action 'order.get'", "cache get"]),
		);
		// Spans carry no params or tokens.
		expect(JSON.stringify(claimTrace)).not.toContain("trace-shopper");
	});
});
