// One budget per call, however many attempts. A call's timeout option (the gateway's request budget,
// or what is left of the caller's) is the budget; an action's own `timeout` bounds each attempt.
// Without this, Moleculer's Retry copies the options into each attempt and every retry gets the full
// timeout again (3 attempts × 8 s), while the action's timeout is ignored whenever the caller gave one.
// Sits between Retry (outside) and Timeout (inside).
import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";

type Options = { timeout?: number; deadline?: number };

/** The call's deadline (epoch ms) set by DeadlineMiddleware, if it has one. */
export const deadlineOf = (ctx: Context): number | undefined => (ctx.options as Options).deadline;

/** The error of a queued item (a mailbox's, a batcher's) dropped because its caller's deadline passed first. */
export const skipped = (action: string) => () => new Errors.RequestSkippedError({ action, nodeID: "" });

export function DeadlineMiddleware(broker: ServiceBroker): Middleware {
	const wrap = (handler: (ctx: Context) => Promise<unknown>, action: { name: string; timeout?: number }) =>
		function deadline(ctx: Context) {
			const o = ctx.options as Options;
			if (o.deadline == null) {
				const budget = o.timeout ?? broker.options.requestTimeout ?? 0;
				if (budget <= 0) return handler(ctx);
				o.deadline = Date.now() + budget;
			}
			const left = o.deadline - Date.now();
			if (left <= 0) return Promise.reject(new Errors.RequestTimeoutError({ action: action.name, nodeID: broker.nodeID }));
			o.timeout = action.timeout && action.timeout < left ? action.timeout : left;
			return handler(ctx);
		};
	return { name: "Deadline", localAction: wrap, remoteAction: wrap } as unknown as Middleware;
}
