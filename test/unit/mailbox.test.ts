import { describe, expect, it } from "vitest";
import { Mailbox } from "../../src/lib/mailbox";

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>(resolve => setImmediate(resolve));

function deferred<T = void>() {
	let resolve!: (value: T) => void;
	let reject!: (err: unknown) => void;
	const promise = new Promise<T>((res, rej) => {
		resolve = res;
		reject = rej;
	});
	return { promise, resolve, reject };
}

describe("Mailbox", () => {
	it("runs the tasks of one key one at a time, in arrival order", async () => {
		const mailbox = new Mailbox();
		const log: string[] = [];
		let active = 0;
		let maxActive = 0;
		const task = (name: string) => async () => {
			active++;
			maxActive = Math.max(maxActive, active);
			log.push(`start ${name}`);
			for (let i = 0; i < 3; i++) await settle();
			log.push(`end ${name}`);
			active--;
			return name;
		};

		const results = await Promise.all(["t1", "t2", "t3", "t4"].map(n => mailbox.run("order-1", task(n))));

		expect(results).toEqual(["t1", "t2", "t3", "t4"]);
		expect(maxActive).toBe(1);
		expect(log).toEqual(["start t1", "end t1", "start t2", "end t2", "start t3", "end t3", "start t4", "end t4"]);
	});

	it("does not start the next task of a key until the previous one settles", async () => {
		const mailbox = new Mailbox();
		const gate = deferred();
		const started: string[] = [];
		const first = mailbox.run("k", async () => {
			started.push("first");
			await gate.promise;
		});
		const second = mailbox.run("k", async () => {
			started.push("second");
		});

		await settle();
		expect(started).toEqual(["first"]);
		gate.resolve();
		await Promise.all([first, second]);
		expect(started).toEqual(["first", "second"]);
	});

	it("runs tasks of different keys in parallel", async () => {
		const mailbox = new Mailbox();
		const gateA = deferred();
		const gateB = deferred();
		const started: string[] = [];
		const a = mailbox.run("a", async () => {
			started.push("a");
			await gateA.promise;
		});
		const b = mailbox.run("b", async () => {
			started.push("b");
			await gateB.promise;
		});

		await settle();
		expect(started.sort()).toEqual(["a", "b"]);
		expect(mailbox.size).toBe(2);
		gateB.resolve();
		gateA.resolve();
		await Promise.all([a, b]);
	});

	it("a rejected task rejects its own caller but does not block the next task", async () => {
		const mailbox = new Mailbox();
		const failing = mailbox.run("k", async () => {
			throw new Error("boom");
		});
		const next = mailbox.run("k", async () => "ok");

		await expect(failing).rejects.toThrow("boom");
		await expect(next).resolves.toBe("ok");
	});

	it("a task that throws synchronously is also contained", async () => {
		const mailbox = new Mailbox();
		const failing = mailbox.run("k", () => {
			throw new Error("sync boom");
		});
		await expect(failing).rejects.toThrow("sync boom");
		await expect(mailbox.run("k", async () => 1)).resolves.toBe(1);
	});

	it("forgets keys once their queues drain", async () => {
		const mailbox = new Mailbox();
		const gate = deferred();
		const runs = [
			mailbox.run("a", () => gate.promise),
			mailbox.run("a", async () => undefined),
			mailbox.run("b", async () => {
				throw new Error("x");
			}),
		];
		expect(mailbox.size).toBe(2);

		gate.resolve();
		await Promise.allSettled(runs);
		await settle();
		expect(mailbox.size).toBe(0);
	});

	it("drops a queued task whose caller's deadline passed while it waited, and runs the next", async () => {
		const mailbox = new Mailbox(() => new Error("too late"));
		const gate = deferred();
		const ran: string[] = [];
		const first = mailbox.run("k", async () => {
			await gate.promise;
			ran.push("first");
		});
		const late = mailbox.run("k", async () => void ran.push("late"), Date.now() + 5);
		const onTime = mailbox.run("k", async () => void ran.push("on time"), Date.now() + 60_000);
		await new Promise(r => setTimeout(r, 20));
		gate.resolve();
		await first;
		await expect(late).rejects.toThrow("too late");
		await onTime;
		expect(ran).toEqual(["first", "on time"]);
	});
});
