// Moleculer's typings cannot be augmented from outside (its per-file .d.ts are not exported), so the
// action keys this project adds are typed here.
import type { ActionSchema, Service, ServiceSchema } from "moleculer";

export type WalletAction<This> = Omit<ActionSchema, "cache" | "handler"> & {
	handler?: (this: This, ctx: any) => unknown;
	/** `kind` picks the TTL from the configuration; a list names the generations its key carries (see CacheMixin). */
	cache?:
		| boolean
		| (Exclude<ActionSchema["cache"], boolean | undefined> & { kind?: "entity" | "list"; generations?: (ctx: any) => string[] });
	/** Scope the acting user needs, or "internal" for service-to-service actions. */
	permission?: string;
	/** Per-action timeout in ms (read by Moleculer's Timeout middleware). */
	timeout?: number;
	strategyOptions?: Record<string, unknown>;
	/** Writes an entity that has a home region: refused here with NOT_OWNER, it runs in the owner's region (middlewares/home-region.ts). */
	home?: boolean;
};

/** A service schema whose handlers, methods and lifecycle handlers see `this` as `This`. */
export type WalletService<This> = Omit<ServiceSchema, "mixins" | "actions" | "settings" | "methods" | "created" | "started" | "stopped"> & {
	/** A mixin typed for a `this` that `This` extends (DbMixin, CacheMixin), or a plain Moleculer schema (moleculer-web, RoleFollowerMixin). */
	mixins?: (Partial<WalletService<This>> | Partial<ServiceSchema>)[];
	/** Called with the merged schema before the service is built from it: `this` has its broker, nothing of the schema yet. */
	merged?: (this: Service, schema: ServiceSchema) => void;
	actions?: Record<string, WalletAction<This>>;
	methods?: Record<string, (this: This, ...args: any[]) => any>;
	settings?: Record<string, any>;
	created?: (this: This) => void;
	started?: (this: This) => void | Promise<void>;
	stopped?: (this: This) => void | Promise<void>;
};
