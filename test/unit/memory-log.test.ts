import { describe, expect, it } from "vitest";
import { eventLogContract } from "../helpers/event-log-contract";
import { MemoryEventLog } from "../../src/replication/memory-log";
import type { Delivery, ReplEvent } from "../../src/replication/event-log";

eventLogContract("memory", async () => ({ log: new MemoryEventLog({ retryMs: 20 }), cleanup: async () => undefined }));

// One aggregate, so every event goes to one partition.
const ev = (version: number): ReplEvent => ({
	eventId: `00000000-0000-4000-8000-${String(version).padStart(12, "0")}`,
	aggregateType: "order",
	aggregateId: "11111111-1111-4111-8111-111111111111",
	version,
	type: "OrderCreated",
	region: "a",
	homeRegion: "a",
	epoch: 1,
	txId: String(version),
	schemaVersion: 1,
	createdAt: new Date(0).toISOString(),
	payload: {},
});

const total = async (log: MemoryEventLog) => Object.values(await log.ends("a")).reduce((n, v) => n + v, 0);

describe("memory event log retention", () => {
	it("keeps about `retain` events a partition when no group reads the source: a late group starts at the oldest kept", async () => {
		const log = new MemoryEventLog({ retain: 10, retryMs: 20 });
		for (let v = 1; v <= 40; v++) await log.publish("a", [ev(v)]);
		expect(await total(log)).toBe(40);
		const got: number[] = [];
		const sub = await log.subscribe({ group: "late", sources: ["a"], handler: async (d: Delivery) => void got.push(...d.events.map(e => e.version)) });
		await expect.poll(() => got.at(-1), { timeout: 2000 }).toBe(40);
		await sub.stop();
		expect(got.length).toBeGreaterThanOrEqual(10);
		expect(got.length).toBeLessThanOrEqual(11);
		expect(got).toEqual(Array.from({ length: got.length }, (_, i) => 41 - got.length + i));
	});

	it("never drops what a subscribed group has not committed, however far behind it is", async () => {
		const log = new MemoryEventLog({ retain: 10, retryMs: 20 });
		let release!: () => void;
		const gate = new Promise<void>(r => (release = r));
		const got: number[] = [];
		const sub = await log.subscribe({
			group: "slow",
			sources: ["a"],
			handler: async (d: Delivery) => {
				await gate;
				got.push(...d.events.map(e => e.version));
			},
		});
		await log.publish("a", [ev(1)]);
		for (let v = 2; v <= 60; v++) await log.publish("a", [ev(v)]);
		release();
		await expect.poll(() => got.length, { timeout: 2000 }).toBe(60);
		expect(got).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
		// Read, it is let go: a later publish trims the partition back to about the retention.
		for (let v = 61; v <= 75; v++) await log.publish("a", [ev(v)]);
		await expect.poll(() => got.length, { timeout: 2000 }).toBe(75);
		await log.publish("a", [ev(76)]);
		const late: number[] = [];
		const other = await log.subscribe({ group: "late", sources: ["a"], handler: async (d: Delivery) => void late.push(...d.events.map(e => e.version)) });
		await expect.poll(() => late.at(-1), { timeout: 2000 }).toBe(76);
		expect(late.length).toBeLessThanOrEqual(11);
		await Promise.all([sub.stop(), other.stop()]);
	});
});
