// For the services that call the region role's `regions` actions (the link, for other regions' pings and votes;
// the gateway, for /api/v1/regions). When a node takes the region role over (services/regions.service.ts), the
// node that had it may have died without a word: the registry would keep its endpoints until the heartbeat
// timeout (HEARTBEAT_TIMEOUT, seconds), and calls balanced onto them would time out meanwhile, long enough for the
// other regions to see this one down. So the new holder says so, and every node forgets the other `regions`
// endpoints at once. A node that still runs it (it cannot act: its lock is gone) announces it again with its next
// INFO.
import type { Context, ServiceBroker, ServiceSchema } from "moleculer";

export const ROLE_TAKEN = "region-role.taken";

export const RoleFollowerMixin: Partial<ServiceSchema> = {
	events: {
		[ROLE_TAKEN]: {
			handler(this: { broker: ServiceBroker }, ctx: Context<{ node: string }>) {
				const registry = this.broker.registry as unknown as {
					getServiceList(o: object): { name: string; fullName: string; nodeID: string }[];
					unregisterService(fullName: string, nodeID: string): void;
				};
				for (const s of registry.getServiceList({ onlyLocal: false, onlyAvailable: false, skipInternal: true }))
					if (s.name === "regions" && s.nodeID !== ctx.params.node && s.nodeID !== this.broker.nodeID) registry.unregisterService(s.fullName, s.nodeID);
			},
		},
	},
};
