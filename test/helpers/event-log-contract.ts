// The contract every event log adapter keeps (memory and Kafka run this same suite): what the relay and
// the applier rely on.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { eventKey, fenceEvent, type Delivery, type EventLog, type ReplEvent } from "../../src/replication/event-log";

export const CONTRACT_REGIONS = ["us-central1", "europe-west1"] as const;
const [A, B] = CONTRACT_REGIONS;

export function replEvent(source: string, over: Partial<ReplEvent> & { orderId?: string } = {}): ReplEvent {
	const id = over.aggregateId ?? randomUUID();
	const type = over.aggregateType ?? "order";
	return {
		eventId: randomUUID(),
		aggregateType: type,
		aggregateId: id,
		version: over.version ?? 1,
		type: over.type ?? "OrderCreated",
		region: source,
		homeRegion: over.homeRegion ?? source,
		epoch: over.epoch ?? 1,
		txId: over.txId ?? "1",
		schemaVersion: 1,
		createdAt: new Date().toISOString(),
		payload: over.payload ?? { id, orderId: over.orderId ?? id },
	};
}

/** Collects deliveries until `n` events arrived (or fails after `ms`). */
function collector() {
	const got: Delivery[] = [];
	const waiters: Array<{ n: number; resolve: () => void }> = [];
	const count = () => got.reduce((s, d) => s + d.events.length, 0);
	return {
		got,
		events: () => got.flatMap(d => d.events),
		push(d: Delivery) {
			got.push(d);
			for (const w of [...waiters]) if (count() >= w.n) w.resolve();
		},
		until(n: number, ms = 20_000) {
			if (count() >= n) return Promise.resolve();
			return new Promise<void>((resolve, reject) => {
				const t = setTimeout(() => reject(new Error(`only ${count()} of ${n} events arrived in ${ms} ms`)), ms);
				waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
			});
		},
	};
}

export interface AdapterUnderTest {
	log: EventLog;
	cleanup(): Promise<void>;
}

