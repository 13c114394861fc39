import { SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../config";
import { InternalAuth, SERVICE_ASSERTION, USER_ASSERTION } from "../../src/lib/identity";
import { signToken } from "../../src/lib/jwt";

const SECRET = "an-internal-secret-of-at-least-32-chars!";
const opts = { secret: SECRET, namespace: "wallet", ttlSec: 30, clockToleranceSec: 5, cacheSize: 100 };
const auth = new InternalAuth(opts);
const alice = { id: "alice", scopes: ["order:read", "order:write"] };
const invalid = { code: 401, type: "INVALID_ASSERTION" };
const now = () => Math.floor(Date.now() / 1000);

/** An assertion built by hand, as a forger with (or without) the key would. */
function forge(o: { typ?: string; sub?: string; rid?: string; node?: string; exp?: number; aud?: string; key?: string; scope?: unknown }) {
	return new SignJWT({ scope: o.scope ?? ["admin"], rid: o.rid ?? "req-1", ...(o.node ? { node: o.node } : {}) })
		.setProtectedHeader({ alg: "HS256", typ: o.typ ?? USER_ASSERTION })
		.setSubject(o.sub ?? "mallory")
		.setAudience(o.aud ?? "wallet")
		.setExpirationTime(o.exp ?? now() + 30)
		.sign(new TextEncoder().encode(o.key ?? SECRET));
}

afterEach(() => {
	vi.useRealTimers();
});

describe("user assertions", () => {
	it("carry the user to the request they were signed for", async () => {
		const a = await auth.signUser(alice, "req-1");
		await expect(auth.verifyUser(a, "req-1")).resolves.toEqual(alice);
	});

	it("are refused for another request", async () => {
		const a = await auth.signUser(alice, "req-1");
		await expect(auth.verifyUser(a, "req-2")).rejects.toMatchObject(invalid);
		await expect(auth.verifyUser(a, undefined)).rejects.toMatchObject(invalid);
	});

	it("are refused when signed with another key, even with every claim right", async () => {
		await expect(auth.verifyUser(await forge({ key: "x".repeat(40) }), "req-1")).rejects.toMatchObject(invalid);
		// The same forgery with the right key passes: the key is what is refused above.
		await expect(auth.verifyUser(await forge({}), "req-1")).resolves.toEqual({ id: "mallory", scopes: ["admin"] });
	});

	it("expire after INTERNAL_ASSERTION_TTL_SEC, and never outlive the bearer token", async () => {
		const a = await auth.signUser(alice, "req-1");
		await auth.verifyUser(a, "req-1"); // cached now: the cache must honour the expiry too
		vi.useFakeTimers({ now: Date.now() + 36_000, toFake: ["Date"] });
		await expect(auth.verifyUser(a, "req-1")).rejects.toMatchObject(invalid);
		vi.useRealTimers();
		const short = await auth.signUser(alice, "req-1", now() - 10);
		await expect(auth.verifyUser(short, "req-1")).rejects.toMatchObject(invalid);
		await expect(auth.verifyUser(await forge({ exp: now() - 10 }), "req-1")).rejects.toMatchObject(invalid);
	});

	it("are found verified in the process that signed them (the gateway's own node), and only for their request", async () => {
		const fresh = new InternalAuth(opts);
		const a = await fresh.signUser(alice, "req-1");
		expect(await fresh.verifyUser(a, "req-1")).toEqual(alice);
		expect(fresh.cache.hits).toBe(1);
		await expect(fresh.verifyUser(a, "req-2")).rejects.toMatchObject(invalid);
	});

	it("are refused in another namespace", async () => {
		const other = new InternalAuth({ ...opts, namespace: "other" });
		await expect(other.verifyUser(await auth.signUser(alice, "req-1"), "req-1")).rejects.toMatchObject(invalid);
	});

	it("cannot pass for a service assertion, nor a bearer token for either", async () => {
		const user = await auth.signUser({ id: "claiming", scopes: [] }, "req-1");
		await expect(auth.verifyService(user, "req-1", "node-1")).rejects.toMatchObject(invalid);
		const service = await auth.signService("claiming", "node-1", "req-1");
		await expect(auth.verifyUser(service, "req-1")).rejects.toMatchObject(invalid);
		// A bearer token signed with the same bytes still has no user-assertion type.
		const bearer = await signToken({ ...loadConfig({}).jwt, secret: SECRET, audience: "wallet" }, "mallory", ["admin"]);
		await expect(auth.verifyUser(bearer, "req-1")).rejects.toMatchObject(invalid);
	});

	it("have one spelling: a signature altered in any character is refused", async () => {
		const a = await auth.signUser(alice, "req-1");
		const [head, body, sig] = a.split(".");
		// 32 bytes take 43 characters: the last one carries 4 bits, and decoding drops its 2 low bits. Flip one.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		const twin = `${head}.${body}.${sig.slice(0, -1)}${alphabet[alphabet.indexOf(sig.at(-1)!) ^ 1]}`;
		expect(Buffer.from(twin.split(".")[2], "base64url")).toEqual(Buffer.from(sig, "base64url"));
		await expect(auth.verifyUser(twin, "req-1")).rejects.toMatchObject(invalid);
		await expect(auth.verifyUser(`${a}=`, "req-1")).rejects.toMatchObject(invalid);
		await expect(auth.verifyUser(`${head}.${body}.${sig}.`, "req-1")).rejects.toMatchObject(invalid);
	});

	it("need a list of scopes", async () => {
		await expect(auth.verifyUser(await forge({ scope: "admin" }), "req-1")).rejects.toMatchObject(invalid);
	});
});

describe("service assertions", () => {
	it("name the service, for one request from one node", async () => {
		const a = await auth.signService("order", "node-1", "req-1");
		await expect(auth.verifyService(a, "req-1", "node-1")).resolves.toBe("order");
		await expect(auth.verifyService(a, "req-2", "node-1")).rejects.toMatchObject(invalid);
		await expect(auth.verifyService(a, "req-1", "node-2")).rejects.toMatchObject(invalid);
	});

	it("are refused when forged without the key", async () => {
		const forged = await forge({ typ: SERVICE_ASSERTION, sub: "order", node: "node-1", key: "y".repeat(40) });
		await expect(auth.verifyService(forged, "req-1", "node-1")).rejects.toMatchObject(invalid);
	});

	it("are minted once per service, node and request (nested calls reuse them)", async () => {
		const a = await auth.signService("order", "node-1", "req-9");
		expect(await auth.signService("order", "node-1", "req-9")).toBe(a);
		expect(await auth.signService("order", "node-1", "req-10")).not.toBe(a);
	});

	it("verify once, then from the cache", async () => {
		const fresh = new InternalAuth(opts);
		const a = await fresh.signService("order", "node-1", "req-1");
		await fresh.verifyService(a, "req-1", "node-1");
		await fresh.verifyService(a, "req-1", "node-1");
		expect(fresh.cache.hits).toBe(1);
	});
});
