// A record of what a concurrent run sent and what it was told, for checkHistory to hold against the
// database afterwards (in the spirit of Jepsen's histories). Tests, benchmarks and drills share it.

export type OpKind = "claim" | "release" | "complete" | "cancel" | "createOrder" | "createSupply" | "updateSupply" | (string & {});

export interface OpInput {
	op: OpKind;
	userId: string;
	idempotencyKey?: string;
	orderId?: string;
	supplyId?: string;
	claimId?: string;
	/** Which gateway or node the request went to, for reading a failing history. */
	node?: string;
}

export interface Operation extends OpInput {
	/** Position in the history, in the order operations began. */
	index: number;
	/** HTTP status; 0 while in flight, or when no answer came (a timeout or a broken connection). */
	status: number;
	body?: unknown;
	/** True when the answer said it replayed an earlier result (Idempotent-Replayed). */
	replayed?: boolean;
	/** Wall-clock times in ms (Date.now()), so histories of several processes can be merged. */
	start: number;
	end?: number;
}

export class History {
	readonly ops: Operation[] = [];

	/** Records that an operation was sent; call the returned function with its answer. */
	begin(input: OpInput): (status: number, body?: unknown, replayed?: boolean) => Operation {
		const op: Operation = { ...input, index: this.ops.length, status: 0, start: Date.now() };
		this.ops.push(op);
		return (status, body, replayed) => {
			op.status = status;
			op.body = body;
			op.replayed = replayed;
			op.end = Date.now();
			return op;
		};
	}

	/** Runs a request and records it; a thrown error is recorded as status 0 (outcome unknown) and rethrown. */
	async record<R extends { status: number; body?: unknown; headers?: { get(name: string): string | null } }>(
		input: OpInput,
		send: () => Promise<R>,
	): Promise<R> {
		const done = this.begin(input);
		try {
			const r = await send();
			done(r.status, r.body, r.headers?.get("idempotent-replayed") === "true");
			return r;
		} catch (err) {
			done(0, { error: String(err) });
			throw err;
		}
	}

	/** Merges histories recorded apart (e.g. one per region or process), by start time. */
	static merge(...histories: History[]): History {
		const h = new History();
		const all = histories.flatMap(x => x.ops).sort((a, b) => a.start - b.start);
		all.forEach((op, index) => h.ops.push({ ...op, index }));
		return h;
	}
}
