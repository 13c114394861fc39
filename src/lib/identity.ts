// Identity between services, in a form each service can verify (docs/security.md):
// - a user assertion: the gateway verified a bearer token and signs {sub, scopes} for one request,
//   short-lived, bound to the request id; it travels in ctx.meta.assertion to every nested call;
// - a service assertion: a service calling another over the transporter signs its own name, bound
//   to the request id and its node id; it travels in ctx.headers, which are per hop (never inherited
//   by nested calls, never sent back in a response).
// Both are HS256 JWTs under INTERNAL_SECRET, with a type of their own so neither can pass for the other
// nor for a bearer token. Verifications are cached until the assertion expires.
// Signed and verified with node:crypto's HMAC (synchronous, a few µs) rather than jose (WebCrypto,
// ~100-200 µs a call here): the gateway signs one per request and every action call verifies one.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";
import type { Config } from "../../config";
import { unauthorized } from "../domain/errors";
import type { User } from "../domain/types";
import { createTokenVerifier, type TokenVerifier } from "./jwt";
import { TtlCache } from "./ttl-cache";

export const USER_ASSERTION = "wallet-user+jwt";
export const SERVICE_ASSERTION = "wallet-service+jwt";
/** A region calling an internal action of another region over the region link, for one action and request. */
export const LINK_ASSERTION = "wallet-link+jwt";
/** The ctx.headers key of a service assertion. */
export const SERVICE_HEADER = "x-wallet-service";

const invalid = (why: string) => unauthorized(`The internal assertion is invalid: ${why}`, "INVALID_ASSERTION");

interface Payload {
	sub?: unknown;
	aud?: unknown;
	exp?: unknown;
	rid?: unknown;
	node?: unknown;
	scope?: unknown;
	act?: unknown;
}

interface Verified {
	typ: string;
	payload: Payload & { sub: string; exp: number };
}

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

function parse(part: string): Record<string, unknown> {
	const value = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
	if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
	return value;
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
	private readonly key: KeyObject;
	private readonly verified: TtlCache<Verified>;
	private readonly minted: TtlCache<string>;

	constructor(private readonly o: InternalAuthOptions) {
		this.key = createSecretKey(Buffer.from(o.secret, "utf8"));
		this.verified = new TtlCache(o.cacheSize);
		this.minted = new TtlCache(Math.min(o.cacheSize, 1000));
	}

	get cache() {
		return this.verified;
	}

	/** `notAfter`: the bearer token's own expiry (s); an assertion never outlives what it asserts. */
	signUser(user: User, requestId: string, notAfter = Infinity): Promise<string> {
		const now = Math.floor(Date.now() / 1000);
		const exp = Math.min(now + this.o.ttlSec, notAfter);
		const payload = { sub: user.id, aud: this.o.namespace, iat: now, exp, rid: requestId, scope: [...user.scopes] };
		const assertion = this.sign(USER_ASSERTION, payload);
		// What this process signed it need not check again: the actions of the gateway's own node find it verified.
		this.keep(assertion, { typ: USER_ASSERTION, payload });
		return Promise.resolve(assertion);
	}

	private sign(typ: string, payload: object): string {
		const signed = `${b64({ alg: "HS256", typ })}.${b64(payload)}`;
		return `${signed}.${createHmac("sha256", this.key).update(signed).digest("base64url")}`;
	}

	/** One assertion per service, node and request, reused by the request's nested calls while fresh. */
	async signService(service: string, nodeID: string, requestId: string): Promise<string> {
		const cacheKey = `${service}\0${nodeID}\0${requestId}`;
		const now = Date.now();
		const cached = this.minted.get(cacheKey, now);
		if (cached) return cached;
		const iat = Math.floor(now / 1000);
		const assertion = this.sign(SERVICE_ASSERTION, {
			sub: service,
			aud: this.o.namespace,
			iat,
			exp: iat + this.o.ttlSec,
			rid: requestId,
			node: nodeID,
		});
		// Reused for half its life, so a receiver never gets one about to expire.
		this.minted.set(cacheKey, assertion, now + (this.o.ttlSec * 1000) / 2);
		return assertion;
	}

	/** A region's call of `action` in another region (src/regions/link.ts), for this request only. */
	signLink(region: string, action: string, requestId: string): string {
		const iat = Math.floor(Date.now() / 1000);
		return this.sign(LINK_ASSERTION, { sub: region, aud: this.o.namespace, iat, exp: iat + this.o.ttlSec, rid: requestId, act: action });
	}

	/** The calling region, if the assertion was signed for this action and request. */
	async verifyLink(assertion: string, action: string, requestId: string | null | undefined): Promise<string> {
		const { payload } = await this.verify(assertion, LINK_ASSERTION, requestId);
		if (payload.act !== action) throw invalid("signed for another action");
		return payload.sub!;
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
		if (typeof assertion !== "string" || assertion.length > 8192) throw invalid("not an assertion");
		const now = Date.now();
		// Keyed by the assertion itself: it is no secret (it is bound to one request and expires in seconds),
		// and hashing it would cost as much as checking its HMAC.
		let v = this.verified.get(assertion, now);
		if (!v) {
			v = this.verifyFresh(assertion, now);
			this.keep(assertion, v);
		}
		if (v.typ !== typ) throw invalid(`not a ${typ}`);
		if (!requestId || v.payload.rid !== requestId) throw invalid("signed for another request");
		return v;
	}

	/** Known good until it expires (with the clock tolerance); one already expired is not kept. */
	private keep(assertion: string, v: Verified) {
		const until = (v.payload.exp + this.o.clockToleranceSec) * 1000;
		if (until > Date.now()) this.verified.set(assertion, v, until);
	}

	private verifyFresh(assertion: string, now: number): Verified {
		const parts = assertion.split(".");
		if (parts.length !== 3) throw invalid("not a JWS");
		// Compared as text, not decoded: base64url decoding is lenient, and one signature has one spelling.
		const expected = Buffer.from(createHmac("sha256", this.key).update(`${parts[0]}.${parts[1]}`).digest("base64url"));
		const given = Buffer.from(parts[2]);
		if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid("bad signature");
		let header: Record<string, unknown>, payload: Payload;
		try {
			header = parse(parts[0]);
			payload = parse(parts[1]);
		} catch {
			throw invalid("not JSON");
		}
		if (header.alg !== "HS256" || header.crit !== undefined) throw invalid("unexpected header");
		if (payload.aud !== this.o.namespace) throw invalid("for another namespace");
		if (typeof payload.sub !== "string" || payload.sub.length === 0) throw invalid("no subject");
		if (typeof payload.exp !== "number") throw invalid("no expiry");
		if ((payload.exp + this.o.clockToleranceSec) * 1000 <= now) throw invalid("expired");
		if (typeof payload.rid !== "string") throw invalid("no request id");
		return { typ: String(header.typ), payload: payload as Verified["payload"] };
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
