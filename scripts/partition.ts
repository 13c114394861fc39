// Cutting one region of the local cluster off from Kafka (the events and the region link: everything that
// crosses regions) while it keeps its own PostgreSQL, Redis and NATS, and so keeps serving its own clients.
//
// How: each region's node processes start in a cgroup (v2) of their own; `partition` adds an iptables rule that
// drops every packet those processes send to the Kafka broker's ports, on connections open or new, the way a
// cut network does (no reset: the region's clients wait and time out). `heal` removes the rule. A rule matches
// the socket's cgroup, so nothing else on the machine is touched. Needs root, a cgroup2 mount and iptables
// (`.ci/run` installs it); without them the cluster runs, and `partition` says what is missing.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** Where cgroup v2 is mounted (`/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` on a hybrid one). */
function cgroup2Root(): string | undefined {
	const mounts = fs.readFileSync("/proc/self/mounts", "utf8").split("\n");
	return mounts.map(l => l.split(" ")).find(f => f[2] === "cgroup2")?.[1];
}

/** The cgroup a region's processes run in (its name relative to the cgroup2 root), made if need be; undefined if cgroups cannot be made here. */
export function regionCgroup(cluster: string, region: string): string | undefined {
	const root = cgroup2Root();
	if (!root) return undefined;
	const name = `wallet-cluster-${cluster}-${region}`;
	try {
		fs.mkdirSync(path.join(root, name), { recursive: true });
		return name;
	} catch {
		return undefined;
	}
}

/** The arguments that start `cmd` inside the cgroup (a shell joins it, then becomes the command: same pid). */
export function inCgroup(cgroup: string | undefined, cmd: string, args: string[]): [string, string[]] {
	if (!cgroup) return [cmd, args];
	const procs = path.join(cgroup2Root()!, cgroup, "cgroup.procs");
	return ["/bin/sh", ["-c", 'echo $$ > "$0" && exec "$@"', procs, cmd, ...args]];
}

/** Removes a region's cgroup once its processes are gone (a cgroup with processes cannot be removed). */
export function removeCgroup(cgroup: string | undefined) {
	const root = cgroup2Root();
	if (!cgroup || !root) return;
	try {
		fs.rmdirSync(path.join(root, cgroup));
	} catch {
		// Gone already, or a process of it still exiting: an empty cgroup left behind costs nothing.
	}
}

const comment = (cluster: string, region: string) => `wallet-partition:${cluster}:${region}`;

function iptables(args: string[]): string {
	try {
		return execFileSync("iptables", ["-w", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
	} catch (err) {
		const e = err as NodeJS.ErrnoException & { stderr?: string };
		if (e.code === "ENOENT") throw new Error("partition needs iptables (apt-get install iptables) and root");
		throw new Error(`iptables ${args.join(" ")}: ${(e.stderr ?? e.message).trim()}`);
	}
}

/** Drops what the region's processes send to the Kafka brokers (host:port list). */
export function cut(cluster: string, region: string, cgroup: string | undefined, brokers: string[]) {
	if (!cgroup) throw new Error(`${region}'s processes are not in a cgroup of their own (partition needs root and cgroup v2): nothing to cut`);
	const ports = [...new Set(brokers.map(b => b.slice(b.lastIndexOf(":") + 1)))].join(",");
	if (rules(cluster, region).length) return;
	iptables(["-I", "OUTPUT", "-p", "tcp", "-m", "cgroup", "--path", cgroup, "-m", "multiport", "--dports", ports, "-m", "comment", "--comment", comment(cluster, region), "-j", "DROP"]);
}

/** The rules `cut` added for the region (for every region of the cluster without one), as `iptables -S` prints them. */
function rules(cluster: string, region?: string): { rule: string; region: string }[] {
	return iptables(["-S", "OUTPUT"])
		.split("\n")
		.map(rule => ({ rule, m: /--comment "?wallet-partition:([^:\s"]+):([^\s"]+)/.exec(rule) }))
		.filter(({ rule, m }) => rule.startsWith("-A OUTPUT") && m?.[1] === cluster && (region === undefined || m[2] === region))
		.map(({ rule, m }) => ({ rule, region: m![2] }));
}

/** Removes the cuts of one region, or of every region of the cluster; returns the regions healed. */
export function heal(cluster: string, region?: string): string[] {
	let found: ReturnType<typeof rules>;
	try {
		found = rules(cluster, region);
	} catch (err) {
		// No iptables: nothing can have been cut.
		if (/needs iptables/.test((err as Error).message)) return [];
		throw err;
	}
	const healed: string[] = [];
	for (const { rule, region: cutOff } of found) {
		iptables(["-D", ...splitRule(rule.replace(/^-A /, ""))]);
		healed.push(cutOff);
	}
	return healed;
}

/** `iptables -S` quotes the comment; the rest splits on spaces. */
function splitRule(rule: string): string[] {
	return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map(m => m[1] ?? m[2]);
}
