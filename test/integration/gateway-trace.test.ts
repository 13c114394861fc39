// A client's X-Request-ID names its request in logs and answers, but never a trace: two clients
// sending the same id get two traces, each with the client's id as a tag.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestRegion, type Region } from "../helpers/cluster";
import type { TestDatabase } from "../helpers/db";
import { Client } from "../helpers/http";

let collector: http.Server;
const spans: any[] = [];
let region: Region & { db: TestDatabase };

beforeAll(async () => {
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
		nodes: [["api", "supply", "order", "claiming"]],
		env: { TRACING_EXPORTER: "zipkin", TRACING_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}` },
	});
});

afterAll(async () => {
	await region?.stop();
	await new Promise(r => collector.close(r));
});

it("two requests with the same X-Request-ID get two traces, each tagged with it", async () => {
	const a = await Client.as(region.apiUrl, "trace-a");
	const b = await Client.as(region.apiUrl, "trace-b");
	const ra = await a.get("/api/v1/supplies", { "x-request-id": "same-id-1" });
	const rb = await b.get("/api/v1/supplies", { "x-request-id": "same-id-1" });
	expect([ra.status, rb.status]).toEqual([200, 200]);
	expect([ra.headers.get("x-request-id"), rb.headers.get("x-request-id")]).toEqual(["same-id-1", "same-id-1"]);
	const tagged = () => spans.filter(sp => sp.tags?.requestId === "same-id-1");
	// Each request: the gateway's span and the action's.
	await expect.poll(() => tagged().length, { timeout: 10_000, interval: 200 }).toBeGreaterThanOrEqual(4);
	const traces = new Set(tagged().map(sp => sp.traceId));
	expect(traces.size).toBe(2);
	// Each trace is whole (the gateway's span, the action's, its SQL), and every span of it carries the tag.
	for (const traceId of traces) {
		const trace = spans.filter(sp => sp.traceId === traceId);
		expect(trace.map(sp => sp.name)).toEqual(expect.arrayContaining(["GET /api/v1/supplies", "action 'supply.list'", "sql SELECT"]));
		expect(trace.every(sp => sp.tags?.requestId === "same-id-1")).toBe(true);
	}
});
