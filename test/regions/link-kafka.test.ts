// The region link across processes (LINK=kafka): each region runs the link service, whose global broker joins
// the other region's on Kafka (the test broker, or KAFKA_BROKERS) through the link's Kafka transporter (src/regions/kafka-transporter.ts). The
// regions share this process, but nothing passes between them in it: forwarded writes and holds go over Kafka,
// events through the Kafka event log. Answers are the same as with the in-process link (forwarding.test.ts).
import { randomBytes, randomUUID } from "node:crypto";
import type { Service, ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import LinkService from "../../services/link.service";
import { checkInvariants } from "../../src/checker/invariants";
import { serviceContext } from "../../src/lib/request-context";
import { linkNodeID, linkTopics } from "../../src/regions/bridge";
import { regionLink } from "../../src/regions/link";
import { topicFor } from "../../src/replication/event-log";
import { kafkaForTests, type TestKafka } from "../../src/replication/kafka-mock";
import { claimIdFor } from "../../src/store/holds";
import { forwardedWritesFlow } from "../helpers/forwarding-flow";
import { Client, item, tokenFor } from "../helpers/http";
import { converged, REGION_NAMES, regionNodeID, startTestRegions, type TestRegion, type TestRegions } from "../helpers/regions";

let kafka: TestKafka;
let rs: TestRegions;

/** A context of the region's supply service: what a trusted caller of internal actions (link.*) looks like. */
const asSupply = (r: TestRegion) => serviceContext(r.broker.getLocalService("supply") as Service);
const liveRegions = (r: TestRegion) => asSupply(r).call<string[], unknown>("link.regions", {});

/** Waits until `r`'s link sees exactly `regions` on the global namespace. */
async function linkSees(r: TestRegion, regions: string[], timeoutMs: number) {
	const until = Date.now() + timeoutMs;
	let seen: string[] = [];
	while (Date.now() < until) {
		seen = await liveRegions(r);
		if (JSON.stringify(seen) === JSON.stringify(regions)) return;
		await new Promise(res => setTimeout(res, 100));
	}
	throw new Error(`${r.name}'s link sees ${JSON.stringify(seen)} after ${timeoutMs} ms, not ${JSON.stringify(regions)}`);
}

beforeAll(async () => {
	const names = REGION_NAMES.slice(0, 2);
	const prefix = `t${randomUUID().slice(0, 8)}`;
	const namespace = `t${randomBytes(4).toString("hex")}`;
	// The test broker serves no CreateTopics: the event log's topics and every topic of the link nodes, up front.
	const topics = [
		...names.map(r => topicFor(prefix, r)).map(name => ({ name, partitions: 4 })),
		...linkTopics(`${namespace}-global`, names.map(n => linkNodeID(n, regionNodeID(n)))).map(name => ({ name, partitions: 1 })),
	];
	kafka = await kafkaForTests(topics);
	rs = await startTestRegions({
		count: 2,
		namespace,
		services: [LinkService as ServiceSchema],
		env: {
			REPLICATION: "kafka",
			LINK: "kafka",
			KAFKA_BROKERS: kafka.brokers.join(","),
			KAFKA_TOPIC_PREFIX: prefix,
			KAFKA_SESSION_TIMEOUT_MS: kafka.mock ? "3000" : "10000",
			// Heartbeats every second; a node is dropped after 10 s of silence (a stopped one says so at once), so a
			// busy test machine does not make the regions lose each other.
			LINK_HEARTBEAT_TIMEOUT_SEC: "10",
			// B's resolver asks A about a hold whose claim has not shown up after 1 s.
			HOLD_CONFIRM_SEC: "3",
			REQUEST_TIMEOUT_MS: "2500",
			SWEEP_INTERVAL_MS: "200",
		},
	});
	// The global brokers start in the background (joining Kafka takes seconds): wait until each sees both.
	for (const r of rs.regions) await linkSees(r, names, 40_000);
}, 60_000);
afterAll(async () => {
	await rs?.stop();
	await kafka?.stop();
});

const p50 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const p90 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.9)];

