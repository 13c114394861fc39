// A per-key mailbox: tasks for one key run one at a time, in arrival order; different keys run in
// parallel. This is the in-node half of the order actor (the Shard strategy is the cluster half).
export class Mailbox {
	private tails = new Map<string, Promise<unknown>>();

	run<T>(key: string, task: () => Promise<T>): Promise<T> {
		const prev = this.tails.get(key) ?? Promise.resolve();
		const result = prev.then(task, task);
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
