// CPU time and resident memory of processes, read from /proc (Linux), so a benchmark can say where the
// time of a claim went: the nodes, PostgreSQL's backends, NATS, Redis and the load generator itself.
import fs from "node:fs";
import { execFileSync } from "node:child_process";

const TICKS_PER_SEC = (() => {
	try {
		return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
	} catch {
		return 100;
	}
})();

/** user + system CPU of one process so far, in ms (0 once it is gone). */
export function cpuMs(pid: number): number {
	try {
		const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
		// The command name may hold spaces: fields are counted after its closing parenthesis.
		const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SEC;
	} catch {
		return 0;
	}
}

/** Resident memory of one process, in MiB. */
export function rssMiB(pid: number): number {
	try {
		const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
		return m ? Math.round(Number(m[1]) / 102.4) / 10 : 0;
	} catch {
		return 0;
	}
}

/** Every process whose command name is `comm` (e.g. all PostgreSQL backends). */
export function pidsNamed(comm: string): number[] {
	const out: number[] = [];
	for (const d of fs.readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		try {
			if (fs.readFileSync(`/proc/${d}/comm`, "utf8").trim() === comm) out.push(Number(d));
		} catch {
			// gone meanwhile
		}
	}
	return out;
}

/** A process and its descendants (e.g. the Kafka test broker, a child of the node process that holds it). */
export function withDescendants(pid: number): number[] {
	const children = new Map<number, number[]>();
	for (const d of fs.readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		try {
			const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
			const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
			children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
		} catch {
			// gone meanwhile
		}
	}
	const out: number[] = [];
	for (const todo = [pid]; todo.length; ) {
		const p = todo.pop()!;
		out.push(p);
		todo.push(...(children.get(p) ?? []));
	}
	return out;
}

export type ProcessGroups = Record<string, () => number[]>;

/** CPU ms per group since the last call of the returned function's `since`. */
export function cpuSampler(groups: ProcessGroups) {
	const read = () => {
		const r: Record<string, number> = {};
		for (const [name, pids] of Object.entries(groups)) r[name] = pids().reduce((a, p) => a + cpuMs(p), 0);
		const self = process.cpuUsage();
		r["bench (load generator)"] = (self.user + self.system) / 1000;
		return r;
	};
	return {
		mark: read,
		since(start: Record<string, number>): Record<string, number> {
			const now = read();
			return Object.fromEntries(Object.keys(now).map(k => [k, Math.max(0, now[k] - (start[k] ?? 0))]));
		},
	};
}
