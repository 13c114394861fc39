// Holds a recorded history and the outbox against the rows of one or more regions' databases, and
// reports every anomaly it can prove. Rows and events are read from every pool and checked over the
// union, so a multi-region drill passes one pool per region (with one pool it is the one-region case).
// All amounts are compared as exact BigInt units, never as floats.
import type { Pool } from "pg";
import { fromNumeric, SCALE } from "../domain/money";
import type { History, Operation } from "./history";

export type ViolationKind =
	| "ack-missing" // a 201 claim whose claim is not in the database
	| "ack-differs" // a 201 claim that differs from the database row
	| "replay-differs" // two answers for one key that name different claims
	| "replay-refused" // a 4xx for a key whose claim won, sent while or after the winner was in flight
	| "key-two-claims" // one (claimer, key) with two claims in the database
	| "ack-not-applied" // a 200 release/complete/cancel whose effect is not in the database
	| "overlapping-claims" // two live claims of one order at once, in the event history
	| "supply-rebuild" // a supply whose balances rebuilt from its events differ from a snapshot or the row
	| "version-gap" // an aggregate whose event versions are not exactly 1..n
	| "order-amount" // an order whose amount is not the exact sum of its items
	| "orphan-event" // an event whose transaction holds no change that explains it
	| "row-missing" // events of an aggregate that has no row
	| "row-differs"; // a row that differs from its last event (a change without an event)

export interface HistoryViolation {
	kind: ViolationKind;
	/** The entity the violation is about (claim, order, supply id, or an idempotency key). */
	id: string;
	problem: string;
}

export interface HistoryReport {
	counts: {
		operations: number;
		/** status -> count, per operation kind: { claim: { "201": 40, "409": 12 } } */
		statuses: Record<string, Record<string, number>>;
		acknowledgedClaims: number;
		/** acknowledged claim answers beyond the first for their key */
		replays: number;
		/** 409 answers to claims: proof that requests contended */
		conflicts: number;
		keys: number;
		acknowledgedOthers: number;
		regions: number;
		events: number;
		transactions: number;
		aggregates: number;
		suppliesRebuilt: number;
		ordersSummed: number;
		claimLifetimes: number;
	};
	violations: HistoryViolation[];
	summary: string;
}

interface Event {
	id: bigint;
	source: number;
	type: string;
	aggregateType: string;
	aggregateId: string;
	version: number;
	region: string;
	epoch: bigint;
	tx: string;
	payload: any;
}

type Row = Record<string, any>;

const units = (v: unknown): bigint | undefined => {
	if (typeof v !== "string" || !/^-?\d+(\.\d+)?$/.test(v)) return undefined;
	return fromNumeric(v);
};
const ONE = 10n ** BigInt(SCALE);
const show = (u: bigint | undefined) => {
	if (u === undefined) return "?";
	const abs = u < 0n ? -u : u;
	const frac = (abs % ONE).toString().padStart(SCALE, "0").replace(/0+$/, "");
	return `${u < 0n ? "-" : ""}${abs / ONE}${frac ? `.${frac}` : ""}`;
};

const exactAmounts = (r: Row) =>
	Object.fromEntries(
		(["amount", "reserved", "spent"] as const).filter(k => r[`p_${k}`] !== null && r[`p_${k}`] !== undefined).map(k => [k, r[`p_${k}`]]),
	);

