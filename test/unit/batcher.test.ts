import { describe, expect, it } from "vitest";
import { Batcher } from "../../src/lib/batcher";

const tick = () => new Promise<void>(r => setImmediate(r));

function gatedRunner() {
	const calls: number[][] = [];
	const gates: (() => void)[] = [];
	const run = (items: number[]) =>
		new Promise<string[]>(resolve => {
			calls.push(items);
			gates.push(() => resolve(items.map(i => `done ${i}`)));
		});
	return { calls, gates, run };
}

describe("Batcher (group commit)", () => {
	it("sends a lone item at once, and items that arrive while batches run together", async () => {
		const r = gatedRunner();
		const b = new Batcher(r.run, { concurrency: 1, maxItems: 10, windowMs: 0 }, () => new Error("late"));
		const first = b.submit(1);
		await tick();
		expect(r.calls).toEqual([[1]]);
		const rest = [2, 3, 4].map(i => b.submit(i));
		await tick();
		expect(r.calls).toHaveLength(1);
		r.gates[0]();
		expect(await first).toBe("done 1");
		await tick();
		expect(r.calls[1]).toEqual([2, 3, 4]);
		r.gates[1]();
		expect(await Promise.all(rest)).toEqual(["done 2", "done 3", "done 4"]);
	});

	it("caps a batch at maxItems and runs up to `concurrency` batches at once", async () => {
		const r = gatedRunner();
		const b = new Batcher(r.run, { concurrency: 2, maxItems: 3, windowMs: 0 }, () => new Error("late"));
		const blockers = [b.submit(0), b.submit(100)];
		await tick();
		expect(r.calls).toEqual([[0], [100]]);
		const all = [1, 2, 3, 4, 5, 6, 7].map(i => b.submit(i));
		r.gates[0]();
		r.gates[1]();
		await Promise.all(blockers);
		await tick();
		expect(r.calls.slice(2)).toEqual([
			[1, 2, 3],
			[4, 5, 6],
		]);
		r.gates[2]();
		r.gates[3]();
		await tick();
		await tick();
		expect(r.calls[4]).toEqual([7]);
		r.gates[4]();
		expect(await Promise.all(all)).toHaveLength(7);
	});

	it("waits up to windowMs for company while a batch is in flight, and never on a quiet node", async () => {
		const r = gatedRunner();
		const b = new Batcher(r.run, { concurrency: 4, maxItems: 10, windowMs: 30 }, () => new Error("late"));
		// Nothing in flight: out at once, window or not.
		const first = b.submit(1);
		await tick();
		expect(r.calls).toEqual([[1]]);
		// One batch in flight and three slots free: the next items wait for company instead of taking a slot each.
		const p = [b.submit(2), b.submit(3)];
		await tick();
		expect(r.calls).toEqual([[1]]);
		await new Promise(res => setTimeout(res, 50));
		expect(r.calls).toEqual([[1], [2, 3]]);
		r.gates[0]();
		r.gates[1]();
		await Promise.all([first, ...p]);
		// Quiet again: no wait.
		const last = b.submit(4);
		await tick();
		expect(r.calls[2]).toEqual([4]);
		r.gates[2]();
		await last;
	});

	it("sends what waited as soon as the batches in flight are done, before the window ends", async () => {
		const r = gatedRunner();
		const b = new Batcher(r.run, { concurrency: 4, maxItems: 10, windowMs: 10_000 }, () => new Error("late"));
		const first = b.submit(1);
		await tick();
		const p = [b.submit(2), b.submit(3)];
		await tick();
		expect(r.calls).toEqual([[1]]);
		r.gates[0]();
		await first;
		await tick();
		expect(r.calls).toEqual([[1], [2, 3]]);
		r.gates[1]();
		await Promise.all(p);
	});

	it("drops items whose deadline passed while they queued; a failed batch fails only its items", async () => {
		let fail = false;
		const calls: number[][] = [];
		let release!: () => void;
		const gate = new Promise<void>(r => (release = r));
		const run = async (items: number[]) => {
			calls.push(items);
			if (items[0] === 0) await gate;
			if (fail) throw new Error("database down");
			return items.map(i => i * 10);
		};
		const b = new Batcher(run, { concurrency: 1, maxItems: 10, windowMs: 0 }, () => new Error("deadline passed"));
		const blocker = b.submit(0);
		const late = b.submit(1, Date.now() + 5);
		const fine = b.submit(2, Date.now() + 60_000);
		await new Promise(r => setTimeout(r, 20));
		release();
		expect(await blocker).toBe(0);
		await expect(late).rejects.toThrow("deadline passed");
		expect(await fine).toBe(20);
		expect(calls).toEqual([[0], [2]]);
		fail = true;
		await expect(b.submit(3)).rejects.toThrow("database down");
		fail = false;
		expect(await b.submit(4)).toBe(40);
	});
});
