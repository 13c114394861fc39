// A bounded LRU whose entries also expire: verified tokens and assertions are kept until their own
// expiry, and the least recently used go first when it is full, so memory stays flat under any load.
export class TtlCache<V> {
	private readonly map = new Map<string, { value: V; expiresAt: number }>();
	hits = 0;
	misses = 0;

	constructor(readonly maxSize: number) {}

	get size() {
		return this.map.size;
	}

	/** The value, if present and not expired at `now` (ms since 1970). */
	get(key: string, now = Date.now()): V | undefined {
		const entry = this.map.get(key);
		if (!entry || entry.expiresAt <= now) {
			if (entry) this.map.delete(key);
			this.misses++;
			return undefined;
		}
		// Re-inserting moves the key to the young end of the Map's insertion order.
		this.map.delete(key);
		this.map.set(key, entry);
		this.hits++;
		return entry.value;
	}

	set(key: string, value: V, expiresAt: number): void {
		if (this.maxSize <= 0) return;
		this.map.delete(key);
		while (this.map.size >= this.maxSize) this.map.delete(this.map.keys().next().value!);
		this.map.set(key, { value, expiresAt });
	}
}