async function readAll(pools: Pool[]) {
	const rows = { supplies: new Map<string, Row>(), orders: new Map<string, Row>(), claims: new Map<string, Row>() };
	const claimsByKey = new Map<string, Row[]>();
	const events = new Map<string, Event>();
	for (const [source, pool] of pools.entries()) {
		const [s, o, c, e] = await Promise.all([
			pool.query(`SELECT id, amount::text, reserved::text, spent::text, status, version FROM supplies`),
			pool.query(`SELECT id, items, amount::text, status, claim_id, version FROM orders`),
			pool.query(`SELECT id, order_id, claimer_id, supply_id, amount::text, status, idempotency_key, version FROM claims`),
			pool.query(
				// Amounts are read as text from the jsonb: exact whether the writer stored a string or a number.
				`SELECT id::text, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, region, epoch::text,
				        tx_id::text, payload, payload->>'amount' AS p_amount, payload->>'reserved' AS p_reserved,
				        payload->>'spent' AS p_spent FROM outbox
				  -- Superseded: written under an epoch its region lost while away, never published (regions.service.ts).
				  WHERE superseded_at IS NULL`,
			),
		]);
		// The same entity replicated to several regions: the copy with the highest version is the newest.
		const keep = (m: Map<string, Row>, r: Row) => {
			const had = m.get(r.id);
			if (!had || had.version < r.version) m.set(r.id, r);
		};
		s.rows.forEach(r => keep(rows.supplies, r));
		o.rows.forEach(r => keep(rows.orders, r));
		c.rows.forEach(r => keep(rows.claims, r));
		for (const r of e.rows) {
			if (events.has(r.event_id)) continue;
			events.set(r.event_id, {
				id: BigInt(r.id),
				source,
				type: r.event_type,
				aggregateType: r.aggregate_type,
				aggregateId: r.aggregate_id,
				version: r.aggregate_version,
				region: r.region,
				epoch: BigInt(r.epoch),
				// A transaction id is local to the database that wrote it, which the event's region names.
				tx: `${r.region}/${r.tx_id}`,
				payload: r.payload && typeof r.payload === "object" ? { ...r.payload, ...exactAmounts(r) } : r.payload,
			});
		}
	}
	for (const c of rows.claims.values()) {
		const k = `${c.claimer_id}\u0000${c.idempotency_key}`;
		(claimsByKey.get(k) ?? claimsByKey.set(k, []).get(k)!).push(c);
	}
	return { ...rows, claimsByKey, events: [...events.values()] };
}

const group = <T>(xs: T[], key: (x: T) => string) => {
	const m = new Map<string, T[]>();
	for (const x of xs) (m.get(key(x)) ?? m.set(key(x), []).get(key(x))!).push(x);
	return m;
};

/** Timeline order of events: by epoch (ownership moves forward), then by id in the writing database. */
const byTimeline = (a: Event, b: Event) =>
	a.epoch !== b.epoch ? (a.epoch < b.epoch ? -1 : 1) : a.source !== b.source ? a.source - b.source : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

export async function checkHistory(pools: Pool | Pool[], history?: History | Operation[]): Promise<HistoryReport> {
	const poolList = Array.isArray(pools) ? pools : [pools];
	const ops = history ? (Array.isArray(history) ? history : history.ops) : [];
	const db = await readAll(poolList);
	const violations: HistoryViolation[] = [];
	const add = (kind: ViolationKind, id: string, problem: string) => violations.push({ kind, id, problem });

	const opCounts = checkOperations(ops, db, add);
	const eventCounts = checkEvents(db, add);
	const ordersSummed = checkOrderAmounts(db.orders, add);

	const counts = { ...opCounts, regions: poolList.length, ...eventCounts, ordersSummed };
	const statuses = Object.entries(counts.statuses)
		.map(([op, s]) => `${op} ${Object.entries(s).map(([st, n]) => `${st}x${n}`).join(" ")}`)
		.join(", ");
	const summary =
		`history: ${counts.operations} ops (${statuses || "none"}), ${counts.acknowledgedClaims} acknowledged claims, ` +
		`${counts.replays} replays, ${counts.conflicts} conflicts, ${counts.keys} keys; ` +
		`database (${counts.regions} region${counts.regions === 1 ? "" : "s"}): ${counts.events} events in ${counts.transactions} transactions ` +
		`over ${counts.aggregates} aggregates, ${counts.suppliesRebuilt} supplies rebuilt, ${counts.ordersSummed} orders summed, ` +
		`${counts.claimLifetimes} claim lifetimes; ${violations.length} violation${violations.length === 1 ? "" : "s"}`;
	return { counts, violations, summary };
}

type Db = Awaited<ReturnType<typeof readAll>>;
type Add = (kind: ViolationKind, id: string, problem: string) => void;

