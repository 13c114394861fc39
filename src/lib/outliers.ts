// Passive outlier detection: a node that just let a call time out is avoided for a few seconds,
// so a retry goes to another node instead of waiting on the same dead one until heartbeats notice
// (which takes up to twice the heartbeat timeout). Only a hint: with no other node left, it is used.
import { Strategies, type Middleware, type ServiceBroker } from "moleculer";

const SUSPECT_MS = 5000;
const suspects = new WeakMap<ServiceBroker, Map<string, number>>();

function table(broker: ServiceBroker) {
	let t = suspects.get(broker);
	if (!t) suspects.set(broker, (t = new Map()));
	return t;
}

export function isSuspect(broker: ServiceBroker, nodeID: string): boolean {
	const until = table(broker).get(nodeID);
	if (until === undefined) return false;
	if (until > Date.now()) return true;
	table(broker).delete(nodeID);
	return false;
}

/** The endpoints worth trying: the unsuspected ones, or all of them if every one is suspect. */
export function healthy<T extends { id: string }>(broker: ServiceBroker, list: T[]): T[] {
	const ok = list.filter(ep => !isSuspect(broker, ep.id));
	return ok.length ? ok : list;
}

export function OutlierMiddleware(broker: ServiceBroker): Middleware {
	return {
		name: "Outliers",
		remoteAction(handler: (ctx: any) => Promise<unknown>) {
			return (ctx: any) =>
				handler(ctx).catch((err: { type?: string; data?: { nodeID?: string } }) => {
					// A timeout raised deeper down names the node that timed out; blame that one, not the
					// healthy node in between that passed the error on.
					const nodeID = err?.data?.nodeID ?? ctx.nodeID;
					if (err?.type === "REQUEST_TIMEOUT" && nodeID && nodeID !== broker.nodeID)
						table(broker).set(nodeID, Date.now() + SUSPECT_MS);
					throw err;
				});
		},
	} as unknown as Middleware;
}

const RoundRobin = (Strategies as any).RoundRobin as new (...args: any[]) => any;

/** Round robin over the nodes that have not just timed out. The broker's default strategy. */
export class HealthyRoundRobinStrategy extends RoundRobin {
	select(list: { id: string }[], ctx: unknown) {
		return super.select(healthy(this.broker, list), ctx);
	}
}

export const HEALTHY_ROUND_ROBIN = "HealthyRoundRobin";
