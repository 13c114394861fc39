// Permission checks in the actions themselves, so REST, the REPL and service-to-service calls all
// pass the same gate. An action declares `permission: "<scope>"` (or "internal"). The acting user is
// ctx.meta.user, or the subject of a JWT given as ctx.meta.token (how the REPL acts as a user).
// A call without a user is accepted only from a trusted service.
import type { Context, Middleware } from "moleculer";
import { forbidden, unauthorized } from "../src/domain/errors";
import { hasScope, isAdmin, type Scope } from "../src/domain/permissions";
import type { User } from "../src/domain/types";
import type { Verifier } from "../src/lib/jwt";

export type Permission = Scope | "internal";

export interface AuthMeta {
	user?: User;
	token?: string;
}

function isUser(u: unknown): u is User {
	return (
		typeof u === "object" && u !== null && typeof (u as User).id === "string" && Array.isArray((u as User).scopes)
	);
}

export function PermissionsMiddleware(verify: Verifier, trustedServices: string[]): Middleware {
	return {
		name: "Permissions",
		localAction(handler: (ctx: Context) => Promise<unknown>, action: { permission?: Permission }) {
			const permission = action.permission;
			if (!permission) return handler;
			return async function checkPermission(ctx: Context<unknown, AuthMeta>) {
				if (!ctx.meta.user && typeof ctx.meta.token === "string") ctx.meta.user = await verify(ctx.meta.token);
				const user = ctx.meta.user;
				const trustedCaller = ctx.caller != null && trustedServices.includes(ctx.caller.split(".").pop()!);
				if (!user) {
					if (trustedCaller) return handler(ctx);
					throw unauthorized("This action needs a user (ctx.meta.user or ctx.meta.token)");
				}
				if (!isUser(user)) throw unauthorized("ctx.meta.user must be {id, scopes}");
				if (permission === "internal") {
					if (trustedCaller || isAdmin(user)) return handler(ctx);
					throw forbidden("INTERNAL_ACTION", "This action is only callable by the services");
				}
				if (!hasScope(user, permission))
					throw forbidden("MISSING_SCOPE", `This needs the "${permission}" scope`, { scope: permission });
				return handler(ctx);
			} as unknown as typeof handler;
		},
	} as Middleware;
}