function checkOperations(ops: Operation[], db: Db, add: Add) {
	const statuses: Record<string, Record<string, number>> = {};
	for (const op of ops) {
		const s = (statuses[op.op] ??= {});
		s[op.status] = (s[op.status] ?? 0) + 1;
	}
	const claims = ops.filter(o => o.op === "claim");
	const acked = claims.filter(o => o.status === 201);
	const conflicts = claims.filter(o => o.status === 409).length;

	for (const op of acked) {
		const b = op.body as any;
		const where = `${op.op} #${op.index} (key ${op.idempotencyKey})`;
		const row = b?.id ? db.claims.get(b.id) : undefined;
		if (!row) {
			add("ack-missing", b?.id ?? String(op.idempotencyKey), `${where} answered 201 with claim ${b?.id} that is not in the database`);
			continue;
		}
		const diffs: string[] = [];
		if (row.order_id !== op.orderId || b.orderId !== op.orderId) diffs.push(`order ${row.order_id} (sent ${op.orderId}, answered ${b.orderId})`);
		if (row.supply_id !== op.supplyId || b.supplyId !== op.supplyId) diffs.push(`supply ${row.supply_id} (sent ${op.supplyId}, answered ${b.supplyId})`);
		if (row.claimer_id !== op.userId) diffs.push(`claimer ${row.claimer_id} (sent by ${op.userId})`);
		if (op.idempotencyKey !== undefined && row.idempotency_key !== op.idempotencyKey) diffs.push(`key ${row.idempotency_key}`);
		if (units(b.amount) !== units(row.amount)) diffs.push(`amount ${show(units(row.amount))} (answered ${b.amount})`);
		if (diffs.length) add("ack-differs", b.id, `${where}: database has ${diffs.join(", ")}`);
	}

	// Every answer for one key must name the same claim, with the same amount, order and supply.
	const byKey = group(acked.filter(o => o.idempotencyKey !== undefined), o => `${o.userId}\u0000${o.idempotencyKey}`);
	let replays = 0;
	for (const [k, answers] of byKey) {
		replays += answers.length - 1;
		const shape = (o: Operation) => {
			const b = o.body as any;
			return `${b?.id}|${show(units(b?.amount))}|${b?.orderId}|${b?.supplyId}`;
		};
		const shapes = new Set(answers.map(shape));
		if (shapes.size > 1)
			add("replay-differs", k.split("\u0000")[1], `${answers.length} answers for one key name ${shapes.size} different claims: ${[...shapes].join(" / ")}`);
	}
	// A retry must get its own claim back (or a retryable 5xx), never a refusal: any 4xx answer for a key
	// whose claim (same order and supply) is in the database, unless it ended before any attempt that
	// may have won (a 201, or no answer) began. 422 IDEMPOTENCY_KEY_REUSED is another request, not a retry.
	const byKeyAll = group(claims.filter(o => o.idempotencyKey !== undefined), o => `${o.userId}\u0000${o.idempotencyKey}`);
	for (const [k, attempts] of byKeyAll) {
		const row = db.claimsByKey.get(k)?.[0];
		if (!row) continue;
		const mayHaveWon = attempts.filter(o => o.status === 201 || o.status === 0);
		const from = Math.min(...mayHaveWon.map(o => o.start));
		for (const o of attempts)
			if (o.status >= 400 && o.status < 500 && o.orderId === row.order_id && o.supplyId === row.supply_id && (o.end ?? Infinity) > from)
				add("replay-refused", k.split("\u0000")[1], `claim #${o.index} answered ${o.status} ${(o.body as any)?.error?.code ?? ""} for a key whose claim ${row.id} won`);
	}
	for (const [k, rows] of db.claimsByKey)
		if (rows.length > 1) add("key-two-claims", k.split("\u0000")[1], `${rows.length} claims for one key: ${rows.map(r => r.id).join(", ")}`);

	// Acknowledged state changes must be in the database.
	const others = ops.filter(o => o.status === 200 && (o.op === "release" || o.op === "complete" || o.op === "cancel"));
	for (const op of others) {
		if (op.op === "release") {
			const c = op.claimId ? db.claims.get(op.claimId) : undefined;
			if (c?.status !== "released") add("ack-not-applied", op.claimId ?? "?", `release #${op.index} answered 200 but the claim is ${c?.status ?? "missing"}`);
		} else {
			const o = op.orderId ? db.orders.get(op.orderId) : undefined;
			const want = op.op === "complete" ? "completed" : "cancelled";
			if (o?.status !== want) add("ack-not-applied", op.orderId ?? "?", `${op.op} #${op.index} answered 200 but the order is ${o?.status ?? "missing"}`);
		}
	}
	return { operations: ops.length, statuses, acknowledgedClaims: acked.length, replays, conflicts, keys: byKey.size, acknowledgedOthers: others.length };
}

