// `npm run drill -- SCENARIO [--durability local|replicated] [--seconds S] [--clients N] [--repeat R] [--assert]`: a failover drill on the
// local cluster (three regions as processes, Kafka test broker, FAILOVER=on). Clients write through every region
// (orders, claims across regions, supply changes) while the fault is injected and healed; then the regions must
// converge, and the history checker reads every region's database. One table row per scenario; a timeline (SVG)
// of writes accepted and refused per region, with the fault, the heal and the failover's decisions marked.
//
//   kill       SIGKILL every process of asia-east1, start it again after S seconds
//   partition  cut asia-east1 off from Kafka (it keeps serving its own clients) for S seconds
//   flap       cut asia-east1 off and heal it every 1.5 s for S seconds
//   kafka      the Kafka broker drops and refuses every connection for S seconds
//   postgres   asia-east1's database refuses connections (its sessions ended) for S seconds
//   redis      asia-east1's redis-server SIGKILLed, started again (empty) after S seconds
//   nats       asia-east1's nats-server SIGKILLed, started again after S seconds
//   watcher    the node running asia-east1's region role (the watcher, leases) SIGKILLed, started again after S
//              seconds; the role runs on two nodes of its own there (`cluster up --watchers 2`), and the standby takes over
//   all        each of them, one after the other
//
// --repeat R runs each scenario R times (its timeline and logs are the last run's) and ends with a line per scenario:
// each timing's min / median / max and how many runs met its target (scripts/drill-summary.ts).
// --assert exits 1 unless the safety figures hold (0 double claims, 0 negative balances, regions equal, and in
// replicated mode 0 acknowledged writes lost: claims answered 201, completions, cancellations and releases answered 200). Timings are printed, never asserted (docs/multi-region.md).
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../config";
import { checkHistory } from "../src/checker/history-check";
import { History } from "../src/checker/history";
import { checkInvariants } from "../src/checker/invariants";
import { signToken } from "../src/lib/jwt";
import { roleHolder } from "../src/regions/role-lock";
import { Client, item } from "../test/helpers/http";
import { clusterUp, type ClusterRegion, type LocalCluster } from "../test/helpers/local-cluster";
import { safetyFigures, summaryLines } from "./drill-summary";

const ROOT = path.resolve(__dirname, "..");
const OUT = path.resolve(process.env.DRILL_DIR ?? path.join(ROOT, ".drills"));
const SCENARIOS = ["kill", "partition", "flap", "kafka", "postgres", "redis", "nats", "watcher"] as const;
type Scenario = (typeof SCENARIOS)[number];
const SCOPES = ["supply:read", "supply:write", "order:read", "order:write", "claim:read", "claim:write"];

const arg = (name: string, def: string) => {
	const i = process.argv.indexOf(`--${name}`);
	return i > 0 ? (process.argv[i + 1] ?? def) : def;
};
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

interface Mark {
	at: number;
	what: string;
	color: string;
}

interface Row {
	scenario: Scenario;
	durability: string;
	detectedMs: number | null;
	servedAgainMs: number | null;
	failbackMs: number | null;
	writes: number;
	accepted: number;
	claimsAcked: number;
	ackedLost: number;
	doubleClaims: number;
	negativeBalances: number;
	otherViolations: number;
	regionsEqual: boolean;
	ownershipChanges: number;
	timeline: string;
}

