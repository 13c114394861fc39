// kafkajs 2.2.4 keeps every connection's request queue on a 1 ms timer forever: once a response arrives,
// `scheduleCheckPendingRequests` arms a timer of `throttledUntil - now` (negative, so 1 ms) even with nothing
// pending and no throttle, and the timer's check arms the next one (kafkajs issues #1556 and #1704; fix proposed
// in #1667, not released). Each node holds several connections (the event log's producer, consumer and admin,
// the region link's), so an idle node ran thousands of empty timers a second. This is the same method with the
// proposed fix: a check is scheduled only for a pending request (at the throttle's end, or soon) or for a
// throttle that has not ended. A request that finds the queue full is pushed as pending (which schedules a
// check), and every response checks the pending ones itself (fulfillRequest), so nothing waits on the timer.
//
// kafkajs is pinned to 2.2.4 (package.json); `test/integration/kafkajs-idle-fix.test.ts` fails if the patched
// method is gone or the loop comes back.

interface RequestQueue {
	throttledUntil: number;
	throttleCheckTimeoutId: NodeJS.Timeout | null;
	pending: unknown[];
	checkPendingRequests(): void;
	scheduleCheckPendingRequests(): void;
}

/** kafkajs's own interval for a check while requests are pending (src/network/requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

// kafkajs has no "exports" map: its internals are reachable, and its typings do not cover them.
const RequestQueueClass = require("kafkajs/src/network/requestQueue/index.js") as { prototype: RequestQueue };

const PATCHED = Symbol.for("wallet.kafkajs.idle-fix");

const proto = RequestQueueClass.prototype as RequestQueue & { [PATCHED]?: true };
if (typeof proto.scheduleCheckPendingRequests !== "function" || typeof proto.checkPendingRequests !== "function")
	throw new Error("kafkajs's RequestQueue has changed: review src/replication/kafkajs-idle-fix.ts for this version");

if (!proto[PATCHED]) {
	proto.scheduleCheckPendingRequests = function (this: RequestQueue) {
		if (this.throttleCheckTimeoutId) return;
		let at = this.throttledUntil - Date.now();
		if (this.pending.length > 0) at = at > 0 ? at : CHECK_PENDING_REQUESTS_INTERVAL;
		else if (at <= 0) return;
		this.throttleCheckTimeoutId = setTimeout(() => {
			this.throttleCheckTimeoutId = null;
			this.checkPendingRequests();
		}, at);
	};
	proto[PATCHED] = true;
}

/** The request queue class, for the test that checks the fix holds. */
export const KafkaRequestQueue = RequestQueueClass;