export function eventLogContract(name: string, make: () => Promise<AdapterUnderTest>) {
	describe(`event log contract: ${name}`, () => {
		let current: AdapterUnderTest | undefined;
		const open = async () => (current = await make()).log;
		afterEach(async () => {
			await current?.log.close();
			await current?.cleanup();
			current = undefined;
		});

		it("delivers every event of the subscribed sources, one key's events in publish order", async () => {
			const log = await open();
			const orders = Array.from({ length: 20 }, () => randomUUID());
			// Each order: created, then its claim (keyed by the order), then the order claimed.
			const published: ReplEvent[] = [];
			for (const o of orders) {
				const claim = randomUUID();
				published.push(
					replEvent(A, { aggregateId: o, version: 1 }),
					replEvent(A, { aggregateType: "claim", aggregateId: claim, orderId: o, type: "ClaimCreated", payload: { id: claim, orderId: o } }),
					replEvent(A, { aggregateId: o, version: 2, type: "OrderClaimed" }),
				);
			}
			await log.publish(A, published.slice(0, 30));
			await log.publish(A, published.slice(30));
			await log.publish(B, [replEvent(B)]);
			const c = collector();
			const sub = await log.subscribe({ group: `g-${randomUUID()}`, sources: [A], handler: async d => c.push(d) });
			await c.until(published.length);
			await sub.stop();
			expect(c.got.every(d => d.source === A)).toBe(true);
			const ids = c.events().map(e => e.eventId);
			expect(new Set(ids).size).toBe(published.length);
			expect(new Set(ids)).toEqual(new Set(published.map(e => e.eventId)));
			for (const o of orders) {
				const mine = c.events().filter(e => eventKey(e) === o).map(e => e.eventId);
				expect(mine).toEqual(published.filter(e => eventKey(e) === o).map(e => e.eventId));
			}
			// The payload travels whole.
			const claim = c.events().find(e => e.aggregateType === "claim")!;
			expect(claim.payload.orderId).toBe(eventKey(claim));
		});

		it("gives every group every event, and reads several sources", async () => {
			const log = await open();
			const a = [replEvent(A), replEvent(A)];
			const b = [replEvent(B)];
			await log.publish(A, a);
			await log.publish(B, b);
			const c1 = collector();
			const c2 = collector();
			const s1 = await log.subscribe({ group: `g1-${randomUUID()}`, sources: [A, B], handler: async d => c1.push(d) });
			const s2 = await log.subscribe({ group: `g2-${randomUUID()}`, sources: [A], handler: async d => c2.push(d) });
			await Promise.all([c1.until(3), c2.until(2)]);
			await Promise.all([s1.stop(), s2.stop()]);
			expect(new Set(c1.events().map(e => e.eventId))).toEqual(new Set([...a, ...b].map(e => e.eventId)));
			expect(c1.got.find(d => d.events.some(e => e.eventId === b[0].eventId))!.source).toBe(B);
			expect(new Set(c2.events().map(e => e.eventId))).toEqual(new Set(a.map(e => e.eventId)));
		});

		it("redelivers a batch whose handler rejected, and nothing of that key passes it", async () => {
			const log = await open();
			const key = randomUUID();
			const events = [1, 2, 3].map(v => replEvent(A, { aggregateId: key, version: v }));
			await log.publish(A, events);
			const c = collector();
			let failures = 0;
			const errors: string[] = [];
			const sub = await log.subscribe({
				group: `g-${randomUUID()}`,
				sources: [A],
				handler: async d => {
					if (failures < 2) {
						failures++;
						throw new Error("apply failed");
					}
					c.push(d);
				},
				onError: err => errors.push(err.message),
			});
			await c.until(3);
			await sub.stop();
			expect(failures).toBe(2);
			expect(errors).toEqual(["apply failed", "apply failed"]);
			// After the failures the key's events arrive complete and in order.
			expect(c.events().map(e => e.version)).toEqual([1, 2, 3]);
		});

		it("a new member of a group resumes after the last acknowledged batch", async () => {
			const log = await open();
			const group = `g-${randomUUID()}`;
			const first = [replEvent(A), replEvent(A)];
			await log.publish(A, first);
			const c1 = collector();
			const s1 = await log.subscribe({ group, sources: [A], handler: async d => c1.push(d) });
			await c1.until(2);
			await s1.stop();
			const second = [replEvent(A), replEvent(A), replEvent(A)];
			await log.publish(A, second);
			const c2 = collector();
			const s2 = await log.subscribe({ group, sources: [A], handler: async d => c2.push(d) });
			await c2.until(3);
			await s2.stop();
			expect(new Set(c2.events().map(e => e.eventId))).toEqual(new Set(second.map(e => e.eventId)));
		});

		it("counts a group's backlog per source, down to 0 once consumed", async () => {
			const log = await open();
			const group = `g-${randomUUID()}`;
			await log.publish(A, [replEvent(A), replEvent(A), replEvent(A)]);
			await log.publish(B, [replEvent(B)]);
			expect(await log.backlog(group, A)).toBe(3);
			expect(await log.backlog(group, B)).toBe(1);
			const c = collector();
			const sub = await log.subscribe({ group, sources: [A], handler: async d => c.push(d) });
			await c.until(3);
			// Offsets are committed after the handler resolves: give the commit a moment to land.
			for (let i = 0; i < 50 && (await log.backlog(group, A)) > 0; i++) await new Promise(r => setTimeout(r, 100));
			await sub.stop();
			expect(await log.backlog(group, A)).toBe(0);
			expect(await log.backlog(group, B)).toBe(1);
		});

		it("counts a backlog up to a position taken earlier, while the log goes on growing", async () => {
			const log = await open();
			const group = `g-${randomUUID()}`;
			const first = [replEvent(A), replEvent(A), replEvent(A)];
			await log.publish(A, first);
			const then = await log.ends(A);
			await log.publish(A, [replEvent(A), replEvent(A)]);
			expect(await log.backlog(group, A, then)).toBe(3);
			expect(await log.backlog(group, A)).toBe(5);
			const c = collector();
			const sub = await log.subscribe({ group, sources: [A], handler: async d => c.push(d) });
			await c.until(5);
			for (let i = 0; i < 50 && (await log.backlog(group, A, then)) > 0; i++) await new Promise(r => setTimeout(r, 100));
			await sub.stop();
			expect(await log.backlog(group, A, then)).toBe(0);
		});

		it("a fence lands once in every lane of the source, after what each lane held, before what follows", async () => {
			const log = await open();
			const before = Array.from({ length: 12 }, () => replEvent(A));
			await log.publish(A, before);
			const ends = await log.ends(A);
			const marker = fenceEvent({ source: A, homeRegion: A, epoch: 2, owner: B, eventId: randomUUID() });
			await log.fence(A, marker);
			const after = Array.from({ length: 12 }, () => replEvent(A));
			await log.publish(A, after);
			const lanes = Object.keys(ends).length;
			// One marker per partition: the log's end moved by one in each, beyond what was published.
			const grown = await log.ends(A);
			expect(Object.values(grown).reduce((n, v) => n + v, 0)).toBe(Object.values(ends).reduce((n, v) => n + v, 0) + lanes + after.length);
			const c = collector();
			const sub = await log.subscribe({ group: `g-${randomUUID()}`, sources: [A], handler: async d => c.push(d) });
			await c.until(before.length + lanes + after.length);
			await sub.stop();
			const byLane = new Map<number, ReplEvent[]>();
			for (const d of c.got) byLane.set(d.lane ?? 0, [...(byLane.get(d.lane ?? 0) ?? []), ...d.events]);
			expect(byLane.size).toBe(lanes);
			const isBefore = new Set(before.map(e => e.eventId));
			for (const events of byLane.values()) {
				const at = events.findIndex(e => e.eventId === marker.eventId);
				expect(events.filter(e => e.eventId === marker.eventId)).toHaveLength(1);
				expect(events[at]).toEqual(marker);
				// Every event published before the fence precedes it in its lane; every one after follows it.
				events.forEach((e, i) => e.eventId !== marker.eventId && expect(i < at).toBe(isBefore.has(e.eventId)));
			}
		});
	});
}