async function drill(scenario: Scenario, durability: "local" | "replicated", seconds: number, clients: number): Promise<Row> {
	const cl: LocalCluster = await clusterUp({
		regions: 3,
		nodes: 1,
		up: ["--failover", "--durability", durability, ...(scenario === "watcher" ? ["--watchers", "2"] : [])],
		logLevel: "info",
		// Short enough to watch on one machine; the defaults otherwise (WATCH_*, LEASE_*: config/index.ts).
		env: { FAILBACK_AFTER_MS: "3000", REQUEST_TIMEOUT_MS: "3000", HOLD_CONFIRM_SEC: "5" },
	});
	const [a, b, c] = cl.regions;
	const state = JSON.parse(fs.readFileSync(path.join(cl.dir, "state.json"), "utf8"));
	const jwt = loadConfig({ JWT_SECRET: state.secrets.jwt, NODE_ENV: "test" }).jwt;
	const base = (r: ClusterRegion) => r.apiUrl.replace("/api/v1", "");
	const as = async (r: ClusterRegion, user: string) => new Client(base(r), await signToken(jwt, user, SCOPES), 3000);
	const history = new History();
	const marks: Mark[] = [];
	const t0 = Date.now();
	const mark = (what: string, color: string) => marks.push({ at: Date.now(), what, color });
	try {
		// Shoppers homed in every region, with supplies there.
		const shoppers: { region: ClusterRegion; user: string; supplyId: string }[] = [];
		for (const r of cl.regions)
			for (let i = 0; i < 3; i++) {
				const user = `shopper-${r.name}-${i}`;
				const s = await (await as(r, user)).post("/api/v1/supplies", { asset: "ETH", amount: "1000" });
				if (s.status !== 201) throw new Error(`seeding a supply in ${r.name}: ${s.status} ${JSON.stringify(s.body)}`);
				shoppers.push({ region: r, user, supplyId: s.body.id });
			}
		await cl.converged(60_000);

		let running = true;
		const send = async (r: ClusterRegion, op: Parameters<History["begin"]>[0], fn: () => Promise<{ status: number; body?: unknown; headers?: Headers }>) => {
			// An error is recorded as status 0 (no answer) by the history.
			return history.record({ ...op, node: r.name }, fn).catch(() => undefined);
		};
		// Per region: a buyer posts an order, a shopper of any region claims it through that region; some complete.
		const worker = async (r: ClusterRegion, n: number) => {
			const buyer = await as(r, `buyer-${r.name}-${n}`);
			for (let k = 0; running; k++) {
				const order = await send(r, { op: "createOrder", userId: `buyer-${r.name}-${n}` }, () =>
					buyer.post("/api/v1/orders", { asset: "ETH", items: [item("0.01")] }),
				);
				if (!order || order.status !== 201) {
					await sleep(100);
					continue;
				}
				const shopper = shoppers[(k + n) % shoppers.length];
				const key = randomUUID();
				const client = await as(r, shopper.user);
				const claim = await send(r, { op: "claim", userId: shopper.user, idempotencyKey: key, orderId: (order.body as { id: string }).id, supplyId: shopper.supplyId }, () =>
					client.post("/api/v1/claims", { orderId: (order.body as { id: string }).id, supplyId: shopper.supplyId }, { "Idempotency-Key": key }),
				);
				if (claim?.status === 201 && k % 3 === 0)
					await send(r, { op: "complete", userId: `buyer-${r.name}-${n}`, orderId: (order.body as { id: string }).id }, () =>
						buyer.post(`/api/v1/orders/${(order.body as { id: string }).id}/complete`),
					);
			}
		};
		// The lost region's entities, written through a survivor: when do they work again?
		const lostSupply = shoppers.find(s => s.region === c)!;
		let servedAgainAt: number | undefined;
		let refusedSince: number | undefined;
		let faultAt: number | undefined;
		const probe = async () => {
			const client = await as(a, lostSupply.user);
			for (let k = 0; running; k++) {
				const res = await send(a, { op: "updateSupply", userId: lostSupply.user, supplyId: lostSupply.supplyId }, () =>
					client.post(`/api/v1/supplies/${lostSupply.supplyId}/${k % 2 ? "resume" : "pause"}`),
				);
				// Served again: the first success after the first refusal since the fault (0 if it was never refused).
				if (faultAt && !servedAgainAt) {
					if (!res || res.status >= 300) refusedSince ??= Date.now();
					else if (refusedSince) servedAgainAt = Date.now();
				}
				await sleep(100);
			}
		};
		// What the survivors' watchers and rows say, every 100 ms.
		let detectedAt: number | undefined;
		let failbackAt: number | undefined;
		let owner = c.name;
		let ownershipChanges = 0;
		let healedAt: number | undefined;
		const watch = async () => {
			const client = await as(a, "drill-watch");
			const home = await as(c, "drill-watch");
			while (running) {
				const v = await client.get("/api/v1/regions").catch(() => undefined);
				const row = v?.body?.regions?.find((x: { name: string }) => x.name === c.name);
				if (row) {
					if (faultAt && !detectedAt && row.health === "down") {
						detectedAt = Date.now();
						mark(`${c.name} down`, "#d97706");
					}
					if (row.owner && row.owner !== owner) {
						ownershipChanges++;
						owner = row.owner;
						mark(`owner ${owner} @${row.epoch}`, owner === c.name ? "#7c3aed" : "#2563eb");
					}
				}
				// Fail-back: the returning region writes its own entities again (its own row names it, under a lease), not
				// the moment the survivor hands them back (the region first applies the survivor's log up to the cut).
				if (healedAt && !failbackAt && owner === c.name && ownershipChanges > 0) {
					const mine = await home.get("/api/v1/regions").catch(() => undefined);
					const own = mine?.body?.regions?.find((x: { name: string }) => x.name === c.name);
					if (own?.owner === c.name && (own.leaseRemainingMs ?? 0) > 0) {
						failbackAt = Date.now();
						mark(`${c.name} writes again`, "#7c3aed");
					}
				}
				await sleep(100);
			}
		};
		const load = [...cl.regions.flatMap(r => Array.from({ length: clients }, (_, n) => worker(r, n))), probe(), watch()];

		await sleep(3000);
		const activeRole = (r: ClusterRegion) => roleHolder(cl.pools[cl.regions.indexOf(r)], r.name).catch(() => null);
		if (scenario === "kill") {
			faultAt = Date.now();
			mark(`kill ${c.name}`, "#dc2626");
			cl.killNow(c);
			await sleep(seconds * 1000);
			mark(`start ${c.name}`, "#16a34a");
			healedAt = Date.now();
			void cl.cmd("start", c.name).catch(err => console.error(`start: ${err.message}`));
		} else if (scenario === "partition") {
			await cl.cmd("partition", c.name);
			faultAt = Date.now();
			mark(`partition ${c.name}`, "#dc2626");
			await sleep(seconds * 1000);
			await cl.cmd("heal");
			mark("heal", "#16a34a");
			healedAt = Date.now();
		} else if (scenario === "flap") {
			faultAt = Date.now();
			mark(`flap ${c.name}`, "#dc2626");
			for (const until = Date.now() + seconds * 1000; Date.now() < until; ) {
				await cl.cmd("partition", c.name);
				await sleep(1500);
				await cl.cmd("heal");
				await sleep(1500);
			}
			mark("stable", "#16a34a");
			healedAt = Date.now();
		} else if (scenario === "watcher") {
			const active = await activeRole(c);
			if (!active) throw new Error(`no node of ${c.name} holds its region role`);
			faultAt = Date.now();
			mark(`kill ${active}`, "#dc2626");
			cl.killNodeNow(active);
			let now: string | null = active;
			for (const until = Date.now() + 10_000; Date.now() < until && (now === active || now === null); await sleep(50)) now = await activeRole(c);
			if (now === active) now = null;
			mark(now ? `role on ${now}` : "role on no node", now ? "#2563eb" : "#dc2626");
			console.log(now ? `watcher: ${c.name}'s region role moved from ${active} to ${now} in ${Date.now() - faultAt} ms` : `watcher: no node of ${c.name} took its region role in 10 s`);
			await sleep(seconds * 1000);
			mark(`start ${active}`, "#16a34a");
			healedAt = Date.now();
			await cl.cmd("start", c.name);
		} else if (scenario === "postgres" || scenario === "redis" || scenario === "nats") {
			await cl.cmd(scenario, "down", c.name);
			faultAt = Date.now();
			mark(`${scenario} of ${c.name} down`, "#dc2626");
			await sleep(seconds * 1000);
			await cl.cmd(scenario, "up", c.name);
			mark(`${scenario} up`, "#16a34a");
			healedAt = Date.now();
		} else {
			await cl.cmd("kafka", "down");
			faultAt = Date.now();
			mark("kafka down", "#dc2626");
			await sleep(seconds * 1000);
			await cl.cmd("kafka", "up");
			mark("kafka up", "#16a34a");
			healedAt = Date.now();
		}
		// Until the lost region owns its entities again and the probe's writes are served again (or long enough to say
		// they are not), plus a little.
		const settled = () => owner === c.name && (failbackAt || !ownershipChanges) && (servedAgainAt || !refusedSince);
		for (const until = Date.now() + 60_000; Date.now() < until && !settled(); ) await sleep(200);
		await sleep(3000);
		running = false;
		await Promise.all(load);
		mark("load stopped", "#6b7280");
		// Every write as answered (status 0: no answer), through which region's API, from the history.
		const writes = history.ops.map(o => ({ region: o.node!, at: o.end ?? o.start, ok: o.status > 0 && o.status < 300 }));

		// Every region equal, then the checkers over all three databases.
		let regionsEqual = true;
		await cl.converged(90_000).catch(() => {
			regionsEqual = false;
		});
		// Converged includes the holds: a hold whose claim ended while no region could end it is ended by its owner's
		// next sweep (end_finished_holds), and one whose claim never came (the claim's region lost it, or the link was
		// down) is voided once the claim's region says so (HOLD_CONFIRM_SEC). Read before that, the checkers would count
		// funds still reserved; one that stays after 30 s is counted.
		const standing = `SELECT count(*)::int AS n FROM holds h LEFT JOIN claims c ON c.id = h.claim_id
		                    WHERE h.status IN ('held', 'confirmed') AND (c.id IS NULL OR c.status IN ('settled', 'released'))`;
		for (const until = Date.now() + 30_000; Date.now() < until; await sleep(500)) {
			const left = await Promise.all(cl.pools.map(p => p.query(standing).then(r => r.rows[0].n as number)));
			if (left.every(n => n === 0)) break;
		}
		if (regionsEqual) await cl.converged(30_000).catch(() => (regionsEqual = false));
		const report = await checkHistory(cl.pools, history);
		const invariants = await checkInvariants(cl.pools);
		const claims = history.ops.filter(o => o.op === "claim" && o.status === 201 && !o.replayed);
		const row: Row = {
			scenario,
			durability,
			detectedMs: detectedAt ? detectedAt - faultAt! : null,
			servedAgainMs: servedAgainAt ? servedAgainAt - faultAt! : refusedSince ? null : 0,
			failbackMs: failbackAt && healedAt && ownershipChanges > 0 ? Math.max(0, failbackAt - healedAt) : null,
			writes: writes.length,
			accepted: writes.filter(w => w.ok).length,
			claimsAcked: claims.length,
			...safetyFigures(report.violations, invariants.violations),
			regionsEqual,
			ownershipChanges,
			timeline: "",
		};
		if (report.violations.length || invariants.violations.length)
			console.error(JSON.stringify({ history: report.violations.slice(0, 10), invariants: invariants.violations.slice(0, 10) }, null, 1));
		fs.mkdirSync(OUT, { recursive: true });
		row.timeline = path.join(OUT, `${scenario}-${durability}.svg`);
		fs.writeFileSync(row.timeline, timeline(`${scenario} (${durability})`, t0, cl.regions.map(r => r.name), writes, marks));
		return row;
	} finally {
		// The nodes' logs, for reading what the failover decided (one JSON line per decision).
		fs.rmSync(path.join(OUT, `logs-${scenario}`), { recursive: true, force: true });
		fs.mkdirSync(OUT, { recursive: true });
		fs.cpSync(path.join(cl.dir, "logs"), path.join(OUT, `logs-${scenario}`), { recursive: true });
		// DRILL_KEEP=1 leaves the cluster's databases to read (the processes are stopped).
		if (process.env.DRILL_KEEP === "1") {
			await cl.cmd("down", "--keep-databases").catch(err => console.error(`cluster down: ${err.message}`));
			console.error(`kept: databases ${cl.regions.map(r => r.database).join(", ")}`);
		} else await cl.down();
	}
}

