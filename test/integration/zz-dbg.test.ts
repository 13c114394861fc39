import { it } from "vitest";
import { request } from "undici";
import { startTestRegion } from "../helpers/cluster";
import { rawRequest } from "../helpers/raw-http";
it("dbg", async () => {
	const r = await startTestRegion({ nodes: [["api", "supply", "order", "claiming"]] });
	const x = await rawRequest(r.apiUrl, "GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde");
	console.log("raw", x.status, x.text);
	const y = await request(r.apiUrl + "/health/live", { method: "GET", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: "abcde" });
	console.log("undici", y.statusCode, await y.body.text());
	await r.stop();
});
