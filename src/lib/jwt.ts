// Bearer token verification with jose: HS256 with a shared secret, or RS256/ES256 through a JWKS URL.
// Every token must expire; verified tokens are cached until they do (every action call verifies).
import { createHash } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { Config } from "../../config";
import { unauthorized } from "../domain/errors";
import type { User } from "../domain/types";
import { TtlCache } from "./ttl-cache";

export type Verifier = (token: string) => Promise<User>;

export interface VerifiedToken {
	user: User;
	/** The token's `exp`, in seconds since 1970. */
	exp: number;
}

export type TokenVerifier = ((token: string) => Promise<VerifiedToken>) & { cache: TtlCache<VerifiedToken> };

// RFC 9068 names access tokens "at+jwt"; plain "JWT" is what most issuers write. Anything else (an ID
// token, a logout token, one of our internal assertions) is not a bearer token for this API.
const BEARER_TYPES = new Set(["jwt", "at+jwt", "application/at+jwt"]);

export const tokenHash = (token: string) => createHash("sha256").update(token).digest("base64url");

function scopesOf(payload: JWTPayload): string[] {
	const raw = payload.scope ?? payload.scp;
	if (typeof raw === "string") return raw.split(" ").filter(Boolean);
	if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === "string");
	return [];
}

/** Verifies bearer tokens, remembering up to `cacheSize` of them (keyed by hash) until they expire. */
export function createTokenVerifier(jwt: Config["jwt"], cacheSize = 10_000): TokenVerifier {
	const key = jwt.jwksUrl ? createRemoteJWKSet(new URL(jwt.jwksUrl)) : new TextEncoder().encode(jwt.secret);
	const algorithms = jwt.jwksUrl ? ["RS256", "ES256"] : ["HS256"];
	const tolerance = jwt.clockToleranceSec ?? 5;
	const cache = new TtlCache<VerifiedToken>(cacheSize);
	const verify = async (token: string): Promise<VerifiedToken> => {
		const hash = tokenHash(token);
		const hit = cache.get(hash);
		if (hit) return hit;
		try {
			const { payload, protectedHeader } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
				audience: jwt.audience,
				issuer: jwt.issuer,
				algorithms,
				requiredClaims: ["exp"],
				clockTolerance: tolerance,
			});
			if (protectedHeader.typ !== undefined && !BEARER_TYPES.has(String(protectedHeader.typ).toLowerCase()))
				throw unauthorized("The token is not an access token", "INVALID_TOKEN");
			if (typeof payload.sub !== "string" || payload.sub.length === 0 || payload.sub.length > 128)
				throw unauthorized("The token has no valid subject", "INVALID_TOKEN");
			// Frozen: one cached object is handed to every request that presents this token.
			const user = Object.freeze({ id: payload.sub, scopes: Object.freeze(scopesOf(payload)) as string[] });
			const verified = Object.freeze({ user, exp: payload.exp! });
			cache.set(hash, verified, (verified.exp + tolerance) * 1000);
			return verified;
		} catch (err) {
			const code = (err as { code?: string }).code;
			if (code === "ERR_JWT_EXPIRED") throw unauthorized("The token has expired", "TOKEN_EXPIRED");
			if ((err as { type?: string }).type === "INVALID_TOKEN") throw err;
			throw unauthorized("The token is invalid", "INVALID_TOKEN");
		}
	};
	return Object.assign(verify, { cache });
}

export function createVerifier(jwt: Config["jwt"], cacheSize?: number): Verifier {
	const verify = createTokenVerifier(jwt, cacheSize);
	return async token => (await verify(token)).user;
}

/** `expiresAt` is a duration from now ("12h", "15m") or an absolute time in seconds since 1970. */
export async function signToken(
	jwt: Config["jwt"],
	userId: string,
	scopes: string[],
	expiresAt: string | number = "12h",
): Promise<string> {
	if (!jwt.secret) throw new Error("Signing tokens needs JWT_SECRET (a JWKS URL only verifies)");
	return new SignJWT({ scope: scopes.join(" ") })
		.setProtectedHeader({ alg: "HS256", typ: "JWT" })
		.setSubject(userId)
		.setAudience(jwt.audience)
		.setIssuer(jwt.issuer)
		.setIssuedAt()
		.setExpirationTime(expiresAt)
		.sign(new TextEncoder().encode(jwt.secret));
}
