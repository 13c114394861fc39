// RS256 tokens verified through a JWKS URL (a local key server), as a real identity provider is used.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { webcrypto } from "node:crypto";

type CryptoKey = webcrypto.CryptoKey;
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../config";
import { createVerifier, signToken } from "../../src/lib/jwt";

let server: http.Server;
let jwksUrl: string;
let privateKey: CryptoKey;

beforeAll(async () => {
	const pair = await generateKeyPair("RS256");
	privateKey = pair.privateKey;
	const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
	server = http.createServer((_req, res) => {
		res.setHeader("content-type", "application/json");
		res.end(JSON.stringify({ keys: [jwk] }));
	});
	await new Promise<void>(r => server.listen(0, "127.0.0.1", r));
	jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
});

afterAll(() => new Promise(r => server.close(r)));

const rs256 = (key: CryptoKey, claims: { aud?: string } = {}) =>
	new SignJWT({ scope: "order:read claim:write" })
		.setProtectedHeader({ alg: "RS256", kid: "k1" })
		.setSubject("idp-user")
		.setAudience(claims.aud ?? "wallet-api")
		.setIssuer("https://idp.example")
		.setIssuedAt()
		.setExpirationTime("5m")
		.sign(key);

describe("JWKS verification", () => {
	it("accepts the provider's RS256 tokens and refuses others", async () => {
		const cfg = loadConfig({ JWT_JWKS_URL: jwksUrl, JWT_ISSUER: "https://idp.example" });
		expect(cfg.jwt.secret).toBeUndefined();
		const verify = createVerifier(cfg.jwt);
		await expect(verify(await rs256(privateKey))).resolves.toEqual({ id: "idp-user", scopes: ["order:read", "claim:write"] });

		const stranger = (await generateKeyPair("RS256")).privateKey;
		await expect(verify(await rs256(stranger))).rejects.toMatchObject({ code: 401, type: "INVALID_TOKEN" });
		await expect(verify(await rs256(privateKey, { aud: "other" }))).rejects.toMatchObject({ code: 401 });
		// An HS256 token cannot pass where RS256 keys are expected (no algorithm confusion).
		const hs = await signToken({ ...loadConfig({}).jwt, issuer: "https://idp.example" }, "idp-user", ["admin"]);
		await expect(verify(hs)).rejects.toMatchObject({ code: 401, type: "INVALID_TOKEN" });
	});
});
