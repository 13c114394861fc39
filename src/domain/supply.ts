// Pure decisions about a supply: which transitions are allowed and what an amount change does.
import { conflict, unprocessable } from "./errors";
import { fromNumeric, type Units } from "./money";
import type { Supply, SupplyStatus } from "./types";

export type SupplyCommand = "pause" | "resume" | "close";

const TRANSITIONS: Record<SupplyCommand, { from: SupplyStatus[]; to: SupplyStatus }> = {
	pause: { from: ["active"], to: "paused" },
	resume: { from: ["paused"], to: "active" },
	close: { from: ["active", "paused"], to: "closed" },
};

export function decideSupplyTransition(supply: Pick<Supply, "id" | "status" | "reserved">, cmd: SupplyCommand): SupplyStatus {
	const t = TRANSITIONS[cmd];
	if (!t.from.includes(supply.status))
		throw conflict("INVALID_TRANSITION", `Cannot ${cmd} a supply that is ${supply.status}`, {
			id: supply.id,
			status: supply.status,
		});
	if (cmd === "close" && fromNumeric(supply.reserved) !== 0n)
		throw conflict("SUPPLY_HAS_RESERVATIONS", "A supply with reserved funds cannot be closed", {
			id: supply.id,
			status: supply.status,
			reserved: supply.reserved,
		});
	return t.to;
}

/** The owner may raise the amount, or lower it down to reserved + spent. */
export function decideAmountChange(supply: Pick<Supply, "id" | "status" | "reserved" | "spent">, amount: Units): Units {
	if (supply.status === "closed")
		throw conflict("INVALID_TRANSITION", "A closed supply cannot be changed", { id: supply.id, status: supply.status });
	const floor = fromNumeric(supply.reserved) + fromNumeric(supply.spent);
	if (amount < floor)
		throw conflict("AMOUNT_BELOW_COMMITTED", "amount cannot go below reserved + spent", {
			id: supply.id,
			reserved: supply.reserved,
			spent: supply.spent,
		});
	if (amount <= 0n) throw unprocessable("INVALID_AMOUNT", "amount must be greater than zero", { field: "amount" });
	return amount;
}
