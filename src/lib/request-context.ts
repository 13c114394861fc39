// The context of the request a piece of code runs for, without passing ctx everywhere:
// every log line gets its request id, and SQL and cache calls become spans of the action's trace.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context, Middleware, ServiceBroker } from "moleculer";

const storage = new AsyncLocalStorage<Context>();

export const currentContext = (): Context | undefined => storage.getStore();

/** pino `mixin`: adds the request id (and the action) to every line logged inside a request. */
export function logBindings(): Record<string, unknown> {
	const ctx = storage.getStore();
	if (!ctx) return {};
	return { requestId: ctx.requestID, action: ctx.action?.name ?? ctx.event?.name };
}

/** Runs `fn` inside a child span of the current action's span, or plainly outside a request. */
export async function traced<T>(name: string, tags: Record<string, unknown> | (() => Record<string, unknown>), fn: () => Promise<T>): Promise<T> {
	const ctx = storage.getStore() as (Context & { tracing?: boolean }) | undefined;
	if (!ctx || !ctx.tracing) return fn();
	// Tags may be a function: what they cost to build (a statement's text, say) is paid only when traced.
	const span = ctx.startSpan(name, { tags: { ...(typeof tags === "function" ? tags() : tags), requestID: ctx.requestID } });
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

/** The meta key of a request's server-made trace id (the gateway sets it; see serverTraceIds). */
export const TRACE_ID = "traceId";

/**
 * Moleculer takes a trace's id from ctx.requestID, which is the client's X-Request-ID: two clients
 * sending the same one would share a trace. The request id stays the client's (logs, answers, the
 * spans' requestID tag); a span that would take its trace id from it takes the server-made id the
 * gateway put in meta instead. Child spans inherit it from their parent; other nodes get it with meta.
 */
export function serverTraceIds(broker: ServiceBroker) {
	const tracer = (broker as any).tracer;
	if (!tracer || tracer.$serverTraceIds) return;
	const startSpan = tracer.startSpan.bind(tracer);
	tracer.$serverTraceIds = true;
	tracer.startSpan = (name: string, opts: { ctx?: Context<unknown, any>; traceID?: string } = {}) => {
		const traceId = opts.ctx?.meta?.[TRACE_ID];
		if (typeof traceId === "string" && opts.traceID === opts.ctx!.requestID) opts = { ...opts, traceID: traceId };
		return startSpan(name, opts);
	};
}

export const RequestContextMiddleware: Middleware = {
	name: "RequestContext",
	created(broker: ServiceBroker) {
		serverTraceIds(broker);
	},
	localAction(handler: (ctx: Context) => Promise<unknown>) {
		return ((ctx: Context) => storage.run(ctx, () => handler(ctx))) as typeof handler;
	},
	localEvent(handler: (ctx: Context) => Promise<unknown>) {
		return ((ctx: Context) => storage.run(ctx, () => handler(ctx))) as typeof handler;
	},
} as Middleware;

/**
 * A context that acts as `service` itself, outside any request (timers, background loops): its calls of
 * internal actions are made, and proven, as that service's (middlewares/permissions.ts).
 */
export function serviceContext(service: { broker: import("moleculer").ServiceBroker; name: string }): import("moleculer").Context {
	const ctx = new service.broker.ContextFactory(service.broker, undefined);
	(ctx as unknown as { service: unknown }).service = service;
	return ctx;
}
