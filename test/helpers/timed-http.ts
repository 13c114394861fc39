// HTTP calls for fault tests: like helpers/http.ts, but each reply says how long it took, and the
// client's own deadline is long (30 s) so a slow server answer is measured, not cut off by the test.
import { tokenFor, type Reply } from "./http";

export interface TimedReply<T = any> extends Reply<T> {
	ms: number;
}

export class TimedClient {
	constructor(
		private base: string,
		private token: string,
		private deadlineMs = 30_000,
	) {}

	static async as(base: string, userId: string) {
		return new TimedClient(base, await tokenFor(userId));
	}

	async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<TimedReply<T>> {
		const started = performance.now();
		const res = await fetch(this.base + path, {
			method,
			headers: {
				...(body !== undefined ? { "content-type": "application/json" } : {}),
				...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
				...headers,
			},
			body: body === undefined ? undefined : JSON.stringify(body),
			signal: AbortSignal.timeout(this.deadlineMs),
		});
		const text = await res.text();
		let parsed: any = text;
		try {
			parsed = text ? JSON.parse(text) : undefined;
		} catch {
			/* not JSON: keep the text */
		}
		return { status: res.status, body: parsed, headers: res.headers, ms: performance.now() - started };
	}

	get = <T = any>(path: string) => this.request<T>("GET", path);
	post = <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => this.request<T>("POST", path, body ?? {}, headers);
}
