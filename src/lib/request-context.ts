// The context of the request a piece of code runs for, without passing ctx everywhere:
// every log line gets its request id, and SQL and cache calls become spans of the action's trace.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, Middleware } from "moleculer";

const storage = new AsyncLocalStorage<Context>();

export const currentContext = (): Context | undefined => storage.getStore();

/** pino `mixin`: adds the request id (and the action) to every line logged inside a request. */
export function logBindings(): Record<string, unknown> {
	const ctx = storage.getStore();
	if (!ctx) return {};
	return { requestId: ctx.requestID, action: ctx.action?.name ?? ctx.event?.name };
}

/** Runs `fn` inside a child span of the current action's span, or plainly outside a request. */
export async function traced<T>(name: string, tags: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
	const ctx = storage.getStore() as (Context & { tracing?: boolean }) | undefined;
	if (!ctx || !ctx.tracing) return fn();
	const span = ctx.startSpan(name, { tags: { ...tags, requestID: ctx.requestID } });
	try {
		const result = await fn();
		ctx.finishSpan(span);
		return result;
	} catch (err) {
		span.setError(err as Error);
		ctx.finishSpan(span);
		throw err;
	}
}

export const RequestContextMiddleware: Middleware = {
	name: "RequestContext",
	localAction(handler: (ctx: Context) => Promise<unknown>) {
		return ((ctx: Context) => storage.run(ctx, () => handler(ctx))) as typeof handler;
	},
	localEvent(handler: (ctx: Context) => Promise<unknown>) {
		return ((ctx: Context) => storage.run(ctx, () => handler(ctx))) as typeof handler;
	},
} as Middleware;