const CLAIM_DELTAS: Record<string, { reserved: bigint; spent: bigint }> = {
	ClaimCreated: { reserved: 1n, spent: 0n },
	ClaimReleased: { reserved: -1n, spent: 0n },
	ClaimSettled: { reserved: -1n, spent: 1n },
};
/**
 * Events of a hold (a claim written by another region, docs/multi-region.md): the supply's region writes them,
 * each naming its claim and amount, and each stands for one event of that claim (or, for a voided claim, a
 * reserve and its release stand for nothing).
 */
const HOLD_DELTAS: Record<string, { reserved: bigint; spent: bigint; claimEvent: string }> = {
	SupplyReserved: { reserved: 1n, spent: 0n, claimEvent: "ClaimCreated" },
	SupplyReleased: { reserved: -1n, spent: 0n, claimEvent: "ClaimReleased" },
	SupplySpent: { reserved: -1n, spent: 1n, claimEvent: "ClaimSettled" },
};
const SUPPLY_STATUS: Record<string, string> = {
	SupplyCreated: "active",
	SupplyPaused: "paused",
	SupplyResumed: "active",
	SupplyClosed: "closed",
};

function checkEvents(db: Db, add: Add) {
	const byAggregate = group(db.events, e => e.aggregateId);
	const byTx = group(db.events, e => e.tx);

	// Versions 1..n exactly, per aggregate; and the row exists and matches its last event.
	for (const [id, evs] of byAggregate) {
		evs.sort((a, b) => a.version - b.version);
		const versions = evs.map(e => e.version);
		if (versions.some((v, i) => v !== i + 1)) add("version-gap", id, `${evs[0].aggregateType} event versions are ${versions.join(",")}, not 1..${evs.length}`);
		const types = new Set(evs.map(e => e.aggregateType));
		const table = types.size === 1 ? ({ supply: db.supplies, order: db.orders, claim: db.claims } as Record<string, Map<string, Row>>)[evs[0].aggregateType] : undefined;
		if (!table) {
			add("orphan-event", id, `events of aggregate types ${[...types].join(", ")} for one id`);
			continue;
		}
		const row = table.get(id);
		if (!row) {
			add("row-missing", id, `${evs.length} ${evs[0].aggregateType} events (${evs.map(e => e.type).join(", ")}) but no row`);
			continue;
		}
		const last = evs[evs.length - 1];
		if (last.aggregateType === "supply") continue; // rebuilt below, field by field
		const p = last.payload ?? {};
		const diffs: string[] = [];
		if (row.version !== last.version || (p.version !== undefined && p.version !== row.version)) diffs.push(`version ${row.version} (event ${last.version})`);
		if (p.status !== row.status) diffs.push(`status ${row.status} (event ${p.status})`);
		if (last.aggregateType === "order" && (p.claimId ?? null) !== (row.claim_id ?? null)) diffs.push(`claimId ${row.claim_id} (event ${p.claimId})`);
		if (last.aggregateType === "claim" && (units(p.amount) !== units(row.amount) || p.orderId !== row.order_id || p.supplyId !== row.supply_id))
			diffs.push(`amount/order/supply ${show(units(row.amount))}/${row.order_id}/${row.supply_id} (event ${p.amount}/${p.orderId}/${p.supplyId})`);
		if (diffs.length) add("row-differs", id, `${last.aggregateType} row differs from its last event ${last.type}: ${diffs.join(", ")}`);
	}
	for (const [table, rows] of [["supply", db.supplies], ["order", db.orders], ["claim", db.claims]] as const)
		for (const id of rows.keys()) if (!byAggregate.has(id)) add("row-differs", id, `${table} row without any event`);

	const suppliesRebuilt = rebuildSupplies(db, byAggregate, byTx, add);
	const claimLifetimes = checkLifetimes(db, add);
	return { events: db.events.length, transactions: byTx.size, aggregates: byAggregate.size, suppliesRebuilt, claimLifetimes };
}

