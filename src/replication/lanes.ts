// Apply lanes: what a subscription fetched waits here, one queue per partition (lane), while the lane's last
// events are applied. The fetch of the next batches then overlaps the apply of the last ones, and a lane that
// fell behind applies everything it holds in one handler call. Why: the test broker hands a reader one producer
// batch per partition per fetch (kafka-mock.md), and the relay's batches are small, so a reader that applied each
// batch before fetching the next spent a fetch, a transaction and a cache round trip per few events; a region
// catching up after a restart drained its backlog at ~200 events/s on a loaded machine (docs/multi-region.md).
// Order within a lane is kept: one worker per lane, and a failed apply is retried with the same events, in place,
// before anything after them (at-least-once: the handler is idempotent).
import { setTimeout as sleep } from "node:timers/promises";
import type { Delivery, ReplEvent } from "./event-log";

export interface LaneBatch<P> {
	events: ReplEvent[];
	/** Where the lane stands once these events are applied (e.g. a Kafka partition's next offset). */
	position: P;
}

export interface LanesOptions<P> {
	handler: (delivery: Delivery) => Promise<void>;
	onError?: (err: Error, delivery: Delivery) => void;
	/** After each successful apply: the lane's position after the last event applied. */
	onApplied: (lane: string, position: P) => void;
	/** At most this many events in one handler call (a single larger batch goes alone). */
	maxApply?: number;
	/** A lane holding this many events makes `push` wait (backpressure on the fetches). */
	maxQueued?: number;
	/** The wait after the n-th failure in a row: 200 ms doubling, at most 2 s. */
	backoffMs?: (failures: number) => number;
}

interface Lane<P> {
	source: string;
	partition: number;
	queue: LaneBatch<P>[];
	queued: number;
	running?: Promise<void>;
	/** Resolves the pushes waiting for room. */
	waiting: Array<() => void>;
	/** Bumped when the lane is cleared: a worker of an older generation stops after its apply in flight. */
	generation: number;
}

const DEFAULT_MAX_APPLY = 500;
const DEFAULT_MAX_QUEUED = 2_000;

/** Tells the subscriber's observer of a failure; an observer that throws changes nothing of what happens next. */
export function report(onError: ((err: Error, delivery: Delivery) => void) | undefined, err: unknown, delivery: Delivery): void {
	try {
		onError?.(err instanceof Error ? err : new Error(String(err)), delivery);
	} catch {
		// A failing observer must not change what happens to the events.
	}
}

export class ApplyLanes<P> {
	private readonly lanes = new Map<string, Lane<P>>();
	private stopped = false;
	private readonly maxApply: number;
	private readonly maxQueued: number;
	private readonly backoffMs: (failures: number) => number;

	constructor(private readonly o: LanesOptions<P>) {
		this.maxApply = o.maxApply ?? DEFAULT_MAX_APPLY;
		this.maxQueued = o.maxQueued ?? DEFAULT_MAX_QUEUED;
		this.backoffMs = o.backoffMs ?? (n => Math.min(200 * 2 ** (n - 1), 2_000));
	}

	/**
	 * Queues a fetched batch on its lane and starts the lane's worker. Resolves once the lane has room (at once,
	 * unless it holds maxQueued events), so the caller fetches no further ahead than that. False when the batch was
	 * not queued (stopped, cleared, or no longer running): the caller must fetch it again.
	 */
	async push(key: string, source: string, partition: number, batch: LaneBatch<P>, stillRunning: () => boolean = () => true): Promise<boolean> {
		if (this.stopped) return false;
		let lane = this.lanes.get(key);
		if (!lane) this.lanes.set(key, (lane = { source, partition, queue: [], queued: 0, waiting: [], generation: 0 }));
		const generation = lane.generation;
		while (lane.queued >= this.maxQueued && !this.stopped && stillRunning() && lane.generation === generation)
			await new Promise<void>(resolve => lane.waiting.push(resolve));
		// Cleared meanwhile (a rebalance): the reader fetches these again, in order, from the committed position.
		if (this.stopped || !stillRunning() || lane.generation !== generation) return false;
		lane.queue.push(batch);
		lane.queued += batch.events.length;
		this.kick(key, lane);
		return true;
	}

	/** One worker a lane; a push that lands while the last one is finishing is picked up by the next. */
	private kick(key: string, lane: Lane<P>) {
		if (lane.running || this.stopped) return;
		lane.running = this.work(key, lane).finally(() => {
			lane.running = undefined;
			if (lane.queue.length) this.kick(key, lane);
		});
	}

	/** Events fetched and not applied yet, over every lane. */
	get pending(): number {
		let n = 0;
		for (const l of this.lanes.values()) n += l.queued;
		return n;
	}

	/**
	 * Forgets what every lane holds (a rebalance: the reader fetches again from the committed positions). An apply in
	 * flight finishes, and reports its position.
	 */
	clear(): void {
		for (const lane of this.lanes.values()) this.empty(lane);
	}

	/** No new applies; resolves once those in flight are over. What is queued is left (not applied, not reported). */
	async stop(): Promise<void> {
		this.stopped = true;
		const running = [...this.lanes.values()].map(l => l.running);
		this.clear();
		await Promise.all(running);
	}

	private empty(lane: Lane<P>) {
		lane.generation++;
		lane.queue = [];
		lane.queued = 0;
		for (const w of lane.waiting.splice(0)) w();
	}

	private async work(key: string, lane: Lane<P>): Promise<void> {
		const generation = lane.generation;
		while (lane.queue.length && !this.stopped && lane.generation === generation) {
			const take: LaneBatch<P>[] = [];
			let n = 0;
			while (lane.queue.length && (!take.length || n + lane.queue[0].events.length <= this.maxApply)) {
				const b = lane.queue.shift()!;
				take.push(b);
				n += b.events.length;
			}
			const delivery: Delivery = { source: lane.source, lane: lane.partition, events: take.length === 1 ? take[0].events : take.flatMap(b => b.events) };
			for (let failures = 0; ; ) {
				try {
					await this.o.handler(delivery);
					break;
				} catch (err) {
					failures++;
					report(this.o.onError, err, delivery);
					const until = Date.now() + this.backoffMs(failures);
					while (Date.now() < until && !this.stopped && lane.generation === generation) await sleep(Math.min(100, until - Date.now()));
					// Given up (stopped or cleared): the events were not applied, so their position is not reported.
					if (this.stopped || lane.generation !== generation) return;
				}
			}
			// Queued events were counted off by a clear in between; what this apply took is off the count either way.
			if (lane.generation === generation) {
				lane.queued -= n;
				for (const w of lane.waiting.splice(0)) w();
			}
			this.o.onApplied(key, take[take.length - 1].position);
		}
	}
}
