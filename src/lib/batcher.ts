// Group commit: items submitted while earlier batches are in flight are carried out together, in one call
// (one transaction), with one outcome per item. An item that finds no batch in flight goes out at once, so
// a quiet node adds no latency. Under load, items queue while `concurrency` batches run, or for up to
// `windowMs` while any batch runs, and leave in batches of up to `maxItems`: on a busy node each database
// round trip costs far more than the rows it carries (docs/benchmarks.md). An item whose caller's deadline
// has passed while it queued is dropped.
export interface BatcherOptions {
	/** Batches in flight at once (each holds one database connection). */
	concurrency: number;
	maxItems: number;
	/** How long the first item of a batch waits for company while another batch is in flight; 0: never. */
	windowMs: number;
}

/** One item's outcome, for a batch whose items succeed or fail one by one. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * The items in one call; if that fails, each alone, so one item the callee refuses fails only itself. A failure
 * `failsAll` recognises (e.g. a region that writes none of them) is every item's, and nothing is tried again.
 */
export async function togetherElseAlone<I, O>(
	items: I[],
	together: (items: I[]) => Promise<O[]>,
	alone: (item: I) => Promise<O>,
	failsAll: (error: unknown) => boolean = () => false,
): Promise<Settled<O>[]> {
	try {
		return (await together(items)).map(value => ({ ok: true as const, value }));
	} catch (error) {
		if (items.length === 1 || failsAll(error)) return items.map(() => ({ ok: false as const, error }));
		const out: Settled<O>[] = [];
		for (const item of items)
			out.push(
				await alone(item).then(
					value => ({ ok: true as const, value }),
					(e: unknown) => ({ ok: false as const, error: e }),
				),
			);
		return out;
	}
}

interface Pending<I, O> {
	item: I;
	deadline?: number;
	resolve(o: O): void;
	reject(e: unknown): void;
}

export class Batcher<I, O> {
	private queue: Pending<I, O>[] = [];
	private inFlight = 0;
	private timer?: NodeJS.Timeout;

	constructor(
		private run: (items: I[]) => Promise<O[]>,
		private opts: BatcherOptions,
		private expired: () => Error,
		private onBatch?: (size: number) => void,
	) {}

	submit(item: I, deadline?: number): Promise<O> {
		return new Promise<O>((resolve, reject) => {
			this.queue.push({ item, deadline, resolve, reject });
			this.schedule();
		});
	}

	get queued(): number {
		return this.queue.length;
	}

	private schedule() {
		if (this.inFlight >= this.opts.concurrency || this.queue.length === 0) return;
		if (this.opts.windowMs > 0 && this.inFlight > 0 && this.queue.length < this.opts.maxItems) {
			this.timer ??= setTimeout(() => {
				this.timer = undefined;
				this.flush();
			}, this.opts.windowMs);
			return;
		}
		this.flush();
	}

	private flush() {
		clearTimeout(this.timer);
		this.timer = undefined;
		while (this.inFlight < this.opts.concurrency && this.queue.length > 0) {
			const now = Date.now();
			const batch: Pending<I, O>[] = [];
			while (batch.length < this.opts.maxItems && this.queue.length > 0) {
				const p = this.queue.shift()!;
				if (p.deadline !== undefined && p.deadline <= now) p.reject(this.expired());
				else batch.push(p);
			}
			if (batch.length === 0) continue;
			this.inFlight++;
			this.onBatch?.(batch.length);
			this.run(batch.map(p => p.item))
				.then(
					outs => batch.forEach((p, i) => p.resolve(outs[i])),
					err => batch.forEach(p => p.reject(err)),
				)
				.finally(() => {
					this.inFlight--;
					this.schedule();
				});
		}
	}
}
