// Per-action fault tolerance, in one place (the README's table is this file). Moleculer applies them
// as middlewares, from the inside out: Bulkhead, Cacher, CircuitBreaker, Timeout, Retry, Fallback.
// Timeouts are distributed: a nested call gets what is left of its caller's budget.

/** Reads: retried (they change nothing), short timeout, generous bulkhead. */
export const READ = {
	timeout: 2500,
	retryPolicy: { enabled: true, retries: 2, delay: 50, maxDelay: 400, factor: 2 },
	bulkhead: { enabled: true, concurrency: 32, maxQueueSize: 256 },
	circuitBreaker: { threshold: 0.5 },
};

/**
 * The internal `*.find` behind every `get`: its attempts are shorter than the caller's, so a node that
 * hangs is left for another one while the caller's attempt is still running (else both time out at
 * once and the healthy node in between gets the blame).
 */
export const INNER_READ = { ...READ, timeout: 1000 };

/** Writes that are not idempotent: never retried (a retry could apply them twice). */
export const WRITE = {
	timeout: 5000,
	retryPolicy: { enabled: false },
	bulkhead: { enabled: true, concurrency: 16, maxQueueSize: 128 },
	circuitBreaker: { threshold: 0.5 },
};

/**
 * `claiming.claim` only validates and forwards to the order actor, so its bulkhead is a queue, not a limit on
 * work: measured with `npm run bench`, claims/s stop rising past 16 in flight per node (the actor's batches
 * are the real concurrency), so a burst of 512 is better queued within the deadline than shed. 64 run at
 * once and 1,024 wait; a queued claim whose deadline passes is dropped before it reaches the database.
 */
export const CLAIM = {
	...WRITE,
	// Idempotent by (claimer, Idempotency-Key): a retry returns the first result.
	retryPolicy: { enabled: true, retries: 2, delay: 100, maxDelay: 800, factor: 2 },
	bulkhead: { enabled: true, concurrency: 64, maxQueueSize: 1024 },
};

/** Gateways and thin wrappers that only forward: a timeout, no bulkhead of their own. */
export const FORWARD = {
	timeout: 6000,
	retryPolicy: { enabled: false },
	circuitBreaker: { threshold: 0.5 },
};

/** The order actor: its queue is the mailbox; the bulkhead bounds how many orders run at once. */
export const ACTOR = {
	timeout: 4000,
	retryPolicy: { enabled: false },
	bulkhead: { enabled: true, concurrency: 64, maxQueueSize: 1024 },
	// A node whose commands fail (its database link, a bug) is taken out of the shard ring quickly.
	circuitBreaker: { threshold: 0.3 },
};
