// The project's load-balancing strategies, registered by the broker configuration itself: every node
// built from moleculer.config.ts knows them, whichever services it runs. (A strategy registered as a side
// effect of importing a service was unknown to nodes without that service: "Invalid strategy type".)
import { Strategies } from "moleculer";
import { AVAILABLE_SHARD, AvailableShardStrategy } from "./available-shard";
import { HEALTHY_ROUND_ROBIN, HealthyRoundRobinStrategy } from "./outliers";

export function registerStrategies(): void {
	const registry = Strategies as unknown as { register(name: string, cls: unknown): void };
	registry.register(AVAILABLE_SHARD, AvailableShardStrategy);
	registry.register(HEALTHY_ROUND_ROBIN, HealthyRoundRobinStrategy);
}