/** Writes accepted (green, up) and refused (red, down) per region in 500 ms buckets, with the drill's marks. */
function timeline(title: string, t0: number, regions: string[], writes: { region: string; at: number; ok: boolean }[], marks: Mark[]): string {
	const end = Math.max(...writes.map(w => w.at), ...marks.map(m => m.at)) + 500;
	const bucket = 500;
	const n = Math.ceil((end - t0) / bucket);
	const W = 900;
	const laneH = 110;
	const top = 40;
	const left = 110;
	const x = (t: number) => left + ((t - t0) / (end - t0)) * (W - left - 20);
	const counts = regions.map(r => {
		const ok = new Array(n).fill(0);
		const bad = new Array(n).fill(0);
		for (const w of writes.filter(w => w.region === r)) (w.ok ? ok : bad)[Math.floor((w.at - t0) / bucket)]++;
		return { ok, bad };
	});
	const max = Math.max(1, ...counts.flatMap(c => [...c.ok, ...c.bad]));
	const bw = (W - left - 20) / n;
	const H = top + regions.length * laneH + 60;
	const out: string[] = [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
		`<rect width="100%" height="100%" fill="white"/>`,
		`<text x="10" y="20" font-size="14" font-weight="bold">Drill: ${title}. Writes per 0.5 s, as answered: accepted (green) above, refused or unanswered (red) below; sent through each region's API</text>`,
	];
	regions.forEach((r, i) => {
		const mid = top + i * laneH + laneH / 2;
		out.push(`<text x="10" y="${mid + 4}">${r}</text>`, `<line x1="${left}" x2="${W - 20}" y1="${mid}" y2="${mid}" stroke="#9ca3af"/>`);
		for (let k = 0; k < n; k++) {
			const hOk = (counts[i].ok[k] / max) * (laneH / 2 - 6);
			const hBad = (counts[i].bad[k] / max) * (laneH / 2 - 6);
			const bx = left + k * bw;
			if (hOk) out.push(`<rect x="${bx.toFixed(1)}" y="${(mid - hOk).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${hOk.toFixed(1)}" fill="#16a34a"/>`);
			if (hBad) out.push(`<rect x="${bx.toFixed(1)}" y="${mid}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${hBad.toFixed(1)}" fill="#dc2626"/>`);
		}
	});
	marks.forEach((m, i) => {
		const mx = x(m.at);
		const y = top + regions.length * laneH + 14 + (i % 3) * 14;
		out.push(
			`<line x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${top}" y2="${y - 10}" stroke="${m.color}" stroke-dasharray="4 3"/>`,
			`<text x="${(mx + 3).toFixed(1)}" y="${y}" fill="${m.color}">${m.what} (${((m.at - t0) / 1000).toFixed(1)} s)</text>`,
		);
	});
	out.push("</svg>");
	return out.join("\n");
}

