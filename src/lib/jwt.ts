// Bearer token verification with jose: HS256 with a shared secret, or RS256/ES256 through a JWKS URL.
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { Config } from "../../config";
import { unauthorized } from "../domain/errors";
import type { User } from "../domain/types";

export type Verifier = (token: string) => Promise<User>;

function scopesOf(payload: JWTPayload): string[] {
	const raw = payload.scope ?? payload.scp;
	if (typeof raw === "string") return raw.split(" ").filter(Boolean);
	if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === "string");
	return [];
}

export function createVerifier(jwt: Config["jwt"]): Verifier {
	const key = jwt.jwksUrl ? createRemoteJWKSet(new URL(jwt.jwksUrl)) : new TextEncoder().encode(jwt.secret);
	const algorithms = jwt.jwksUrl ? ["RS256", "ES256"] : ["HS256"];
	return async token => {
		try {
			const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
				audience: jwt.audience,
				issuer: jwt.issuer,
				algorithms,
			});
			if (typeof payload.sub !== "string" || payload.sub.length === 0 || payload.sub.length > 128)
				throw unauthorized("The token has no valid subject", "INVALID_TOKEN");
			return { id: payload.sub, scopes: scopesOf(payload) };
		} catch (err) {
			const code = (err as { code?: string }).code;
			if (code === "ERR_JWT_EXPIRED") throw unauthorized("The token has expired", "TOKEN_EXPIRED");
			if ((err as { type?: string }).type === "INVALID_TOKEN") throw err;
			throw unauthorized("The token is invalid", "INVALID_TOKEN");
		}
	};
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
