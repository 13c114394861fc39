// Exact money: amounts travel as decimal strings and are computed as BigInt units of 10^-18,
// the scale of the NUMERIC(38,18) columns. No JavaScript float ever holds an amount.
import { unprocessable } from "./errors";

export const SCALE = 18;
const ONE = 10n ** BigInt(SCALE);
/** NUMERIC(38,18) holds at most 20 integer digits. */
export const MAX_UNITS = 10n ** 38n - 1n;
const DECIMAL = /^(\d{1,20})(?:\.(\d{1,18}))?$/;

export type Units = bigint;

/** Parses "12.5" into units; rejects more fractional digits than the asset allows. */
export function parseAmount(value: string, decimals: number, field = "amount"): Units {
	const m = DECIMAL.exec(value);
	if (!m) throw unprocessable("INVALID_AMOUNT", `${field} must be a decimal string like "12.5"`, { field });
	const frac = m[2] ?? "";
	if (frac.replace(/0+$/, "").length > decimals)
		throw unprocessable("INVALID_AMOUNT", `${field} has more than ${decimals} decimals allowed for this asset`, {
			field,
			decimals,
		});
	return BigInt(m[1]) * ONE + BigInt(frac.padEnd(SCALE, "0"));
}

/** Formats units as the shortest exact decimal string ("2.5", "0", "100"). */
export function formatAmount(units: Units): string {
	const neg = units < 0n;
	const abs = neg ? -units : units;
	const int = abs / ONE;
	const frac = (abs % ONE).toString().padStart(SCALE, "0").replace(/0+$/, "");
	return `${neg ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
}

/** Normalises a NUMERIC value read from PostgreSQL ("2.500000000000000000") to the API form. */
export function normalize(numeric: string): string {
	return formatAmount(fromNumeric(numeric));
}

export function fromNumeric(numeric: string): Units {
	const neg = numeric.startsWith("-");
	const [int, frac = ""] = (neg ? numeric.slice(1) : numeric).split(".");
	const units = BigInt(int) * ONE + BigInt(frac.padEnd(SCALE, "0").slice(0, SCALE) || "0");
	return neg ? -units : units;
}

/** units -> the string PostgreSQL receives for a NUMERIC parameter. */
export function toNumeric(units: Units): string {
	return formatAmount(units);
}

export function assertInRange(units: Units, field = "amount"): Units {
	if (units > MAX_UNITS) throw unprocessable("AMOUNT_TOO_LARGE", `${field} exceeds the largest supported amount`, { field });
	return units;
}

/** A strictly positive amount of an asset with `decimals` decimals, within NUMERIC(38,18). */
export function positiveAmount(value: string, decimals: number, field = "amount"): Units {
	const units = assertInRange(parseAmount(value, decimals, field), field);
	if (units <= 0n) throw unprocessable("INVALID_AMOUNT", `${field} must be greater than zero`, { field });
	return units;
}
