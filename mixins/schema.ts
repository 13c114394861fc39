// Moleculer's typings cannot be augmented from outside (its per-file .d.ts are not exported), so the
// action keys this project adds are typed here.
import type { ActionSchema, ServiceSchema } from "moleculer";

export type WalletAction = Omit<ActionSchema, "cache"> & {
	/** `kind` picks the TTL from the configuration; a list names the generations its key carries (see CacheMixin). */
	cache?:
		| boolean
		| (Exclude<ActionSchema["cache"], boolean | undefined> & { kind?: "entity" | "list"; generations?: (ctx: any) => string[] });
	/** Scope the acting user needs, or "internal" for service-to-service actions. */
	permission?: string;
	/** Per-action timeout in ms (read by Moleculer's Timeout middleware). */
	timeout?: number;
	strategyOptions?: Record<string, unknown>;
};

export type WalletService = Omit<ServiceSchema, "actions" | "settings"> & {
	merged?: (this: any, schema: any) => void;
	actions?: Record<string, WalletAction>;
	settings?: Record<string, any>;
};
