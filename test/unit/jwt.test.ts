import { SignJWT, UnsecuredJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../config";
import { createTokenVerifier, createVerifier, signToken } from "../../src/lib/jwt";

const jwt = loadConfig({}).jwt;
const verify = createVerifier(jwt);
const key = new TextEncoder().encode(jwt.secret);

const invalid = { code: 401, type: "INVALID_TOKEN" };

describe("createVerifier (HS256)", () => {
	it("verifies a signed token to the user's id and scopes", async () => {
		const token = await signToken(jwt, "user-42", ["order:read", "claim:write"]);
		await expect(verify(token)).resolves.toEqual({ id: "user-42", scopes: ["order:read", "claim:write"] });
	});

	it("gives a token without scopes an empty scope list", async () => {
		await expect(verify(await signToken(jwt, "user-42", []))).resolves.toEqual({ id: "user-42", scopes: [] });
	});

	it("reads scopes from an `scp` array too", async () => {
		const token = await new SignJWT({ scp: ["supply:read", 7] })
			.setProtectedHeader({ alg: "HS256" })
			.setSubject("user-1")
			.setAudience(jwt.audience)
			.setIssuer(jwt.issuer)
			.setExpirationTime("1h")
			.sign(key);
		await expect(verify(token)).resolves.toEqual({ id: "user-1", scopes: ["supply:read"] });
	});

	it("refuses an expired token with 401 TOKEN_EXPIRED", async () => {
		const token = await signToken(jwt, "user-42", ["order:read"], "-1m");
		await expect(verify(token)).rejects.toMatchObject({ code: 401, type: "TOKEN_EXPIRED" });
	});

	it("refuses a token forged with another secret", async () => {
		const other = loadConfig({ JWT_SECRET: "another-secret-that-is-long-enough-1234" }).jwt;
		await expect(verify(await signToken(other, "admin-1", ["admin"]))).rejects.toMatchObject(invalid);
	});

	it("refuses a token for another audience", async () => {
		const other = loadConfig({ JWT_AUDIENCE: "another-api" }).jwt;
		await expect(verify(await signToken(other, "user-42", []))).rejects.toMatchObject(invalid);
	});

	it("refuses a token from another issuer", async () => {
		const other = loadConfig({ JWT_ISSUER: "someone-else" }).jwt;
		await expect(verify(await signToken(other, "user-42", []))).rejects.toMatchObject({ code: 401 });
	});

	it("refuses an unsigned (alg: none) token", async () => {
		const token = new UnsecuredJWT({ scope: "admin" })
			.setSubject("user-42")
			.setAudience(jwt.audience)
			.setIssuer(jwt.issuer)
			.setExpirationTime("1h")
			.encode();
		await expect(verify(token)).rejects.toMatchObject(invalid);
	});

	it("refuses another HMAC algorithm even with the right secret", async () => {
		const token = await new SignJWT({})
			.setProtectedHeader({ alg: "HS512" })
			.setSubject("user-42")
			.setAudience(jwt.audience)
			.setIssuer(jwt.issuer)
			.setExpirationTime("1h")
			.sign(new TextEncoder().encode(jwt.secret!.repeat(2)));
		await expect(createVerifier({ ...jwt, secret: jwt.secret!.repeat(2) })(token)).rejects.toMatchObject(invalid);
	});

	it("refuses a token without a subject", async () => {
		const token = await new SignJWT({ scope: "order:read" })
			.setProtectedHeader({ alg: "HS256" })
			.setAudience(jwt.audience)
			.setIssuer(jwt.issuer)
			.setExpirationTime("1h")
			.sign(key);
		await expect(verify(token)).rejects.toMatchObject(invalid);
	});

	it.each(["", "garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30."])("refuses garbage %j with 401 INVALID_TOKEN", async token => {
		await expect(verify(token)).rejects.toMatchObject(invalid);
	});
});

/** A token signed with the dev secret, with the claims and header given (no `exp` unless set). */
function token(o: { exp?: number; nbf?: number; typ?: string; sub?: string } = {}) {
	const t = new SignJWT({ scope: "order:read" })
		.setProtectedHeader({ alg: "HS256", ...(o.typ ? { typ: o.typ } : {}) })
		.setSubject(o.sub ?? "user-42")
		.setAudience(jwt.audience)
		.setIssuer(jwt.issuer);
	if (o.exp !== undefined) t.setExpirationTime(o.exp);
	if (o.nbf !== undefined) t.setNotBefore(o.nbf);
	return t.sign(key);
}

const now = () => Math.floor(Date.now() / 1000);

describe("createVerifier: expiry, clock tolerance and type", () => {
	it("refuses a token without `exp`, which would be valid forever", async () => {
		await expect(verify(await token())).rejects.toMatchObject(invalid);
		await expect(verify(await token({ exp: now() + 60 }))).resolves.toMatchObject({ id: "user-42" });
	});

	it("tolerates clocks that differ by up to JWT_CLOCK_TOLERANCE_SEC (5 s by default), no more", async () => {
		await expect(verify(await token({ exp: now() - 2 }))).resolves.toMatchObject({ id: "user-42" });
		await expect(verify(await token({ nbf: now() + 2, exp: now() + 60 }))).resolves.toMatchObject({ id: "user-42" });
		await expect(verify(await token({ exp: now() - 30 }))).rejects.toMatchObject({ code: 401, type: "TOKEN_EXPIRED" });
		await expect(verify(await token({ nbf: now() + 30, exp: now() + 60 }))).rejects.toMatchObject(invalid);
		const strict = createVerifier(loadConfig({ JWT_CLOCK_TOLERANCE_SEC: "0" }).jwt);
		await expect(strict(await token({ exp: now() - 2 }))).rejects.toMatchObject({ type: "TOKEN_EXPIRED" });
		const lenient = createVerifier(loadConfig({ JWT_CLOCK_TOLERANCE_SEC: "60" }).jwt);
		await expect(lenient(await token({ exp: now() - 30 }))).resolves.toMatchObject({ id: "user-42" });
	});

	it.each(["JWT", "jwt", "at+jwt", "application/at+JWT"])("accepts typ %j", async typ => {
		await expect(verify(await token({ typ, exp: now() + 60 }))).resolves.toMatchObject({ id: "user-42" });
	});

	it.each(["id+jwt", "logout+jwt", "wallet-user+jwt", "JOSE"])("refuses typ %j: not an access token", async typ => {
		await expect(verify(await token({ typ, exp: now() + 60 }))).rejects.toMatchObject(invalid);
	});
});

describe("createTokenVerifier cache", () => {
	afterEach(() => {
		vi.useRealTimers();
	});

	it("verifies a token once, then answers from the cache", async () => {
		const v = createTokenVerifier(jwt, 10);
		// Read once: a second boundary between the token's signing and the check must not matter.
		const exp = now() + 60;
		const t = await token({ exp });
		const first = await v(t);
		expect(await v(t)).toBe(first);
		expect(v.cache.hits).toBe(1);
		expect(v.cache.misses).toBe(1);
		expect(first.exp).toBe(exp);
	});

	it("keeps a token no longer than its expiry (plus the tolerance)", async () => {
		const v = createTokenVerifier(jwt, 10);
		const t = await token({ exp: now() + 60 });
		await v(t);
		vi.useFakeTimers({ now: Date.now() + 66_000, toFake: ["Date"] });
		await expect(v(t)).rejects.toMatchObject({ code: 401, type: "TOKEN_EXPIRED" });
	});

	it("is bounded: the least recently used token goes first", async () => {
		const v = createTokenVerifier(jwt, 2);
		const [a, b, c] = await Promise.all(["a", "b", "c"].map(sub => token({ sub, exp: now() + 60 })));
		await v(a);
		await v(b);
		await v(a);
		await v(c); // evicts b, the least recently used
		expect(v.cache.size).toBe(2);
		const hits = v.cache.hits;
		await v(a);
		expect(v.cache.hits).toBe(hits + 1);
		await v(b);
		expect(v.cache.hits).toBe(hits + 1);
	});

	it("never caches a refusal", async () => {
		const v = createTokenVerifier(jwt, 10);
		const t = await token();
		await expect(v(t)).rejects.toMatchObject(invalid);
		await expect(v(t)).rejects.toMatchObject(invalid);
		expect(v.cache.size).toBe(0);
	});
});

describe("signToken", () => {
	it("refuses to sign without a secret", async () => {
		await expect(signToken({ ...jwt, secret: undefined }, "u", [])).rejects.toThrow(/JWT_SECRET/);
	});

	it("reads a numeric expiry as an absolute time (seconds since 1970), as jose does", async () => {
		const inAnHour = Math.floor(Date.now() / 1000) + 3600;
		await expect(verify(await signToken(jwt, "user-42", ["order:read"], inAnHour))).resolves.toEqual({
			id: "user-42",
			scopes: ["order:read"],
		});
		await expect(verify(await signToken(jwt, "user-42", [], 3600))).rejects.toMatchObject({ code: 401, type: "TOKEN_EXPIRED" });
	});
});