const ms = (v: number | null) => (v === null ? "—" : `${(v / 1000).toFixed(1)} s`);

async function main() {
	const which = process.argv[2];
	const durability = arg("durability", "replicated");
	if (durability !== "local" && durability !== "replicated") throw new Error("--durability must be local or replicated");
	const seconds = Number(arg("seconds", "8"));
	// Clients per region, each writing one after the other (two cores run the three regions and the load too).
	const clients = Number(arg("clients", "1"));
	if (!(Number.isInteger(clients) && clients >= 1 && clients <= 16)) throw new Error("--clients must be an integer from 1 to 16");
	if (!(seconds >= 2 && seconds <= 600)) throw new Error("--seconds must be between 2 and 600");
	const repeat = Number(arg("repeat", "1"));
	if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 20)) throw new Error("--repeat must be an integer from 1 to 20");
	const scenarios: Scenario[] = which === "all" ? [...SCENARIOS] : SCENARIOS.includes(which as Scenario) ? [which as Scenario] : [];
	if (!scenarios.length) throw new Error(`usage: npm run drill -- ${SCENARIOS.join("|")}|all [--durability local|replicated] [--seconds S] [--clients N] [--repeat R] [--assert]`);
	const rows: Row[] = [];
	for (const s of scenarios)
		for (let i = 1; i <= repeat; i++) {
			console.error(`drill ${s} (${durability}, ${seconds} s)${repeat > 1 ? `, run ${i} of ${repeat}` : ""}...`);
			rows.push(await drill(s, durability, seconds, clients));
		}
	console.log(
		`\nnpm run drill -- ${which} --durability ${durability} --seconds ${seconds}${repeat > 1 ? ` --repeat ${repeat}` : ""}: ${new Date().toISOString()}\n\n` +
			"| scenario | durability | detected | writes served again | fail-back | writes (accepted) | claims acknowledged | acknowledged writes lost | double claims | negative balances | other violations | regions equal | ownership changes |\n" +
			"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" +
			rows
				.map(r =>
					[r.scenario, r.durability, ms(r.detectedMs), ms(r.servedAgainMs), ms(r.failbackMs), `${r.writes} (${r.accepted})`, r.claimsAcked, r.ackedLost, r.doubleClaims, r.negativeBalances, r.otherViolations, r.regionsEqual ? "yes" : "no", r.ownershipChanges].join(" | "),
				)
				.map(l => `| ${l} |`)
				.join("\n"),
	);
	if (repeat > 1) console.log(`\n${summaryLines(rows).join("\n")}`);
	console.log(`\ntimelines: ${[...new Set(rows.map(r => path.relative(ROOT, r.timeline)))].join(", ")}`);
	fs.mkdirSync(OUT, { recursive: true });
	fs.writeFileSync(path.join(OUT, "last.json"), JSON.stringify(rows, null, 2));
	if (process.argv.includes("--assert")) {
		const bad = rows.filter(r => r.doubleClaims || r.negativeBalances || !r.regionsEqual || (r.durability === "replicated" && r.ackedLost));
		if (bad.length) {
			console.error(`drill: safety figures failed for ${bad.map(r => r.scenario).join(", ")}`);
			process.exit(1);
		}
	}
}

main().then(
	() => process.exit(0),
	err => {
		console.error(`drill: ${(err as Error).stack ?? err}`);
		process.exit(1);
	},
);