describe("the region link over Kafka", () => {
	it("forwards writes to the home region and answers exactly as there", () =>
		forwardedWritesFlow(rs, {
			convergeMs: 30_000,
			// What the owner's action set in meta crosses back in the envelope: status, Location and the replay header.
			afterClaim: async ({ a, b, order, supply, key, claim }) => {
				const answered: Record<string, unknown> = { token: await tokenFor("carol") };
				const viaLink = await regionLink(b.broker)!.call<{ id: string }>(
					a.name,
					"claiming.claim",
					{ orderId: order.id, supplyId: supply.id, idempotencyKey: key },
					{ meta: answered, timeout: 5000, caller: asSupply(b) },
				);
				expect(viaLink.id).toBe(claim.id);
				expect(answered).toMatchObject({
					$statusCode: 201,
					$location: expect.stringContaining(claim.id),
					$responseHeaders: { "Idempotent-Replayed": "true" },
				});
			},
		}));

	it("holds a supply across regions (order in A, supply in B) over the link, and completes", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(b.apiUrl, "frank")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		const buyer = await Client.as(a.apiUrl, "frank-buyer");
		const order = (await buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] })).body;
		await converged(rs, 30_000);
		// Through B: forwarded to A (the order's), whose actor holds the funds in B: two crossings, one each way.
		const key = randomUUID();
		const claim = await (await Client.as(b.apiUrl, "frank")).post("/api/v1/claims", { orderId: order.id, supplyId: supply.id }, { "Idempotency-Key": key });
		expect(claim.status).toBe(201);
		expect(claim.headers.get("x-region")).toBe(a.name);
		expect(claim.body).toMatchObject({ id: claimIdFor("frank", key), orderId: order.id, supplyId: supply.id, amount: "0.4", region: a.name });
		// B reserved the funds when A asked, before any replication.
		expect((await b.db.pool.query(`SELECT reserved::text FROM supplies WHERE id = $1`, [supply.id])).rows[0].reserved).toBe("0.400000000000000000");
		const [hold] = (await b.db.pool.query(`SELECT claim_id, status FROM holds WHERE supply_id = $1`, [supply.id])).rows;
		expect(hold.claim_id).toBe(claim.body.id);
		expect(["held", "confirmed"]).toContain(hold.status);

		expect((await buyer.post(`/api/v1/orders/${order.id}/complete`)).status).toBe(200);
		const rows = await converged(rs, 30_000);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000", spent: "0.400000000000000000" });
		await expect
			.poll(async () => (await b.db.pool.query(`SELECT status FROM holds WHERE claim_id = $1`, [claim.body.id])).rows[0].status, { timeout: 15_000 })
			.toBe("settled");
		expect((await checkInvariants([a.db.pool, b.db.pool])).violations).toEqual([]);
	});

	it("a hold whose claim never came is released once A, asked over the link, voids it", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(b.apiUrl, "ivy")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		const order = (await (await Client.as(a.apiUrl, "ivy-buyer")).post("/api/v1/orders", { asset: "ETH", items: [item("0.4")] })).body;
		await converged(rs, 30_000);
		// A hold for a claim A never wrote (as if A had crashed between the two steps).
		const orphan = randomUUID();
		const req = { claimId: orphan, supplyId: supply.id, orderId: order.id, claimerId: "ivy", asset: "ETH", amount: "0.4", orderRegion: a.name, region: b.name };
		expect((await b.db.pool.query(`SELECT supply_hold($1::jsonb) AS r`, [JSON.stringify(req)])).rows[0].r.ok).toBe(true);
		// B's claiming service asks A's claiming.voidClaim (internal: signed as region B) over the link.
		await expect
			.poll(async () => (await b.db.pool.query(`SELECT status FROM holds WHERE claim_id = $1`, [orphan])).rows[0].status, { timeout: 15_000, interval: 100 })
			.toBe("released");
		expect((await a.db.pool.query(`SELECT outcome FROM claim_ids WHERE id = $1`, [orphan])).rows[0].outcome).toBe("void");
		const rows = await converged(rs, 30_000);
		expect(rows.supplies.find(s => s.id === supply.id)).toMatchObject({ reserved: "0.000000000000000000" });
	});

	it("a forwarded call's round trip (measured, not asserted)", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(a.apiUrl, "gina")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		await converged(rs, 30_000);
		const token = await tokenFor("gina");
		const link = regionLink(b.broker)!;
		const overLink: number[] = [];
		for (let i = 0; i < 40; i++) {
			const started = performance.now();
			const got = await link.call<{ id: string }>(a.name, "supply.get", { id: supply.id }, { meta: { token }, timeout: 5000, caller: asSupply(b) });
			overLink.push(performance.now() - started);
			expect(got.id).toBe(supply.id);
		}
		// The same write through B (forwarded) and through A (local), over HTTP.
		const viaB = await Client.as(b.apiUrl, "gina");
		const viaA = await Client.as(a.apiUrl, "gina");
		const http = { forwarded: [] as number[], local: [] as number[] };
		for (let i = 0; i < 10; i++) {
			for (const [client, into] of [[viaB, http.forwarded], [viaA, http.local]] as const) {
				for (const op of ["pause", "resume"]) {
					const r = await client.post(`/api/v1/supplies/${supply.id}/${op}`);
					expect(r.status).toBe(200);
					into.push(r.ms);
				}
			}
		}
		const f = (x: number) => `${x.toFixed(1)} ms`;
		console.log(
			`region link over Kafka (${kafka.mock ? "test broker" : "KAFKA_BROKERS"}): link.call p50 ${f(p50(overLink))}, p90 ${f(p90(overLink))} (${overLink.length} calls); ` +
				`HTTP write p50 forwarded ${f(p50(http.forwarded))}, local ${f(p50(http.local))} (${http.local.length} each)`,
		);
	});

	it("a region whose link node is gone answers 503 REGION_UNREACHABLE at once, and /regions says it is down", async () => {
		const [a, b] = rs.regions;
		const supply = (await (await Client.as(a.apiUrl, "hank")).post("/api/v1/supplies", { asset: "ETH", amount: "1" })).body;
		await converged(rs, 30_000);
		// A keeps running; only its link node stops (and says so on the global namespace).
		await a.broker.destroyService(a.broker.getLocalService("link") as Service);
		await linkSees(b, [b.name], 15_000);

		const viaB = await Client.as(b.apiUrl, "hank");
		const res = await viaB.post(`/api/v1/supplies/${supply.id}/pause`);
		expect(res.status).toBe(503);
		expect(res.headers.get("retry-after")).toBe("1");
		expect(res.body.error).toMatchObject({ code: "SERVICE_UNAVAILABLE" });
		expect(res.ms).toBeLessThan(5000);
		// Behind the HTTP answer: the retryable REGION_UNREACHABLE, from the gateway's region and from link.forward.
		const token = await tokenFor("hank");
		await expect(b.broker.call("supply.pause", { id: supply.id }, { meta: { token } })).rejects.toMatchObject({
			code: 503,
			type: "REGION_UNREACHABLE",
			retryable: true,
			data: { region: a.name },
		});
		await expect(
			asSupply(b).call("link.forward", { region: a.name, action: "supply.pause", params: { id: supply.id }, meta: { token } }),
		).rejects.toMatchObject({ code: 503, type: "REGION_UNREACHABLE" });
		const regions = (await viaB.get("/api/v1/regions")).body.regions;
		expect(regions.find((r: { name: string }) => r.name === a.name).health).toBe("down");
		expect(regions.find((r: { name: string }) => r.name === b.name).health).toBe("up");
		// Nothing was written anywhere.
		expect((await a.db.pool.query(`SELECT status FROM supplies WHERE id = $1`, [supply.id])).rows[0].status).toBe("active");
	});
});