/**
 * Replays each supply's events in version order. Balances move only by the claim events of the same
 * transaction (ClaimCreated reserves, ClaimReleased un-reserves, ClaimSettled moves reserved to spent);
 * SupplyCreated and SupplyAmountChanged set the amount. Every snapshot must equal the state rebuilt so
 * far, the last one the row; every claim event must be explained by an event of its supply.
 */
function rebuildSupplies(db: Db, byAggregate: Map<string, Event[]>, byTx: Map<string, Event[]>, add: Add): number {
	const used = new Set<Event>();
	let rebuilt = 0;
	for (const [id, evs] of byAggregate) {
		if (evs[0].aggregateType !== "supply") continue;
		const state = { amount: 0n, reserved: 0n, spent: 0n, status: "none" };
		let broken = false;
		// A transaction may change one supply several times (a batch of commands: group commit). Each change
		// writes its claim event, then its supply event: a supply event is explained by the claim events of its
		// transaction written after the supply's previous event there and before it (outbox ids are in write
		// order within one database).
		const previousInTx = new Map<string, Event>();
		for (const e of evs) {
			const p = e.payload ?? {};
			if (e.type === "SupplyCreated" || e.type === "SupplyAmountChanged") state.amount = units(p.amount) ?? -1n;
			state.status = SUPPLY_STATUS[e.type] ?? state.status;
			const after = previousInTx.get(e.tx);
			previousInTx.set(e.tx, e);
			// A hold taken over at a hand-back (`adopted`) moves no funds: the claim's own transaction reserved them.
			const adopted = p.adopted === true;
			const hold = p.claimId !== undefined && p.holdAmount !== undefined && !adopted ? HOLD_DELTAS[e.type] : undefined;
			if (hold) {
				const amount = units(p.holdAmount) ?? 0n;
				state.reserved += hold.reserved * amount;
				state.spent += hold.spent * amount;
				const claimEvents = byAggregate.get(p.claimId) ?? [];
				const c = claimEvents.find(x => x.type === hold.claimEvent);
				if (c) {
					if (used.has(c)) add("orphan-event", c.aggregateId, `${c.type} (v${c.version}) explained by two events of supply ${id}`);
					used.add(c);
				} else {
					// A claim that was never written (its id voided): its reserve must have been given back, and the
					// give-back is all that may follow. Anything else without its claim event is funds moved for nothing.
					const givenBack = evs.some(x => x.type === "SupplyReleased" && x.payload?.claimId === p.claimId);
					const voided = claimEvents.length === 0 && (e.type === "SupplyReleased" || (e.type === "SupplyReserved" && givenBack));
					if (!voided) add("orphan-event", id, `${e.type} v${e.version} holds for claim ${p.claimId}, which has no ${hold.claimEvent}`);
				}
			}
			for (const c of hold || adopted ? [] : (byTx.get(e.tx) ?? [])) {
				const d = CLAIM_DELTAS[c.type];
				if (!d || c.aggregateType !== "claim" || c.payload?.supplyId !== id) continue;
				if (c.source === e.source && (c.id > e.id || (after && c.id < after.id))) continue;
				if (used.has(c)) add("orphan-event", c.aggregateId, `${c.type} (v${c.version}) explained by two events of supply ${id}`);
				used.add(c);
				const amount = units(c.payload.amount) ?? 0n;
				state.reserved += d.reserved * amount;
				state.spent += d.spent * amount;
			}
			const snap = { amount: units(p.amount), reserved: units(p.reserved), spent: units(p.spent), status: p.status };
			if (!broken && (snap.amount !== state.amount || snap.reserved !== state.reserved || snap.spent !== state.spent || snap.status !== state.status)) {
				// Report the first divergence only: every later snapshot follows from it.
				broken = true;
				add("supply-rebuild", id, `${e.type} v${e.version}: snapshot ${fmt(snap)} but rebuilt ${fmt(state)}`);
			}
		}
		const row = db.supplies.get(id);
		if (!row) continue;
		rebuilt++;
		const final = { amount: units(row.amount), reserved: units(row.reserved), spent: units(row.spent), status: row.status };
		if (!broken && (final.amount !== state.amount || final.reserved !== state.reserved || final.spent !== state.spent || final.status !== state.status))
			add("supply-rebuild", id, `row ${fmt(final)} but rebuilt from ${evs.length} events ${fmt(state)}`);
		if (row.version !== evs[evs.length - 1].version) add("row-differs", id, `supply row version ${row.version}, last event v${evs[evs.length - 1].version}`);
	}
	for (const e of db.events)
		if (CLAIM_DELTAS[e.type] && !used.has(e))
			add("orphan-event", e.aggregateId, `${e.type} (v${e.version}) in transaction ${e.tx} with no event of its supply ${e.payload?.supplyId}`);
	return rebuilt;
}

