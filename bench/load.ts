// Load for the claim path, with unique bodies and keys (autocannon repeats one request), recorded in a
// History so the checkers can hold every 201 against the database afterwards. Closed loop: N clients,
// each sends its next claim when the last one answered. Open loop: claims leave at a fixed rate whatever
// the answers, and latency counts from when a claim was due, so a slow server cannot hide its queue
// (no coordinated omission). Every run is bounded in time.
import autocannon from "autocannon";
import { Pool } from "undici";
import { History } from "../src/checker/history";

export interface Shopper {
	userId: string;
	token: string;
	supplyId: string;
}

export interface ClaimWork {
	pool: Pool;
	shoppers: Shopper[];
	/** Open orders nobody has claimed yet; each run takes from the front. */
	orders: string[];
	history: History;
	keyPrefix: string;
}

export interface LatencyStats {
	sent: number;
	ok: number;
	seconds: number;
	perSecond: number;
	p50: number;
	p95: number;
	p99: number;
	max: number;
	statuses: Record<string, number>;
	/** The run ended early because the seeded orders ran out. */
	exhausted?: boolean;
}

export function percentile(sorted: number[], p: number): number {
	if (!sorted.length) return 0;
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x: number) => Math.round(x * 10) / 10;

function stats(latencies: number[], statuses: Record<string, number>, seconds: number, exhausted: boolean): LatencyStats {
	latencies.sort((a, b) => a - b);
	const ok = statuses["201"] ?? 0;
	return {
		sent: latencies.length,
		ok,
		seconds: round(seconds),
		perSecond: Math.round(ok / seconds),
		p50: round(percentile(latencies, 50)),
		p95: round(percentile(latencies, 95)),
		p99: round(percentile(latencies, 99)),
		max: round(latencies.at(-1) ?? 0),
		statuses,
		...(exhausted ? { exhausted } : {}),
	};
}

let seq = 0;
/** One body per 5xx status seen, so a run that met errors says which. */
export const errorSamples = new Map<number, string>();

/** One claim; resolves with its status (0: no answer) and never throws. */
async function claim(w: ClaimWork, shopper: Shopper, orderId: string): Promise<number> {
	const key = `${w.keyPrefix}-${++seq}`;
	const done = w.history.begin({ op: "claim", userId: shopper.userId, idempotencyKey: key, orderId, supplyId: shopper.supplyId });
	try {
		const r = await w.pool.request({
			method: "POST",
			path: "/api/v1/claims",
			headers: { authorization: `Bearer ${shopper.token}`, "content-type": "application/json", "idempotency-key": key },
			body: JSON.stringify({ orderId, supplyId: shopper.supplyId }),
			headersTimeout: 15_000,
			bodyTimeout: 15_000,
		});
		const body = await r.body.json().catch(() => undefined);
		done(r.statusCode, body, r.headers["idempotent-replayed"] === "true");
		if (r.statusCode >= 500 && !errorSamples.has(r.statusCode)) errorSamples.set(r.statusCode, JSON.stringify(body));
		return r.statusCode;
	} catch (err) {
		done(0, { error: String(err) });
		return 0;
	}
}

export async function closedLoop(w: ClaimWork, concurrency: number, seconds: number): Promise<LatencyStats> {
	const latencies: number[] = [];
	const statuses: Record<string, number> = {};
	const started = performance.now();
	const until = started + seconds * 1000;
	let exhausted = false;
	await Promise.all(
		Array.from({ length: concurrency }, async (_, i) => {
			const shopper = w.shoppers[i % w.shoppers.length];
			while (performance.now() < until) {
				const orderId = w.orders.shift();
				if (!orderId) {
					exhausted = true;
					return;
				}
				const t = performance.now();
				const status = await claim(w, shopper, orderId);
				latencies.push(performance.now() - t);
				statuses[status] = (statuses[status] ?? 0) + 1;
			}
		}),
	);
	return stats(latencies, statuses, (performance.now() - started) / 1000, exhausted);
}

export async function openLoop(w: ClaimWork, rate: number, seconds: number): Promise<LatencyStats> {
	const latencies: number[] = [];
	const statuses: Record<string, number> = {};
	const total = Math.round(rate * seconds);
	const inFlight: Promise<void>[] = [];
	const started = performance.now();
	let sent = 0;
	let exhausted = false;
	while (sent < total) {
		const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
		for (; sent < due; sent++) {
			const orderId = w.orders.shift();
			if (!orderId) {
				exhausted = true;
				break;
			}
			const scheduled = started + (sent * 1000) / rate;
			const shopper = w.shoppers[sent % w.shoppers.length];
			inFlight.push(
				claim(w, shopper, orderId).then(status => {
					latencies.push(performance.now() - scheduled);
					statuses[status] = (statuses[status] ?? 0) + 1;
				}),
			);
		}
		if (exhausted) break;
		await new Promise(r => setTimeout(r, 1));
	}
	await Promise.all(inFlight);
	return stats(latencies, statuses, Math.max(seconds, (performance.now() - started) / 1000), exhausted);
}

export interface ThroughputStats {
	perSecond: number;
	p50: number;
	p99: number;
	non2xx: number;
	errors: number;
}

/** The same GET as fast as `connections` clients can send it (autocannon). */
export async function hammer(url: string, headers: Record<string, string>, connections: number, seconds: number): Promise<ThroughputStats> {
	const r = await autocannon({ url, headers, connections, duration: seconds, timeout: 10 });
	return { perSecond: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts };
}
