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
}

export const AVAILABLE_SHARD = "AvailableShard";
