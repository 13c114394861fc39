// Identity between services, in a form each service can verify (docs/security.md):
// - a user assertion: the gateway verified a bearer token and signs {sub, scopes} for one request,
//   short-lived, bound to the request id; it travels in ctx.meta.assertion to every nested call;
// - a service assertion: a service calling another over the transporter signs its own name, bound
//   to the request id and its node id; it travels in ctx.headers, which are per hop (never inherited
//   by nested calls, never sent back in a response).
// Both are HS256 JWTs under INTERNAL_SECRET, with a type of their own so neither can pass for the other
// nor for a bearer token. Verifications are cached by hash until the assertion expires.
import { createHash } from "node:crypto";
import { jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { Config } from "../../config";
import { unauthorized } from "../domain/errors";
import type { User } from "../domain/types";
import { createTokenVerifier, type TokenVerifier } from "./jwt";
import { TtlCache } from "./ttl-cache";

export const USER_ASSERTION = "wallet-user+jwt";
export const SERVICE_ASSERTION = "wallet-service+jwt";
/** The ctx.headers key of a service assertion. */
export const SERVICE_HEADER = "x-wallet-service";

const hash = (s: string) => createHash("sha256").update(s).digest("base64url");

const invalid = (why: string) => unauthorized(`The internal assertion is invalid: ${why}`, "INVALID_ASSERTION");

interface Verified {
	typ: string;
	payload: JWTPayload;
}

export interface InternalAuthOptions {
	secret: string;
	/** Assertions are valid for this namespace only (the JWT audience). */
	namespace: string;
	ttlSec: number;
	clockToleranceSec: number;
	cacheSize: number;
}

export class InternalAuth {
	private readonly key: Uint8Array;
	private readonly verified: TtlCache<Verified>;
	private readonly minted: TtlCache<string>;

	constructor(private readonly o: InternalAuthOptions) {
		this.key = new TextEncoder().encode(o.secret);
		this.verified = new TtlCache(o.cacheSize);
		this.minted = new TtlCache(Math.min(o.cacheSize, 1000));
	}

	get cache() {
		return this.verified;
	}

	/** `notAfter`: the bearer token's own expiry (s); an assertion never outlives what it asserts. */
	signUser(user: User, requestId: string, notAfter = Infinity): Promise<string> {
		const exp = Math.min(Math.floor(Date.now() / 1000) + this.o.ttlSec, notAfter);
		return new SignJWT({ scope: user.scopes, rid: requestId })
			.setProtectedHeader({ alg: "HS256", typ: USER_ASSERTION })
			.setSubject(user.id)
			.setAudience(this.o.namespace)
			.setIssuedAt()
			.setExpirationTime(exp)
			.sign(this.key);
	}

	/** One assertion per service, node and request, reused by the request's nested calls while fresh. */
	async signService(service: string, nodeID: string, requestId: string): Promise<string> {
		const cacheKey = `${service}\0${nodeID}\0${requestId}`;
		const now = Date.now();
		const cached = this.minted.get(cacheKey, now);
		if (cached) return cached;
		const exp = Math.floor(now / 1000) + this.o.ttlSec;
		const assertion = await new SignJWT({ node: nodeID, rid: requestId })
			.setProtectedHeader({ alg: "HS256", typ: SERVICE_ASSERTION })
			.setSubject(service)
			.setAudience(this.o.namespace)
			.setIssuedAt()
			.setExpirationTime(exp)
			.sign(this.key);
		// Reused for half its life, so a receiver never gets one about to expire.
		this.minted.set(cacheKey, assertion, now + (this.o.ttlSec * 1000) / 2);
		return assertion;
	}

	async verifyUser(assertion: string, requestId: string | null | undefined): Promise<User> {
		const { payload } = await this.verify(assertion, USER_ASSERTION, requestId);
		const scopes = payload.scope;
		if (!Array.isArray(scopes) || !scopes.every(s => typeof s === "string")) throw invalid("no scopes");
		return { id: payload.sub!, scopes: [...scopes] };
	}

	/** The name of the service that signed, if it signed for this request from the node it claims. */
	async verifyService(assertion: string, requestId: string | null | undefined, senderNodeID: string | null | undefined): Promise<string> {
		const { payload } = await this.verify(assertion, SERVICE_ASSERTION, requestId);
		if (payload.node !== senderNodeID) throw invalid("signed for another node");
		return payload.sub!;
	}

	private async verify(assertion: string, typ: string, requestId: string | null | undefined): Promise<Verified> {
		if (typeof assertion !== "string") throw invalid("not a string");
		const key = hash(assertion);
		let v = this.verified.get(key);
		if (!v) {
			v = await this.verifyFresh(assertion);
			this.verified.set(key, v, ((v.payload.exp ?? 0) + this.o.clockToleranceSec) * 1000);
		}
		if (v.typ !== typ) throw invalid(`not a ${typ}`);
		if (!requestId || v.payload.rid !== requestId) throw invalid("signed for another request");
		return v;
	}

	private async verifyFresh(assertion: string): Promise<Verified> {
		try {
			const { payload, protectedHeader } = await jwtVerify(assertion, this.key, {
				algorithms: ["HS256"],
				audience: this.o.namespace,
				requiredClaims: ["exp", "sub", "rid"],
				clockTolerance: this.o.clockToleranceSec,
			});
			if (typeof payload.sub !== "string" || payload.sub.length === 0) throw invalid("no subject");
			return { typ: String(protectedHeader.typ), payload };
		} catch (err) {
			if ((err as { type?: string }).type === "INVALID_ASSERTION") throw err;
			if ((err as { code?: string }).code === "ERR_JWT_EXPIRED") throw invalid("expired");
			throw invalid("bad signature or claims");
		}
	}
}

/** What a node needs to know who is calling: bearer tokens, internal assertions, the service names. */
export interface Identity {
	bearer: TokenVerifier;
	internal: InternalAuth;
	trustedServices: string[];
}

const perConfig = new WeakMap<Config, Identity>();

/** One identity (and so one set of caches) per broker configuration: the gateway and the middleware share it. */
export function identityFor(cfg: Config): Identity {
	let identity = perConfig.get(cfg);
	if (!identity) {
		identity = {
			bearer: createTokenVerifier(cfg.jwt, cfg.authCacheSize),
			internal: new InternalAuth({
				secret: cfg.internal.secret,
				namespace: cfg.namespace,
				ttlSec: cfg.internal.assertionTtlSec,
				clockToleranceSec: cfg.jwt.clockToleranceSec,
				cacheSize: cfg.authCacheSize,
			}),
			trustedServices: cfg.trustedServices,
		};
		perConfig.set(cfg, identity);
	}
	return identity;
}
