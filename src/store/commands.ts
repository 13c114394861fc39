// The order actor's commands, carried out by one server-side function (migrations/*order-commands.sql):
// a batch of commands is one round trip and one transaction, with one outcome per command. The SQL
// decides as src/domain does (the specification; test/integration/commands-spec.test.ts holds them
// together); this module only builds the call and turns each outcome into a result or an AppError.
import type { Pool, PoolClient } from "pg";
import type { Claim, Order, Supply } from "../domain/types";
import { busy, refusal } from "./refusals";

export interface CommandContext {
	region: string;
	/** The ownership epoch, per home region this region writes for, that this node believes; the SQL refuses a stale one. */
	epochs: Record<string, number>;
	holdSec: number;
}

export type OrderCommand =
	| { op: "claim"; orderId: string; supplyId: string; userId: string; key: string; claimId?: string; held?: boolean }
	| { op: "release"; orderId: string; claimId: string; userId: string; admin?: boolean }
	| { op: "complete"; orderId: string; userId: string; admin?: boolean }
	| { op: "cancel"; orderId: string; userId: string; admin?: boolean };

export interface CommandResult {
	order: Order;
	claim?: Claim;
	supply?: Supply;
	replayed?: boolean;
}

/** One command's outcome: its result, or the error to answer with. */
export type Outcome = { ok: true; value: CommandResult } | { ok: false; error: Error };

type Row = { ok?: true; error?: string; details?: Record<string, unknown> } & Partial<CommandResult>;

export async function runCommands(db: Pool | PoolClient, cc: CommandContext, cmds: OrderCommand[]): Promise<Outcome[]> {
	const r = await db
		.query<{ out: Row[] }>({
			name: "order-commands",
			text: `SELECT order_commands($1::jsonb) AS out`,
			values: [JSON.stringify({ region: cc.region, epochs: cc.epochs, holdSec: cc.holdSec, cmds })],
		})
		.catch(busy);
	return r.rows[0].out.map(toOutcome);
}

export function toOutcome(row: Row): Outcome {
	if (row.ok) return { ok: true, value: { order: row.order!, claim: row.claim, supply: row.supply, replayed: row.replayed } };
	return { ok: false, error: refusal(row.error ?? "COMMAND_FAILED", row.details ?? {}) };
}

export interface SweepResult {
	released: { claimId: string; orderId: string; supplyId: string; claimerId: string; buyerId: string }[];
	expired: { id: string; buyerId: string }[];
	failed: { id: string; kind: "claim" | "order"; sqlstate: string; message: string }[];
}

/** Releases expired holds and expires old orders of the home regions this region owns, `limit` of each. */
export async function sweep(db: Pool | PoolClient, region: string, limit: number): Promise<SweepResult> {
	const r = await db.query<{ out: SweepResult }>(`SELECT sweep($1::jsonb) AS out`, [JSON.stringify({ region, limit })]);
	return r.rows[0].out;
}

/**
 * Makes sure every region's entities have an owner: at first, each region owns its own at epoch 1. With failover
 * (`leases`), this region's own rows need a lease before it writes (an expired one until the first renewal);
 * without, they need none.
 */
export async function ensureOwnership(db: Pool, regions: string[], self?: string, leases = false): Promise<Map<string, { owner: string; epoch: number }>> {
	// A new row of this region's is born without a lease when leases are on: no write before the first renewal.
	await db.query(
		`INSERT INTO ownership_leases (home_region, owner, epoch, lease_until)
		 SELECT r, r, 1, CASE WHEN $3 AND r = $2 THEN '-infinity'::timestamptz END FROM unnest($1::text[]) AS r ON CONFLICT DO NOTHING`,
		[regions, self ?? null, leases],
	);
	if (self)
		await db.query(
			leases
				? `UPDATE ownership_leases SET lease_until = '-infinity' WHERE owner = $1 AND lease_until IS NULL`
				: `UPDATE ownership_leases SET lease_until = NULL WHERE owner = $1 AND lease_until IS NOT NULL`,
			[self],
		);
	const r = await db.query<{ home_region: string; owner: string; epoch: number }>(`SELECT home_region, owner, epoch FROM ownership_leases`);
	return new Map(r.rows.map(row => [row.home_region, { owner: row.owner, epoch: Number(row.epoch) }]));
}

/** Who writes `home` now, from this region's ownership rows (under a lease or not). */
export async function ownerOf(db: Pool, home: string): Promise<string | undefined> {
	const r = await db.query<{ owner: string }>(`SELECT owner FROM ownership_leases WHERE home_region = $1`, [home]);
	return r.rows[0]?.owner;
}