const fmt = (s: { amount?: bigint; reserved?: bigint; spent?: bigint; status?: string }) =>
	`amount ${show(s.amount)} reserved ${show(s.reserved)} spent ${show(s.spent)} ${s.status}`;

/**
 * A claim is live from its ClaimCreated to its ClaimReleased (a settled claim stays live: the order is
 * completed). Walks each order's claim events in timeline order, one transaction at a time (releases
 * before creations within a transaction), and fails when a claim is created while another is live.
 */
function checkLifetimes(db: Db, add: Add): number {
	const claimEvents = db.events.filter(e => e.aggregateType === "claim");
	const orderOf = new Map<string, string>();
	for (const e of claimEvents) if (e.payload?.orderId) orderOf.set(e.aggregateId, e.payload.orderId);
	let lifetimes = 0;
	for (const [orderId, evs] of group(claimEvents, e => orderOf.get(e.aggregateId) ?? "?")) {
		evs.sort(byTimeline);
		const live = new Set<string>();
		const txs: Event[][] = [];
		for (const e of evs) {
			const prev = txs[txs.length - 1];
			if (prev && prev[0].tx === e.tx) prev.push(e);
			else txs.push([e]);
		}
		for (const tx of txs) {
			for (const e of tx) if (e.type === "ClaimReleased") live.delete(e.aggregateId);
			for (const e of tx)
				if (e.type === "ClaimCreated") {
					lifetimes++;
					if (live.size) add("overlapping-claims", orderId, `claim ${e.aggregateId} created while claim ${[...live].join(", ")} was live`);
					live.add(e.aggregateId);
				}
		}
	}
	return lifetimes;
}

/** amount = Σ unitPrice × quantity, exact; read from the row (and its items) as stored. */
function checkOrderAmounts(orders: Map<string, Row>, add: Add): number {
	for (const o of orders.values()) {
		let sum = 0n;
		let bad = "";
		for (const [i, it] of (Array.isArray(o.items) ? o.items : []).entries()) {
			const price = typeof it?.unitPrice === "string" && /^\d+(\.\d{1,18})?$/.test(it.unitPrice) ? fromNumeric(it.unitPrice) : undefined;
			if (price === undefined || !Number.isSafeInteger(it?.quantity) || it.quantity <= 0) bad = `item ${i} is malformed`;
			else sum += price * BigInt(it.quantity);
		}
		if (!Array.isArray(o.items) || o.items.length === 0) bad = "no items";
		const amount = units(o.amount);
		if (bad || amount !== sum) add("order-amount", o.id, bad || `amount ${show(amount)} but items sum to ${show(sum)}`);
	}
	return orders.size;
}
