// Reads the generations a cached list depends on (one MGET, or a lookup in memory) before the Cacher
// builds the list's key. It sits between the Validator (outside) and the Cacher (inside), so the key is
// built from validated, converted parameters and the current generations.
import type { Context, Middleware } from "moleculer";
import { isGenerational } from "./cache-store";

/** ctx.locals field holding the generations the list's key is built with. */
export const GENERATIONS = "cacheGenerations";

export type GenerationsOf = (ctx: Context<any, any>) => string[];

export const CacheGenerationsMiddleware: Middleware = {
	name: "CacheGenerations",
	localAction(handler: (ctx: Context) => Promise<unknown>, action: { cache?: { generations?: GenerationsOf } }) {
		const generationsOf = action.cache?.generations;
		if (typeof generationsOf !== "function") return handler;
		return async function readGenerations(ctx: Context<any, any>) {
			const cacher = ctx.broker.cacher;
			if (isGenerational(cacher) && ctx.meta.$cache !== false) {
				// Undefined when the store is away: the list is then not cached (see `enabled` in the mixin).
				(ctx.locals as Record<string, unknown>)[GENERATIONS] = await cacher.readGenerations(generationsOf(ctx));
			}
			return handler(ctx);
		} as unknown as typeof handler;
	},
} as Middleware;
