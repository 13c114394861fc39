import { SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { createVerifier, signToken } from "../../src/lib/jwt";

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
