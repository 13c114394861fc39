// A per-key mailbox: tasks for one key run one at a time, in arrival order; different keys run in
// parallel. This is the in-node half of the order actor (the Shard strategy is the cluster half).
// A task whose caller's deadline passed while it waited is dropped, not run: its caller has already
// been told the outcome is unknown, and running it late would only hold locks for nobody.
export class Mailbox {
	private tails = new Map<string, Promise<unknown>>();

	constructor(private expired: () => Error = () => new Error("The task's deadline passed while it waited")) {}

	run<T>(key: string, task: () => Promise<T>, deadline?: number): Promise<T> {
		const prev = this.tails.get(key) ?? Promise.resolve();
		const start = () => (deadline !== undefined && Date.now() >= deadline ? Promise.reject(this.expired()) : task());
		const result = prev.then(start, start);
		const tail = result.then(
			() => undefined,
			() => undefined,
		);
		this.tails.set(key, tail);
		// Forget the key once its queue drains, so the map holds only busy keys.
		tail.then(() => {
			if (this.tails.get(key) === tail) this.tails.delete(key);
		});
		return result;
	}

	get size(): number {
		return this.tails.size;
	}
}
