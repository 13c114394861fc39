// Moleculer's Shard strategy rebuilds its hash ring only when nodes come and go. When a circuit
// breaker hides an endpoint, the ring still names that node, no endpoint matches, and the call fails
// with INVALID_ENDPOINT on the healthy node. This variant rebuilds the ring whenever the set of
// available endpoints changes, so a tripped (or timing-out) node leaves the ring and its keys move.
import { Strategies } from "moleculer";
import { healthy } from "./outliers";

const Shard = (Strategies as any).Shard as new (...args: any[]) => any;

export class AvailableShardStrategy extends Shard {
	private signature = "";

	select(all: { id: string }[], ctx: unknown) {
		// Nodes that just timed out leave the ring too (src/lib/outliers.ts).
		const list = healthy(this.broker, all);
		const signature = list
			.map(ep => ep.id)
			.sort()
			.join(",");
		if (signature !== this.signature) {
			this.signature = signature;
			this.needRebuild = true;
		}
		return super.select(list, ctx);
	}

	/**
	 * The key from the call's params; and where the gateway picks the endpoint (moleculer-web resolves it with its
	 * own context, whose params are the HTTP request), from the action's params it parsed (`req.$params`). Without
	 * that, a REST call of a sharded action went to a random node.
	 */
	getKeyFromContext(ctx: { params?: { req?: { $params?: Record<string, unknown> } } } | undefined) {
		const key = super.getKeyFromContext(ctx);
		if (key != null) return key;
		const shardKey = this.opts.shardKey;
		const parsed = ctx?.params?.req?.$params;
		return parsed && typeof shardKey === "string" && !shardKey.startsWith("#") ? (parsed[shardKey] ?? null) : null;
	}
}

export const AVAILABLE_SHARD = "AvailableShard";
