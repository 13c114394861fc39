// The refusal codes the SQL commands return, as the same errors the pure decision code throws.
import { Errors } from "moleculer";
import { conflict, forbidden, notFound, unprocessable } from "../domain/errors";

type Details = Record<string, unknown>;

const notInState = (code: string, d: Details) =>
	conflict(code, `Cannot ${d.action ?? "change"} an order that is ${d.status}`, { id: d.id, status: d.status });

const abandoned = (d: Details) =>
	conflict("CLAIM_ABANDONED", "An earlier attempt with this Idempotency-Key was abandoned; retry with a new key", { claimId: d.claimId });

const REFUSALS: Record<string, (d: Details) => Error> = {
	ORDER_NOT_FOUND: () => notFound("order"),
	CLAIM_NOT_FOUND: () => notFound("claim"),
	SUPPLY_NOT_FOUND: () => notFound("supply"),
	OWN_ORDER: () => forbidden("OWN_ORDER", "You cannot claim your own order"),
	NOT_BUYER: d => forbidden("NOT_BUYER", `Only the buyer can ${d.action ?? "change"} this order`),
	ORDER_EXPIRED: d =>
		d.action ? notInState("ORDER_EXPIRED", d) : conflict("ORDER_EXPIRED", "The order has expired", { id: d.id, status: "expired" }),
	ORDER_NOT_OPEN: d => notInState("ORDER_NOT_OPEN", d),
	ORDER_NOT_CLAIMED: d => notInState("ORDER_NOT_CLAIMED", d),
	ASSET_MISMATCH: d => unprocessable("ASSET_MISMATCH", `The supply holds ${d.supplyAsset} but the order is in ${d.orderAsset}`),
	SUPPLY_NOT_ACTIVE: d => conflict("SUPPLY_NOT_ACTIVE", `The supply is ${d.status}`, { id: d.id, status: d.status }),
	INSUFFICIENT_SUPPLY: d =>
		conflict("INSUFFICIENT_SUPPLY", "The supply does not have enough available funds", {
			id: d.id,
			available: d.available,
			required: d.required,
		}),
	IDEMPOTENCY_KEY_REUSED: d =>
		unprocessable("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was already used for a different claim", { claimId: d.claimId }),
	CLAIM_NOT_ACTIVE: d => conflict("CLAIM_NOT_ACTIVE", `The claim is ${d.status ?? "missing"}, not active`, { id: d.id, status: d.status }),
	CLAIM_NOT_EXPIRED: d => conflict("CLAIM_NOT_EXPIRED", "The claim's hold has not run out", { id: d.id }),
	// A cross-region claim (docs/multi-region.md): the order's actor holds the supply in its region first.
	HOLD_NEEDED: d => new Errors.MoleculerError("The supply is held in its own region first", 500, "HOLD_NEEDED", d),
	HOLD_VOIDED: d => abandoned(d),
	HOLD_RELEASED: d => abandoned(d),
	// This region does not write the entity's home region now (failover moved it, or this node's epoch is old).
	NOT_OWNER: d =>
		new Errors.MoleculerRetryableError("This region does not own the entity now; retry", 503, "NOT_OWNER", { homeRegion: d.homeRegion }),
};

// A lock or statement timeout, a deadlock or a serialization failure: the database is busy, not broken.
const BUSY = /^(55P03|57014|40P01|40001)$/;

const busyError = (sqlstate: string) =>
	new Errors.MoleculerRetryableError("The database is busy; retry", 503, "DATABASE_BUSY", { sqlstate });

/** A whole statement that timed out on a lock or ran too long: retryable, as the outcome is "nothing written". */
export function busy(err: unknown): never {
	const code = (err as { code?: unknown })?.code;
	throw typeof code === "string" && BUSY.test(code) ? busyError(code) : err;
}

export function refusal(code: string, details: Details): Error {
	const make = REFUSALS[code];
	if (make) return make(details);
	if (code === "COMMAND_FAILED" && typeof details.sqlstate === "string" && BUSY.test(details.sqlstate))
		return busyError(details.sqlstate);
	// Anything else is a bug: logged where it surfaces, answered as a 500 without internals.
	return Object.assign(new Error(`Order command failed: ${code} ${details.sqlstate ?? ""} ${details.message ?? ""}`.trim()), { details });
}
