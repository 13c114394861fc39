// The apply lanes (src/replication/lanes.ts): what a reader fetched waits per lane while the lane's last events
// are applied; a lane applies what it holds in one call, in order, retries a failure in place, and reports
// the position of what it applied only.
import { describe, expect, it } from "vitest";
import type { Delivery, ReplEvent } from "../../src/replication/event-log";
import { ApplyLanes } from "../../src/replication/lanes";

const ev = (n: number) => ({ eventId: `e${n}`, version: n }) as unknown as ReplEvent;
const batch = (...ns: number[]) => ({ events: ns.map(ev), position: ns[ns.length - 1] + 1 });
const versions = (d: Delivery) => d.events.map(e => e.version);

/** A handler whose calls wait until released, one by one. */
function gatedHandler() {
	const calls: Delivery[] = [];
	const gates: Array<() => void> = [];
	return {
		calls,
		handler: (d: Delivery) => {
			calls.push(d);
			return new Promise<void>(resolve => gates.push(resolve));
		},
		async release() {
			for (let i = 0; i < 100 && !gates.length; i++) await tick();
			gates.shift()?.();
			await tick();
		},
	};
}
const tick = () => new Promise(resolve => setImmediate(resolve));
async function until(what: string, cond: () => boolean) {
	for (let i = 0; i < 500; i++) {
		if (cond()) return;
		await new Promise(resolve => setTimeout(resolve, 2));
	}
	throw new Error(`never: ${what}`);
}

describe("ApplyLanes", () => {
	it("applies what a lane fetched while its last apply ran in one call, in order, and reports the last position", async () => {
		const h = gatedHandler();
		const positions: number[] = [];
		const lanes = new ApplyLanes<number>({ handler: h.handler, onApplied: (_lane, p) => positions.push(p) });
		expect(await lanes.push("t[0]", "us", 0, batch(1))).toBe(true);
		await lanes.push("t[0]", "us", 0, batch(2, 3));
		await lanes.push("t[0]", "us", 0, batch(4));
		expect(h.calls.map(versions)).toEqual([[1]]);
		expect(lanes.pending).toBe(4);
		await h.release();
		await until("the second call", () => h.calls.length === 2);
		expect(positions).toEqual([2]);
		expect(h.calls[1]).toEqual({ source: "us", lane: 0, events: [2, 3, 4].map(ev) });
		await h.release();
		await until("all applied", () => positions.length === 2);
		expect(positions).toEqual([2, 5]);
		expect(lanes.pending).toBe(0);
	});

	it("keeps lanes apart: a lane whose apply hangs holds up no other", async () => {
		const applied: string[] = [];
		const lanes = new ApplyLanes<number>({
			handler: d => (d.lane === 0 ? new Promise<void>(() => {}) : (applied.push(`${d.source}:${versions(d)}`), Promise.resolve())),
			onApplied: () => {},
		});
		await lanes.push("a[0]", "us", 0, batch(1));
		await lanes.push("a[1]", "us", 1, batch(7));
		await lanes.push("b[1]", "eu", 1, batch(9));
		await until("the other lanes", () => applied.length === 2);
		expect(applied.sort()).toEqual(["eu:9", "us:7"]);
	});

	it("retries a failed apply with the same events before anything after them, and reports only what was applied", async () => {
		const calls: number[][] = [];
		const errors: string[] = [];
		const positions: number[] = [];
		let failures = 2;
		const lanes = new ApplyLanes<number>({
			handler: async d => {
				calls.push(versions(d));
				if (failures-- > 0) throw new Error(`apply failed ${failures}`);
			},
			onError: (err, d) => errors.push(`${err.message}: ${versions(d)}`),
			onApplied: (_l, p) => positions.push(p),
			backoffMs: () => 5,
		});
		await lanes.push("t[0]", "us", 0, batch(1, 2));
		await lanes.push("t[0]", "us", 0, batch(3));
		await until("both applied", () => positions.length === 2);
		expect(errors).toEqual(["apply failed 1: 1,2", "apply failed 0: 1,2"]);
		expect(calls).toEqual([[1, 2], [1, 2], [1, 2], [3]]);
		expect(positions).toEqual([3, 4]);
	});

	it("makes a push wait while its lane holds maxQueued events, and merges no more than maxApply", async () => {
		const h = gatedHandler();
		const lanes = new ApplyLanes<number>({ handler: h.handler, onApplied: () => {}, maxQueued: 3, maxApply: 2 });
		await lanes.push("t[0]", "us", 0, batch(1, 2));
		let fourth = false;
		await lanes.push("t[0]", "us", 0, batch(3));
		const waiting = lanes.push("t[0]", "us", 0, batch(4)).then(() => (fourth = true));
		await tick();
		expect(fourth).toBe(false);
		await h.release();
		await waiting;
		expect(fourth).toBe(true);
		await h.release();
		await h.release();
		await until("all calls", () => h.calls.length === 3);
		expect(h.calls.map(versions)).toEqual([[1, 2], [3], [4]]);
	});

	it("clear drops what waits (not applied, not reported), lets the apply in flight report, and releases waiting pushes", async () => {
		const h = gatedHandler();
		const positions: number[] = [];
		const lanes = new ApplyLanes<number>({ handler: h.handler, onApplied: (_l, p) => positions.push(p), maxQueued: 2 });
		await lanes.push("t[0]", "us", 0, batch(1));
		await lanes.push("t[0]", "us", 0, batch(2));
		const waiting = lanes.push("t[0]", "us", 0, batch(3));
		lanes.clear();
		expect(await waiting).toBe(false);
		expect(lanes.pending).toBe(0);
		await h.release();
		await until("the apply in flight", () => positions.length === 1);
		expect(positions).toEqual([2]);
		expect(lanes.pending).toBe(0);
		// After the clear the lane starts afresh with what is fetched again.
		await lanes.push("t[0]", "us", 0, batch(2));
		await h.release();
		await until("the refetched batch", () => positions.length === 2);
		expect(h.calls.map(versions)).toEqual([[1], [2]]);
		expect(positions).toEqual([2, 3]);
	});

	it("stop waits for the apply in flight and applies nothing more", async () => {
		const h = gatedHandler();
		const positions: number[] = [];
		const lanes = new ApplyLanes<number>({ handler: h.handler, onApplied: (_l, p) => positions.push(p) });
		await lanes.push("t[0]", "us", 0, batch(1));
		await lanes.push("t[0]", "us", 0, batch(2));
		let stopped = false;
		const stopping = lanes.stop().then(() => (stopped = true));
		await tick();
		expect(stopped).toBe(false);
		await h.release();
		await stopping;
		expect(positions).toEqual([2]);
		expect(h.calls.length).toBe(1);
		expect(await lanes.push("t[0]", "us", 0, batch(3))).toBe(false);
	});

	it("stop ends a lane that keeps failing without reporting it", async () => {
		const positions: number[] = [];
		let calls = 0;
		const lanes = new ApplyLanes<number>({
			handler: async () => {
				calls++;
				throw new Error("down");
			},
			onApplied: (_l, p) => positions.push(p),
			backoffMs: () => 10_000,
		});
		await lanes.push("t[0]", "us", 0, batch(1));
		await until("a failure", () => calls === 1);
		await lanes.stop();
		expect(calls).toBe(1);
		expect(positions).toEqual([]);
	});
});
