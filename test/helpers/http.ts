// A tiny REST client for tests: JSON in and out, a bearer token per user.
import { loadConfig } from "../../config";
import { signToken } from "../../src/lib/jwt";
import { TEST_JWT_SECRET } from "./env";

export interface Reply<T = any> {
	status: number;
	body: T;
	headers: Headers;
	/** How long the call took, in ms. */
	ms: number;
}

const jwt = loadConfig({ NODE_ENV: "test", JWT_SECRET: TEST_JWT_SECRET }).jwt;
export const tokenFor = (userId: string, scopes?: string[], ttl: string | number = "1h") =>
	signToken(jwt, userId, scopes ?? ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"], ttl);

export class Client {
	constructor(
		private base: string,
		private token?: string,
		/** The client's own deadline: long enough that a slow server answer is measured, not cut off. */
		private deadlineMs = 15_000,
	) {}

	static async as(base: string, userId: string, scopes?: string[]) {
		return new Client(base, await tokenFor(userId, scopes));
	}

	async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
		const started = performance.now();
		const res = await fetch(this.base + path, {
			method,
			headers: {
				...(body !== undefined ? { "content-type": "application/json" } : {}),
				...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
				...headers,
			},
			body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
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

	get = <T = any>(path: string, headers?: Record<string, string>) => this.request<T>("GET", path, undefined, headers);
	post = <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => this.request<T>("POST", path, body ?? {}, headers);
	patch = <T = any>(path: string, body?: unknown) => this.request<T>("PATCH", path, body);
}

export const item = (unitPrice: string, quantity = 1, sku = "sku-1") => ({ sku, name: `Item ${sku}`, unitPrice, quantity });
