// The in-memory twin of the Kafka event log: the embedded default's regions share one in a process, and
// unit tests use it. Same contract as Kafka (test/helpers/event-log-contract.ts): per-source logs split
// into partitions by key, per-group committed offsets, at-least-once delivery, redelivery after a
// handler's rejection.
import { eventKey, type Delivery, type EventLog, type LogPosition, type ReplEvent, type SubscribeOptions, type Subscription } from "./event-log";

const PARTITIONS = 4;

function partitionOf(key: string): number {
	let h = 0;
	for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
	return Math.abs(h) % PARTITIONS;
}

interface Source {
	name: string;
	partitions: ReplEvent[][];
	/** Absolute offset of each partition's first kept event (older ones fell out of retention). */
	base: number[];
	/** Wakes consumers waiting for new events. */
	waiters: Set<() => void>;
}

export interface MemoryEventLogOptions {
	/** Most events handed to one handler call. */
	maxBatch?: number;
	/** Delay before a rejected batch is redelivered. */
	retryMs?: number;
	/**
	 * Events kept per partition (default 10,000; retention, as Kafka's): the oldest go first, but never one that a
	 * group which has subscribed to the source has not committed yet (the embedded regions' appliers lose nothing;
	 * a stuck one keeps the log growing instead).
	 */
	retain?: number;
}

export class MemoryEventLog implements EventLog {
	private readonly sources = new Map<string, Source>();
	/** group -> source -> committed offset per partition. */
	private readonly offsets = new Map<string, Map<string, number[]>>();
	private readonly subs = new Set<{ stop(): Promise<void> }>();
	private closed = false;

	constructor(private readonly options: MemoryEventLogOptions = {}) {}

	private source(name: string): Source {
		let s = this.sources.get(name);
		if (!s) this.sources.set(name, (s = { name, partitions: Array.from({ length: PARTITIONS }, () => []), base: new Array(PARTITIONS).fill(0), waiters: new Set() }));
		return s;
	}

	/** A group's committed offsets in a source (created at its subscription; a group only asked about holds nothing). */
	private committed(group: string, source: string): number[] {
		let g = this.offsets.get(group);
		if (!g) this.offsets.set(group, (g = new Map()));
		let o = g.get(source);
		if (!o) g.set(source, (o = new Array(PARTITIONS).fill(0)));
		return o;
	}

	async publish(source: string, events: ReplEvent[]): Promise<void> {
		if (this.closed) throw new Error("event log is closed");
		if (events.length === 0) return;
		const s = this.source(source);
		// A copy: a consumer must never see the publisher's objects change under it (Kafka serialises too).
		for (const e of events) this.append(s, partitionOf(eventKey(e)), e);
		for (const wake of [...s.waiters]) wake();
	}

	async fence(source: string, event: ReplEvent): Promise<void> {
		if (this.closed) throw new Error("event log is closed");
		const s = this.source(source);
		for (let p = 0; p < PARTITIONS; p++) this.append(s, p, event);
		for (const wake of [...s.waiters]) wake();
	}

	private append(s: Source, p: number, e: ReplEvent) {
		const retain = this.options.retain ?? 10_000;
		s.partitions[p].push(structuredClone(e));
		// Dropped a tenth of the retention at a time: splicing the front of a long array costs its length.
		const chunk = Math.max(1, Math.floor(retain / 10));
		const over = s.partitions[p].length - retain;
		if (over < chunk) return;
		// No further than the lowest offset a subscribed group has committed in this lane.
		let floor = Number.POSITIVE_INFINITY;
		for (const g of this.offsets.values()) {
			const o = g.get(s.name);
			if (o) floor = Math.min(floor, o[p]);
		}
		const drop = Math.min(over, floor - s.base[p]);
		if (drop < chunk) return;
		s.partitions[p].splice(0, drop);
		s.base[p] += drop;
	}

	async subscribe(options: SubscribeOptions): Promise<Subscription> {
		if (this.closed) throw new Error("event log is closed");
		const maxBatch = this.options.maxBatch ?? 500;
		const retryMs = this.options.retryMs ?? 200;
		let running = true;
		// One loop per source and partition: partitions are independent lanes, applied side by side (as Kafka does).
		const lane = async (name: string, p: number) => {
			const s = this.source(name);
			const offsets = this.committed(options.group, name);
			while (running) {
				// A group that fell behind the retention resumes at the oldest event kept (Kafka's "earliest").
				if (offsets[p] < s.base[p]) offsets[p] = s.base[p];
				const from = offsets[p] - s.base[p];
				const events = s.partitions[p].slice(from, from + maxBatch);
				if (events.length) {
					const delivery: Delivery = { source: name, lane: p, events: structuredClone(events) };
					try {
						await options.handler(delivery);
						offsets[p] += events.length;
						continue;
					} catch (err) {
						options.onError?.(err as Error, delivery);
					}
				}
				if (!running) break;
				// Nothing new (or a rejected batch to redeliver after a pause): wait for a publish or the timer.
				await new Promise<void>(resolve => {
					const done = () => {
						s.waiters.delete(done);
						wakers.delete(done);
						clearTimeout(timer);
						resolve();
					};
					const timer = setTimeout(done, retryMs);
					s.waiters.add(done);
					wakers.add(done);
				});
			}
		};
		const wakers = new Set<() => void>();
		const loops = options.sources.flatMap(name => Array.from({ length: PARTITIONS }, (_, p) => lane(name, p)));
		const sub = {
			stop: async () => {
				running = false;
				for (const w of [...wakers]) w();
				await Promise.all(loops);
				this.subs.delete(sub);
			},
		};
		this.subs.add(sub);
		return sub;
	}

	async backlog(group: string, source: string, upTo?: LogPosition): Promise<number> {
		const s = this.source(source);
		const o = this.offsets.get(group)?.get(source) ?? new Array(PARTITIONS).fill(0);
		return s.partitions.reduce((n, events, p) => {
			const end = Math.min(s.base[p] + events.length, upTo?.[p] ?? Number.POSITIVE_INFINITY);
			return n + Math.max(0, end - Math.max(o[p], s.base[p]));
		}, 0);
	}

	async ends(source: string): Promise<LogPosition> {
		const s = this.source(source);
		return Object.fromEntries(s.partitions.map((events, p) => [p, s.base[p] + events.length]));
	}

	async close(): Promise<void> {
		this.closed = true;
		await Promise.all([...this.subs].map(s => s.stop()));
	}
}
