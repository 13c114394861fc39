// Permission checks in the actions themselves, so REST, the REPL and service-to-service calls all
// pass the same gate. An action declares `permission: "<scope>"` (or "internal").
//
// Nothing a caller merely states is believed (docs/security.md). The acting user is whoever a
// verifiable credential in meta names: a user assertion signed by a gateway (`meta.assertion`), or a
// bearer token (`meta.token`, how the REPL acts as a user). An unsigned `meta.user` is overwritten.
// An "internal" action needs a calling service: a service of this very process (the parent context
// is a local service), or a remote one that signed a service assertion (ctx.headers, added to every
// outgoing remote call made from inside an action). `ctx.caller` is never trusted: the caller sets it.
import type { Context, Middleware, ServiceBroker } from "moleculer";
import { forbidden, unauthorized } from "../src/domain/errors";
import { hasScope, type Scope } from "../src/domain/permissions";
import type { User } from "../src/domain/types";
import { SERVICE_HEADER, type Identity } from "../src/lib/identity";

export type Permission = Scope | "internal";

export interface AuthMeta {
	user?: User;
	token?: string;
	assertion?: string;
	/** A region's signed call over the region link (internal actions only). */
	$link?: string;
}

type Ctx = Context<unknown, AuthMeta> & { options: { parentCtx?: Context }; headers: Record<string, unknown> };

/** The user a verifiable credential in meta names, or undefined when there is none. */
async function userOf(ctx: Ctx, identity: Identity): Promise<User | undefined> {
	const { assertion, token } = ctx.meta;
	if (assertion !== undefined) return identity.internal.verifyUser(assertion, ctx.requestID);
	if (token !== undefined) {
		if (typeof token !== "string") throw unauthorized("ctx.meta.token must be a JWT", "INVALID_TOKEN");
		return (await identity.bearer(token)).user;
	}
	return undefined;
}

/** The calling service, if the caller proves to be one; undefined for anyone else. */
async function serviceOf(ctx: Ctx, identity: Identity, broker: ServiceBroker): Promise<string | undefined> {
	// A local call made from inside an action: the parent context is an object of this process,
	// which no peer can forge (a remote request never has one).
	const parent = ctx.options?.parentCtx;
	if (parent?.service && parent.broker === broker) {
		const name = parent.service.name;
		return identity.trustedServices.includes(name) ? name : undefined;
	}
	const signed = ctx.headers?.[SERVICE_HEADER];
	if (signed === undefined) return undefined;
	const name = await identity.internal.verifyService(signed as string, ctx.requestID, ctx.nodeID);
	return identity.trustedServices.includes(name) ? name : undefined;
}

export function PermissionsMiddleware(identity: Identity): Middleware {
	let broker: ServiceBroker;
	return {
		name: "Permissions",
		created(b: ServiceBroker) {
			broker = b;
		},
		localAction(handler: (ctx: Context) => Promise<unknown>, action: { name: string; permission?: Permission }) {
			const permission = action.permission;
			if (!permission) return handler;
			return async function checkPermission(ctx: Ctx) {
				const user = await userOf(ctx, identity);
				// Whatever the caller put there, the handler sees only the verified user.
				if (user) ctx.meta.user = user;
				else delete ctx.meta.user;
				if (permission === "internal") {
					if (await serviceOf(ctx, identity, broker)) return handler(ctx);
					if (ctx.meta.$link !== undefined && (await identity.internal.verifyLink(ctx.meta.$link, action.name, ctx.requestID)))
						return handler(ctx);
					throw forbidden("INTERNAL_ACTION", "This action is only callable by the services");
				}
				if (!user) throw unauthorized("This action needs a user (ctx.meta.token or a gateway's assertion)");
				if (!hasScope(user, permission))
					throw forbidden("MISSING_SCOPE", `This needs the "${permission}" scope`, { scope: permission });
				return handler(ctx);
			} as unknown as typeof handler;
		},
		// Outgoing: a call made from inside one of our services to an internal action says so, signed,
		// for this hop only. (If a peer misdeclared an action, its call fails closed with 403.)
		remoteAction(handler: (ctx: Context) => Promise<unknown>, action: { permission?: Permission }) {
			if (action.permission !== "internal") return handler;
			return async function signCaller(ctx: Ctx) {
				const service = ctx.options?.parentCtx?.service;
				if (service && identity.trustedServices.includes(service.name)) {
					const assertion = await identity.internal.signService(service.name, broker.nodeID, ctx.requestID!);
					ctx.headers = { ...ctx.headers, [SERVICE_HEADER]: assertion };
				}
				return handler(ctx);
			} as unknown as typeof handler;
		},
	} as Middleware;
}
