// The monitoring assets against a running region: the domain series move when the domain acts, and
// every metric (and label) that monitoring/grafana/region-dashboard.json and
// monitoring/prometheus/alerts.yml query is one the region's Prometheus endpoint really exports.
// The region replicates: two regions in this process (REPLICATION=memory, startTestRegions), each
// running every service and the replication service, as production regions do; the checks scrape the
// first one's node, and the second one is where its replication and forwarded writes come from and go.
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Errors, type ServiceBroker, type ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../helpers/env";
import { Client, item } from "../helpers/http";
import { converged, startTestRegions, type TestRegion, type TestRegions } from "../helpers/regions";

const ROOT = join(__dirname, "..", "..");
const DASHBOARD = join(ROOT, "monitoring", "grafana", "region-dashboard.json");
const ALERTS = join(ROOT, "monitoring", "prometheus", "alerts.yml");

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition

interface Sample {
	name: string;
	labels: Record<string, string>;
	value: number;
}

interface Scrape {
	samples: Sample[];
	types: Map<string, string>;
	names: Set<string>;
	/** Label names seen on each series name. */
	labels: Map<string, Set<string>>;
}

function parseExposition(text: string): Scrape {
	const samples: Sample[] = [];
	const types = new Map<string, string>();
	for (const line of text.split("\n")) {
		if (!line.trim()) continue;
		if (line.startsWith("#")) {
			const m = /^# TYPE (\S+) (\S+)/.exec(line);
			if (m) types.set(m[1], m[2]);
			continue;
		}
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
		if (!m) throw new Error(`Unparsable exposition line: ${line}`);
		const labels: Record<string, string> = {};
		for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
		samples.push({ name: m[1], labels, value: Number(m[3]) });
	}
	const labels = new Map<string, Set<string>>();
	for (const s of samples) {
		const set = labels.get(s.name) ?? new Set<string>();
		for (const k of Object.keys(s.labels)) set.add(k);
		labels.set(s.name, set);
	}
	return { samples, types, names: new Set(samples.map(s => s.name)), labels };
}

/** Sum of the samples of a series name whose labels include `match`; undefined when there is none. */
function value(scrape: Scrape, name: string, match: Record<string, string> = {}): number | undefined {
	const hits = scrape.samples.filter(s => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
	return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
}

// ---------------------------------------------------------------------------------------------
// A YAML subset: block maps, block sequences, quoted and plain scalars, `|`/`|-` block scalars,
// comments. No YAML library is installed; alerts.yml is written in this subset on purpose.

type Yaml = string | Yaml[] | { [key: string]: Yaml };

function parseYamlSubset(text: string): Yaml {
	const lines = text.split("\n").map(l => l.replace(/\s+$/, ""));
	if (lines.some(l => l.includes("\t"))) throw new Error("tabs are outside the YAML subset");
	let i = 0;
	const indentOf = (l: string) => l.length - l.trimStart().length;
	const significant = (l: string) => l.trim() !== "" && !l.trimStart().startsWith("#");
	const skip = () => {
		while (i < lines.length && !significant(lines[i])) i++;
	};
	const scalar = (raw: string, where: number): string => {
		const s = raw.trim();
		if (s.startsWith('"')) {
			const m = /^("(?:[^"\\]|\\.)*")\s*(#.*)?$/.exec(s);
			if (!m) throw new Error(`line ${where + 1}: bad double-quoted string`);
			return JSON.parse(m[1]);
		}
		if (s.startsWith("'")) {
			const m = /^'((?:[^']|'')*)'\s*(#.*)?$/.exec(s);
			if (!m) throw new Error(`line ${where + 1}: bad single-quoted string`);
			return m[1].replace(/''/g, "'");
		}
		if (/^[[{&*!|>%@`]/.test(s)) throw new Error(`line ${where + 1}: "${s}" is outside the YAML subset`);
		const plain = s.replace(/\s+#.*$/, "");
		if (/:\s/.test(plain) || plain.endsWith(":")) throw new Error(`line ${where + 1}: a plain scalar with ": " must be quoted`);
		return plain;
	};
	const block = (parentIndent: number, header: string, where: number): string => {
		if (!/^\|-?$/.test(header)) throw new Error(`line ${where + 1}: only | and |- block scalars are in the subset`);
		const body: string[] = [];
		let indent = -1;
		while (i < lines.length && (lines[i].trim() === "" || indentOf(lines[i]) > parentIndent)) {
			if (lines[i].trim() !== "" && indent < 0) indent = indentOf(lines[i]);
			body.push(lines[i]);
			i++;
		}
		while (body.length && body[body.length - 1].trim() === "") body.pop();
		const text = body.map(l => l.slice(indent)).join("\n");
		return header === "|" ? `${text}\n` : text;
	};
	const node = (indent: number): Yaml => {
		skip();
		if (i >= lines.length) throw new Error("unexpected end of document");
		const at = indentOf(lines[i]);
		if (at < indent) throw new Error(`line ${i + 1}: expected a nested block`);
		return lines[i].trimStart().startsWith("- ") ? seq(at) : map(at);
	};
	const map = (indent: number): Yaml => {
		const out: Record<string, Yaml> = {};
		for (skip(); i < lines.length; skip()) {
			const at = indentOf(lines[i]);
			if (at < indent) break;
			if (at > indent) throw new Error(`line ${i + 1}: unexpected indentation`);
			const content = lines[i].trimStart();
			if (content.startsWith("- ")) break;
			const m = /^([A-Za-z_][\w.-]*):(?:\s+(.*))?$/.exec(content);
			if (!m) throw new Error(`line ${i + 1}: expected "key: value", got "${content}"`);
			if (m[1] in out) throw new Error(`line ${i + 1}: duplicate key ${m[1]}`);
			const where = i++;
			const rest = m[2]?.replace(/^#.*$/, "").trim() ?? "";
			if (rest === "") {
				skip();
				const next = i < lines.length ? indentOf(lines[i]) : -1;
				if (next > indent) out[m[1]] = node(next);
				else if (next === indent && lines[i].trimStart().startsWith("- ")) out[m[1]] = seq(indent);
				else throw new Error(`line ${where + 1}: key ${m[1]} has no value`);
			} else if (rest.startsWith("|")) out[m[1]] = block(indent, rest, where);
			else out[m[1]] = scalar(rest, where);
		}
		return out;
	};
	const seq = (indent: number): Yaml => {
		const out: Yaml[] = [];
		for (skip(); i < lines.length; skip()) {
			const at = indentOf(lines[i]);
			if (at < indent || !lines[i].trimStart().startsWith("- ")) {
				if (at > indent) throw new Error(`line ${i + 1}: unexpected indentation`);
				break;
			}
			const content = lines[i].trimStart().slice(2);
			if (/^[A-Za-z_][\w.-]*:(\s|$)/.test(content)) {
				// "- key: value" opens a map whose keys sit two columns right of the dash
				lines[i] = " ".repeat(at + 2) + content;
				out.push(map(at + 2));
			} else {
				out.push(scalar(content, i));
				i++;
			}
		}
		return out;
	};
	const doc = node(0);
	skip();
	if (i < lines.length) throw new Error(`line ${i + 1}: unexpected content after the document`);
	return doc;
}

// ---------------------------------------------------------------------------------------------
// PromQL: which metric names and label names an expression uses

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"]);
const METRIC_PREFIX = /^(moleculer_|wallet_|process_|os_)/;
/** Labels Prometheus itself puts on every scraped series, and `region`, which the scrape config adds to `up`. */
const TARGET_LABELS = ["job", "instance"];
const UP_LABELS = [...TARGET_LABELS, "region"];

interface ExprRefs {
	metrics: string[];
	/** Each selector: the metric it selects (if named) and the label names it matches on. */
	selectors: { metric?: string; labels: string[]; raw: string }[];
	/** Label names of by/without/on/ignoring/group_x clauses. */
	grouping: string[];
}

function promqlRefs(expr: string): ExprRefs {
	const selectors: ExprRefs["selectors"] = [];
	const grouping: string[] = [];
	let s = expr
		// string literals first: label values may hold anything ("4..", "$region")
		.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
		.replace(/#.*$/gm, " ")
		// ranges and subqueries: [5m], [$__rate_interval], [1h:1m]
		.replace(/\[[^\]]*\]/g, " ");
	s = s.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)?(\s*)\{([^}]*)\}/g, (_all, metric: string | undefined, _sp, body: string) => {
		const labels = [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(m => m[1]);
		if (metric && (KEYWORDS.has(metric) || /^\d/.test(metric))) throw new Error(`Unexpected selector after ${metric} in ${expr}`);
		selectors.push({ metric, labels, raw: _all });
		return metric ? ` ${metric} ` : " ";
	});
	s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, kw: string, list: string) => {
		grouping.push(...list.split(",").map(x => x.trim()).filter(Boolean));
		void kw;
		return " "; // "sum by (x) (...)" becomes "sum (...)": an aggregation, like a function call
	});
	s = s
		.replace(/\$\{[^}]*\}|\$\w+/g, " ") // Grafana variables outside strings (none expected, but harmless)
		.replace(/\b\d+(?:ms|s|m|h|d|w|y)\b/g, " ") // durations (offset 5m)
		.replace(/\b0x[0-9a-fA-F]+\b|(?:\b\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\b/g, " "); // numbers
	const metrics: string[] = [];
	for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
		const after = s.slice(m.index! + m[0].length).trimStart();
		if (after.startsWith("(")) continue; // a function or an aggregation
		if (KEYWORDS.has(m[0].toLowerCase())) continue;
		metrics.push(m[0]);
	}
	return { metrics: [...new Set(metrics)], selectors, grouping: [...new Set(grouping)] };
}

/** `label_values(selector, label)` of a Grafana template variable: the selector's refs and the label. */
function templateRefs(query: string): { refs: ExprRefs; label?: string } {
	const m = /^\s*label_values\(\s*(.*?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(query);
	if (m) return { refs: promqlRefs(m[1]), label: m[2] };
	const q = /^\s*query_result\((.*)\)\s*$/.exec(query);
	return { refs: promqlRefs(q ? q[1] : query) };
}

/** `{{label}}` (Grafana legends) and `$labels.label` (alert templates). */
const legendLabels = (s: string) => [...s.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map(m => m[1]);
const templateLabels = (s: string) => [...s.matchAll(/\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)].map(m => m[1]);

// ---------------------------------------------------------------------------------------------
// The region

let regions: TestRegions;
/** The region whose node is scraped; `other` replicates with it. */
let region: TestRegion, other: TestRegion;
let broker: ServiceBroker;
let metricsUrl: string;
let shopper: Client, buyer: Client;

async function scrape(): Promise<Scrape> {
	const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
	expect(res.status).toBe(200);
	expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
	return parseExposition(await res.text());
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

beforeAll(async () => {
	regions = await startTestRegions({
		count: 2,
		env: {
			REDIS_URL,
			// a claim's hold runs out quickly, so the sweeper releases one
			CLAIM_HOLD_SEC: "2",
			SWEEP_INTERVAL_MS: "100",
			// one dedicated user goes over it; the others stay well below
			RATE_LIMIT: "40",
			// the probe action below opens its breaker after 3 failures, and it half-opens quickly
			BREAKER_MIN_REQUESTS: "3",
			BREAKER_HALF_OPEN_MS: "200",
		},
	});
	[region, other] = regions.regions;
	broker = region.broker;
	const reporter = (broker.metrics as any).reporter?.[0];
	expect(reporter?.server, "the Prometheus reporter is configured").toBeDefined();
	if (!reporter.server.listening) await new Promise(r => reporter.server.once("listening", r));
	metricsUrl = `http://127.0.0.1:${(reporter.server.address() as AddressInfo).port}/metrics`;
	shopper = await Client.as(region.apiUrl, "mon-shopper");
	buyer = await Client.as(region.apiUrl, "mon-buyer");
});

afterAll(async () => {
	await regions?.stop();
});

async function supply(amount = "10") {
	const r = await shopper.post("/api/v1/supplies", { asset: "ETH", amount });
	expect(r.status, JSON.stringify(r.body)).toBe(201);
	return r.body;
}

async function order(price = "0.1") {
	const r = await buyer.post("/api/v1/orders", { asset: "ETH", items: [item(price)] });
	expect(r.status, JSON.stringify(r.body)).toBe(201);
	return r.body;
}

const claim = (orderId: string, supplyId: string, key: string) =>
	shopper.post("/api/v1/claims", { orderId, supplyId }, { "idempotency-key": key });

/** Runs f once; later calls get the same promise. The traffic below is driven by the test that checks
 * it and again (a no-op then) by the name check, so each test also runs alone (vitest -t). */
const once = <T>(f: () => Promise<T>) => {
	let p: Promise<T> | undefined;
	return () => (p ??= f());
};

/** A won claim, then a second claim of the same order: a 409. */
const wonAndLostClaims = once(async () => {
	const s = await supply();
	const o = await order();
	const won = await claim(o.id, s.id, "mon-won-1");
	expect(won.status, JSON.stringify(won.body)).toBe(201);
	const lost = await claim(o.id, s.id, "mon-lost-1");
	return { won, lost };
});

/** A claim whose 2 s hold runs out: the sweeper releases it. */
const expiredClaim = once(async () => {
	const s = await supply("1");
	const o = await order("0.3");
	const c = await claim(o.id, s.id, "mon-expire-1");
	expect(c.status, JSON.stringify(c.body)).toBe(201);
	await expect
		.poll(async () => (await shopper.get(`/api/v1/claims/${c.body.id}`)).body.status, { timeout: 15_000, interval: 250 })
		.toBe("released");
});

/** One user over RATE_LIMIT: returns how many of its requests were refused (it stops at the first). */
const rateLimited = once(async () => {
	const flooder = await Client.as(region.apiUrl, "mon-flooder");
	let limited = 0;
	for (let n = 0; n < 45 && limited === 0; n++) if ((await flooder.get("/api/v1/supplies")).status === 429) limited++;
	return limited;
});

/** A probe service on the node: a failing, retried action whose breaker opens, and one that times out. */
const probeFaults = once(async () => {
	// `timeout` of an action is read by the Timeout middleware but missing from ActionSchema's type
	const probe = {
		name: "monprobe",
		actions: {
			fail: {
				retryPolicy: { enabled: true, retries: 1, delay: 5, maxDelay: 5, factor: 1 },
				handler() {
					// What a breaker counts: a dependency that is away (src/lib/breaker.ts), not a caller's bad input.
					throw new Errors.MoleculerRetryableError("probe: its database is away", 503, "DATABASE_UNAVAILABLE");
				},
			},
			slow: {
				timeout: 20,
				retryPolicy: { enabled: false },
				async handler() {
					await sleep(200);
					return "late";
				},
			},
		},
	};
	broker.createService(probe as ServiceSchema);
	await broker.waitForServices(["monprobe"], 10_000);
	for (let n = 0; n < 4; n++) await broker.call("monprobe.fail").catch(() => undefined);
	return broker.call("monprobe.slow").then(
		() => undefined,
		(err: Error) => err,
	);
});

/** A supply written in the other region (published there, applied here with its lag), then paused through
 * this region: this region does not write the other's home region, so the pause is forwarded there. */
const forwardedWrite = once(async () => {
	const there = await Client.as(other.apiUrl, "mon-remote");
	const here = await Client.as(region.apiUrl, "mon-remote");
	const s = await there.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
	expect(s.status, JSON.stringify(s.body)).toBe(201);
	await converged(regions);
	const paused = await here.post(`/api/v1/supplies/${s.body.id}/pause`);
	expect(paused.status, JSON.stringify(paused.body)).toBe(200);
	await converged(regions);
	return paused;
});

/** Both regions' relays publish a batch and then cannot commit it (a trigger refuses to mark the rows
 * published, as when a relay dies between its publish and its commit): each such round is a relay error, and
 * the batch goes out again, which the receiving region skips as repeated. Both regions at once, so this
 * region counts relay errors of its own and skips what the other sends twice. */
const relayFaults = once(async () => {
	for (const r of regions.regions)
		await r.db.pool.query(
			`CREATE FUNCTION mon_refuse_mark() RETURNS trigger LANGUAGE plpgsql AS $$
			 BEGIN RAISE EXCEPTION 'monitoring test: the outbox rows cannot be marked published'; END $$;
			 CREATE TRIGGER mon_refuse_mark BEFORE UPDATE OF published_at ON outbox FOR EACH ROW EXECUTE FUNCTION mon_refuse_mark()`,
		);
	try {
		for (const r of regions.regions) {
			const writer = await Client.as(r.apiUrl, "mon-relay");
			const s = await writer.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
			expect(s.status, JSON.stringify(s.body)).toBe(201);
		}
		await expect
			.poll(
				async () => {
					const s = await scrape();
					const errors = value(s, "wallet_replication_relay_errors_total") ?? 0;
					const skipped = value(s, "wallet_replication_applied_total", { source: other.name, result: "skipped" }) ?? 0;
					return errors > 0 && skipped > 0;
				},
				{ timeout: 15_000, interval: 100 },
			)
			.toBe(true);
	} finally {
		for (const r of regions.regions)
			await r.db.pool.query(`DROP TRIGGER IF EXISTS mon_refuse_mark ON outbox; DROP FUNCTION IF EXISTS mon_refuse_mark()`);
	}
	// the relays back off (2 s at most) and then publish the rows for good
	await converged(regions);
});

/** This region's applier fails while its apply function is away (renamed): each delivery of the other
 * region's write is an apply error of that source, redelivered until it applies, once the function is back. */
const applyFaults = once(async () => {
	const applied0 = value(await scrape(), "wallet_replication_applied_total", { source: other.name, result: "applied" }) ?? 0;
	await region.db.pool.query(`ALTER FUNCTION apply_events(jsonb) RENAME TO mon_apply_events_away`);
	try {
		const writer = await Client.as(other.apiUrl, "mon-apply");
		const s = await writer.post("/api/v1/supplies", { asset: "ETH", amount: "1" });
		expect(s.status, JSON.stringify(s.body)).toBe(201);
		await expect
			.poll(async () => value(await scrape(), "wallet_replication_apply_errors_total", { source: other.name }) ?? 0, { timeout: 15_000, interval: 100 })
			.toBeGreaterThan(0);
	} finally {
		await region.db.pool.query(`ALTER FUNCTION mon_apply_events_away(jsonb) RENAME TO apply_events`);
	}
	await converged(regions);
	return { applied0 };
});

describe("the Prometheus endpoint", () => {
	it("answers with the Moleculer and domain metrics, labelled with region, namespace and nodeID", async () => {
		const s = await scrape();
		for (const name of ["moleculer_broker_started", "process_memory_rss", "wallet_db_pool_connections"]) expect(s.names).toContain(name);
		const started = s.samples.find(x => x.name === "moleculer_broker_started")!;
		expect(started.labels).toMatchObject({ region: region.cfg.region, namespace: regions.namespace, nodeID: broker.nodeID });
		for (const state of ["total", "idle", "waiting"]) expect(value(s, "wallet_db_pool_connections", { state })).toBeGreaterThanOrEqual(0);
	});
});

describe("domain series move when the domain acts", () => {
	it("a won claim counts and is timed; a lost one is a conflict and a 409 by code", async () => {
		const before = await scrape();
		const won0 = value(before, "wallet_claims_total", { outcome: "won" }) ?? 0;
		const timed0 = value(before, "wallet_claim_duration_bucket", { outcome: "won", le: "+Inf" }) ?? 0;
		const lost0 = value(before, "wallet_claims_total", { outcome: "conflict" }) ?? 0;
		const conflicts0 = value(before, "wallet_conflicts_total", { code: "ORDER_NOT_OPEN" }) ?? 0;

		const { lost } = await wonAndLostClaims();
		expect(lost.status, JSON.stringify(lost.body)).toBe(409);
		expect(lost.body.error.code).toBe("ORDER_NOT_OPEN");
		const after = await scrape();
		expect(value(after, "wallet_claims_total", { outcome: "won" })).toBe(won0 + 1);
		expect(value(after, "wallet_claim_duration_bucket", { outcome: "won", le: "+Inf" })).toBe(timed0 + 1);
		// buckets are cumulative: le="2500" holds every claim decided within 2.5 s, i.e. this one
		expect(value(after, "wallet_claim_duration_bucket", { outcome: "won", le: "2500" })).toBe(timed0 + 1);
		expect(value(after, "wallet_claims_total", { outcome: "conflict" })).toBe(lost0 + 1);
		expect(value(after, "wallet_claim_duration_bucket", { outcome: "conflict", le: "+Inf" })).toBeGreaterThanOrEqual(1);
		expect(value(after, "wallet_conflicts_total", { code: "ORDER_NOT_OPEN" })).toBe(conflicts0 + 1);
		// the 409 is a client error: the error ratio of the dashboard and alerts leaves errorCode 4xx out
		const errors = after.samples.filter(x => x.name === "moleculer_request_error_total" && x.labels.action === "claiming.claim");
		expect(errors.map(x => x.labels.errorCode)).toContain("409");
		expect(value(after, "moleculer_request_total", { action: "claiming.claim" })).toBeGreaterThanOrEqual(2);
		expect(value(after, "moleculer_request_time_bucket", { action: "claiming.claim", le: "+Inf" })).toBeGreaterThanOrEqual(2);
	});

	it("the orders and supplies gauges follow the database (sampled every 5 s)", async () => {
		const s = await supply("3");
		const o = await order("0.2");
		expect((await claim(o.id, s.id, "mon-complete-1")).status).toBe(201);
		expect((await buyer.post(`/api/v1/orders/${o.id}/complete`)).body.status).toBe("completed");
		const { rows } = await region.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE status = 'completed'");
		const { rows: active } = await region.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM supplies WHERE status = 'active'");
		expect(rows[0].n).toBeGreaterThanOrEqual(1);
		await expect
			.poll(async () => value(await scrape(), "wallet_orders", { status: "completed" }), { timeout: 15_000, interval: 500 })
			.toBe(rows[0].n);
		const s2 = await scrape();
		expect(value(s2, "wallet_supplies", { status: "active" })).toBe(active[0].n);
		for (const status of ["open", "claimed", "completed", "cancelled", "expired"]) expect(value(s2, "wallet_orders", { status })).toBeGreaterThanOrEqual(0);
		expect(value(s2, "wallet_outbox_backlog")).toBeGreaterThanOrEqual(0);
	});

	it("the sweeper counts the claims whose hold ran out", async () => {
		const before = value(await scrape(), "wallet_sweeper_releases_total", { kind: "claim" }) ?? 0;
		await expiredClaim();
		expect(value(await scrape(), "wallet_sweeper_releases_total", { kind: "claim" })).toBeGreaterThanOrEqual(before + 1);
	});

	it("rate-limit rejections count by user", async () => {
		const before = value(await scrape(), "wallet_ratelimit_rejections_total", { by: "user" }) ?? 0;
		expect(await rateLimited()).toBe(1);
		expect(value(await scrape(), "wallet_ratelimit_rejections_total", { by: "user" })).toBe(before + 1);
	});

	it("breakers, retries and timeouts of a failing action show up (a probe service on the node)", async () => {
		const timeout = await probeFaults();
		expect(timeout?.message).toMatch(/timed out/i);
		const s = await scrape();
		expect(value(s, "moleculer_circuit_breaker_opened_total", { action: "monprobe.fail" })).toBeGreaterThanOrEqual(1);
		expect(value(s, "moleculer_request_retry_attempts_total", { action: "monprobe.fail" })).toBeGreaterThanOrEqual(1);
		expect(value(s, "moleculer_request_timeout_total", { action: "monprobe.slow" })).toBe(1);
		const errors = s.samples.filter(x => x.name === "moleculer_request_error_total" && x.labels.action === "monprobe.fail");
		expect(errors.map(x => x.labels.errorCode)).toContain("503");
		// calls refused by the open breaker carry 404 SERVICE_NOT_AVAILABLE (the gateway answers 503):
		// the server-error ratio counts that errorType although its code is 4xx
		expect(errors.map(x => `${x.labels.errorCode} ${x.labels.errorType}`)).toContain("404 SERVICE_NOT_AVAILABLE");
		const opened = s.samples.find(x => x.name === "moleculer_circuit_breaker_opened_active" && x.labels.action === "monprobe.fail");
		expect(opened?.labels).toMatchObject({ service: "monprobe", affectedNodeID: broker.nodeID });
		// after BREAKER_HALF_OPEN_MS the breaker half-opens: opened.active drops to 0, half_opened.active is 1
		await expect
			.poll(async () => value(await scrape(), "moleculer_circuit_breaker_half_opened_active", { action: "monprobe.fail" }), { timeout: 5_000, interval: 100 })
			.toBe(1);
		expect(value(await scrape(), "moleculer_circuit_breaker_opened_active", { action: "monprobe.fail" })).toBe(0);
	});
});

describe("replication series move when the regions replicate", () => {
	const APPLIED = "wallet_replication_applied_total";

	it("this region's writes are published, the other's applied here with their lag, and the backlog drains", async () => {
		const before = await scrape();
		const published0 = value(before, "wallet_replication_published_total") ?? 0;
		const applied0 = value(before, APPLIED, { source: other.name, result: "applied" }) ?? 0;
		const lagged0 = value(before, "wallet_replication_lag_bucket", { source: other.name, le: "+Inf" }) ?? 0;

		await supply("2");
		const there = await Client.as(other.apiUrl, "mon-remote-2");
		expect((await there.post("/api/v1/supplies", { asset: "ETH", amount: "2" })).status).toBe(201);
		await converged(regions);

		// the counters move right after the commits converged() saw: poll
		await expect.poll(async () => value(await scrape(), "wallet_replication_published_total") ?? 0).toBeGreaterThan(published0);
		await expect.poll(async () => value(await scrape(), APPLIED, { source: other.name, result: "applied" }) ?? 0).toBeGreaterThan(applied0);
		const s = await scrape();
		expect(s.types.get("wallet_replication_lag")).toBe("histogram");
		// every delivered event is timed, applied or not; within the top bucket in a test
		const lagged = value(s, "wallet_replication_lag_bucket", { source: other.name, le: "+Inf" })!;
		expect(lagged).toBeGreaterThan(lagged0);
		expect(value(s, "wallet_replication_lag_bucket", { source: other.name, le: "10000" })).toBe(lagged);
		const lag = s.samples.find(x => x.name === "wallet_replication_lag_bucket" && x.labels.source === other.name);
		expect(lag?.labels).toMatchObject({ region: region.name, namespace: regions.namespace, nodeID: broker.nodeID });
		// this region never applies its own events
		expect(value(s, APPLIED, { source: region.name })).toBeUndefined();
		// the relay drains the outbox: the gauge (sampled every 5 s) comes back to 0
		await expect.poll(async () => value(await scrape(), "wallet_outbox_backlog"), { timeout: 15_000, interval: 500 }).toBe(0);
	});

	it("a write through this region of an entity homed in the other is forwarded, counted by target", async () => {
		const before = value(await scrape(), "wallet_forwarded_total", { target: other.name }) ?? 0;
		const paused = await forwardedWrite();
		expect(paused.headers.get("x-region")).toBe(other.name);
		const s = await scrape();
		expect(value(s, "wallet_forwarded_total", { target: other.name })).toBe(before + 1);
		expect(value(s, "wallet_forwarded_total", { target: region.name })).toBeUndefined();
	});

	it("a relay round that publishes but cannot commit is a relay error; the batch sent again is skipped as repeated", async () => {
		const before = await scrape();
		const errors0 = value(before, "wallet_replication_relay_errors_total") ?? 0;
		const skipped0 = value(before, APPLIED, { source: other.name, result: "skipped" }) ?? 0;
		await relayFaults();
		const after = await scrape();
		expect(value(after, "wallet_replication_relay_errors_total")).toBeGreaterThan(errors0);
		expect(value(after, APPLIED, { source: other.name, result: "skipped" })).toBeGreaterThan(skipped0);
		// the relay recovered: nothing is left unpublished
		await expect.poll(async () => value(await scrape(), "wallet_outbox_backlog"), { timeout: 15_000, interval: 500 }).toBe(0);
	});

	it("an apply that fails is an apply error of its source, redelivered until it applies", async () => {
		const errors0 = value(await scrape(), "wallet_replication_apply_errors_total", { source: other.name }) ?? 0;
		const { applied0 } = await applyFaults();
		await expect.poll(async () => value(await scrape(), APPLIED, { source: other.name, result: "applied" }) ?? 0).toBeGreaterThan(applied0);
		const s = await scrape();
		expect(value(s, "wallet_replication_apply_errors_total", { source: other.name })).toBeGreaterThan(errors0);
	});
});

describe("the dashboard and the alert rules", () => {
	const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8"));
	const rules = parseYamlSubset(readFileSync(ALERTS, "utf8")) as any;

	it("the dashboard is an importable Grafana dashboard with datasource, region, namespace and nodeID variables", () => {
		expect(typeof dashboard.schemaVersion).toBe("number");
		expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
		expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
		expect(dashboard.title).toBeTruthy();
		expect(dashboard.id).toBeNull();
		const vars = new Map<string, any>(dashboard.templating.list.map((v: any) => [v.name, v]));
		expect(vars.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
		for (const name of ["region", "namespace", "nodeID"]) {
			const v = vars.get(name);
			expect(v, name).toMatchObject({ type: "query", datasource: { type: "prometheus", uid: "${datasource}" } });
			expect(templateRefs(v.query.query ?? v.query).label).toBe(name);
		}
		const panels = dashboard.panels as any[];
		const ids = panels.map(p => p.id);
		expect(new Set(ids).size).toBe(ids.length);
		for (const p of panels) {
			expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
			if (p.type === "row") continue;
			expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
			expect(p.targets.length, p.title).toBeGreaterThan(0);
			for (const t of p.targets) expect(t.expr, p.title).toBeTruthy();
		}
		// the brief's panels are all there
		const exprs = panels.flatMap(p => p.targets ?? []).map((t: any) => t.expr as string).join("\n");
		for (const needed of [
			"moleculer_request_total",
			"moleculer_request_error_total",
			"histogram_quantile(0.5, sum by (action, le) (rate(moleculer_request_time_bucket",
			"histogram_quantile(0.95, sum by (action, le) (rate(moleculer_request_time_bucket",
			"histogram_quantile(0.99, sum by (action, le) (rate(moleculer_request_time_bucket",
			"wallet_claims_total",
			"histogram_quantile(0.99, sum by (le) (rate(wallet_claim_duration_bucket",
			"wallet_orders",
			"wallet_supplies",
			"moleculer_circuit_breaker_opened_active",
			"moleculer_request_bulkhead_queue_size",
			"moleculer_request_bulkhead_inflight",
			"moleculer_cacher_found_total",
			"moleculer_cacher_get_total",
			"wallet_db_pool_connections",
			"wallet_ratelimit_rejections_total",
			"wallet_outbox_backlog",
			"wallet_conflicts_total",
			// the Replication row
			"histogram_quantile(0.5, sum by (region, source, le) (rate(wallet_replication_lag_bucket",
			"histogram_quantile(0.99, sum by (region, source, le) (rate(wallet_replication_lag_bucket",
			"wallet_replication_published_total",
			'wallet_replication_applied_total{region=~"$region", namespace=~"$namespace", nodeID=~"$nodeID", result="applied"}',
			'wallet_replication_applied_total{region=~"$region", namespace=~"$namespace", nodeID=~"$nodeID", result="skipped"}',
			"wallet_replication_apply_errors_total",
			"wallet_replication_relay_errors_total",
			"wallet_forwarded_total",
		])
			expect(exprs).toContain(needed);
		// the replication panels (and a backlog panel) sit in the Replication row: the panels below a row up to the next
		const rows = panels.filter(p => p.type === "row").sort((a, b) => a.gridPos.y - b.gridPos.y);
		const rowOf = (p: any) => rows.filter(r => r.gridPos.y <= p.gridPos.y).at(-1)?.title;
		const uses = (p: any, re: RegExp) => (p.targets ?? []).some((t: any) => re.test(t.expr));
		const replication = panels.filter(p => uses(p, /wallet_replication_|wallet_forwarded_/));
		expect(replication.length).toBeGreaterThanOrEqual(5);
		for (const p of replication) expect(rowOf(p), p.title).toBe("Replication");
		expect(panels.filter(p => rowOf(p) === "Replication" && uses(p, /wallet_outbox_backlog/)).length).toBe(1);
	});

	it("alerts.yml is a valid rules file: groups of alerts with severity, summary and description", () => {
		expect(Object.keys(rules)).toEqual(["groups"]);
		expect(Array.isArray(rules.groups)).toBe(true);
		const names = new Set<string>();
		for (const g of rules.groups) {
			expect(Object.keys(g).sort()).toEqual(["name", "rules"]);
			expect(g.name).toMatch(/^[\w-]+$/);
			expect(g.rules.length).toBeGreaterThan(0);
			for (const r of g.rules) {
				for (const k of Object.keys(r)) expect(["alert", "expr", "for", "labels", "annotations"]).toContain(k);
				expect(r.alert).toMatch(/^[A-Z][A-Za-z0-9]+$/);
				expect(names.has(r.alert), `duplicate alert ${r.alert}`).toBe(false);
				names.add(r.alert);
				expect(typeof r.expr).toBe("string");
				expect(r.expr.trim().length).toBeGreaterThan(0);
				expect(r.for).toMatch(/^\d+[smh]$/);
				expect(["critical", "warning", "info"]).toContain(r.labels.severity);
				expect(r.annotations.summary, r.alert).toBeTruthy();
				expect(r.annotations.description, r.alert).toBeTruthy();
			}
		}
		// the brief's alerts
		const all = rules.groups.flatMap((g: any) => g.rules).map((r: any) => r.expr).join("\n");
		for (const needed of [
			'moleculer_request_error_total{job="wallet-backend", errorCode!~"4.."}',
			'errorType=~"SERVICE_NOT_FOUND|SERVICE_NOT_AVAILABLE|QUEUE_FULL"',
			"moleculer_circuit_breaker_opened_active",
			"wallet_outbox_backlog",
			'up{job="wallet-backend"} == 0',
			"absent(",
			"wallet_claim_duration_bucket",
			"moleculer_request_bulkhead_queue_size",
			'wallet_db_pool_connections{job="wallet-backend", state="waiting"}',
			'histogram_quantile(0.99, sum by (region, namespace, source, le) (rate(wallet_replication_lag_bucket{job="wallet-backend"}[5m]))) > 250',
			'histogram_quantile(0.99, sum by (region, namespace, source, le) (rate(wallet_replication_lag_bucket{job="wallet-backend"}[5m]))) > 5000',
			'wallet_replication_apply_errors_total{job="wallet-backend"}',
			'wallet_replication_relay_errors_total{job="wallet-backend"}',
			'max by (region, namespace) (wallet_outbox_backlog{job="wallet-backend"}) > 10000',
		])
			expect(all).toContain(needed);
		// the replication alerts: how long each condition must hold, and how loud
		const byName = new Map<string, any>(rules.groups.flatMap((g: any) => g.rules).map((r: any) => [r.alert, r]));
		for (const [name, hold, severity] of [
			["WalletReplicationLagHigh", "5m", "warning"],
			["WalletReplicationLagCritical", "2m", "critical"],
			["WalletReplicationApplyErrors", "5m", "critical"],
			["WalletReplicationRelayErrors", "5m", "critical"],
			["WalletOutboxBacklogCritical", "10m", "critical"],
		])
			expect({ name, for: byName.get(name)?.for, severity: byName.get(name)?.labels.severity }).toEqual({ name, for: hold, severity });
		// the relay drains the outbox now: no text may still say nothing is published
		expect(JSON.stringify(rules)).not.toMatch(/relay ships|no outbox relay|nothing is published and/i);
	});

	it("the PromQL extractor finds metrics and nothing else", () => {
		const r = promqlRefs(
			'histogram_quantile(0.99, sum by (action, le) (rate(moleculer_request_time_bucket{region=~"$region", errorCode!~"4.."}[$__rate_interval]))) > 1e2 and on (action) up offset 5m or vector(0)',
		);
		expect(r.metrics.sort()).toEqual(["moleculer_request_time_bucket", "up"]);
		expect(r.selectors).toMatchObject([{ metric: "moleculer_request_time_bucket", labels: ["region", "errorCode"] }]);
		expect(r.grouping.sort()).toEqual(["action", "le"]);
		expect(parseYamlSubset('a:\n  - b: "x # y"\n    c: |\n      one\n      two\n  - d\n')).toEqual({ a: [{ b: "x # y", c: "one\ntwo\n" }, "d"] });
	});

	it("every metric and label they query is exported by the region", async () => {
		// series that appear on their first event: claims, 409s, sweeper releases, 429s, breakers,
		// retries, timeouts, replication (events published and applied with their lag, skipped repeats,
		// relay and apply errors) and forwarded writes (no-ops when the tests above drove them already).
		// The breaker half-opens BREAKER_HALF_OPEN_MS after it opened.
		await wonAndLostClaims();
		await expiredClaim();
		await rateLimited();
		await probeFaults();
		await forwardedWrite();
		await relayFaults();
		await applyFaults();
		await expect.poll(async () => (await scrape()).names.has("moleculer_circuit_breaker_half_opened_active"), { timeout: 5_000 }).toBe(true);
		const s = await scrape();

		type Use = { where: string; text: string; refs: ExprRefs; legend?: string[] };
		const uses: Use[] = [];
		const walk = (panels: any[]) => {
			for (const p of panels) {
				if (p.panels) walk(p.panels);
				for (const t of p.targets ?? [])
					uses.push({ where: `dashboard panel "${p.title}" ${t.refId}`, text: t.expr, refs: promqlRefs(t.expr), legend: legendLabels(t.legendFormat ?? "") });
			}
		};
		walk(dashboard.panels);
		for (const v of dashboard.templating.list.filter((x: any) => x.type === "query")) {
			const q = v.query.query ?? v.query;
			const { refs, label } = templateRefs(q);
			uses.push({ where: `dashboard variable ${v.name}`, text: q, refs: { ...refs, grouping: label ? [label] : [] } });
		}
		for (const g of rules.groups)
			for (const r of g.rules)
				uses.push({
					where: `alert ${r.alert}`,
					text: r.expr,
					refs: promqlRefs(r.expr),
					legend: [...templateLabels(r.annotations.summary), ...templateLabels(r.annotations.description)],
				});

		const problems: string[] = [];
		const found = new Set<string>();
		const labelsOf = (name: string) => (name === "up" ? new Set(UP_LABELS) : new Set([...(s.labels.get(name) ?? []), ...TARGET_LABELS]));
		for (const u of uses) {
			for (const m of u.refs.metrics) {
				if (m !== "up" && !METRIC_PREFIX.test(m)) {
					problems.push(`${u.where}: "${m}" is neither a wallet/moleculer/process metric nor up (extractor or expression bug) in: ${u.text}`);
					continue;
				}
				found.add(m);
				if (m === "up") continue; // made by Prometheus for each target
				if (!s.names.has(m)) {
					const histogram = s.types.get(m) === "histogram" ? ` (a histogram: query ${m}_bucket)` : "";
					problems.push(`${u.where}: ${m} is not exported${histogram}`);
				}
			}
			for (const sel of u.refs.selectors) {
				if (!sel.metric) {
					problems.push(`${u.where}: a selector without a metric name: ${sel.raw}`);
					continue;
				}
				if (sel.metric !== "up" && !s.names.has(sel.metric)) continue; // reported above
				const known = labelsOf(sel.metric);
				for (const l of sel.labels) if (!known.has(l)) problems.push(`${u.where}: ${sel.metric} has no label "${l}"`);
			}
			// grouping labels, legends and alert templates may only name labels of the metrics used
			const available = new Set(u.refs.metrics.flatMap(m => [...labelsOf(m)]));
			if (u.refs.metrics.some(m => m !== "up" && !s.names.has(m))) continue; // reported above
			for (const l of u.refs.grouping) if (!available.has(l)) problems.push(`${u.where}: groups by "${l}", which none of its metrics has`);
			const out = u.refs.grouping.length ? new Set(u.refs.grouping) : available;
			for (const l of u.legend ?? []) if (!out.has(l)) problems.push(`${u.where}: names label "${l}", which its result does not have`);
		}
		// dashboard selectors honour the region/namespace/nodeID variables
		for (const u of uses.filter(x => x.where.startsWith("dashboard panel")))
			for (const sel of u.refs.selectors)
				for (const l of ["region", "namespace", "nodeID"]) if (!sel.labels.includes(l)) problems.push(`${u.where}: ${sel.metric} is not filtered by $${l}`);

		expect(problems).toEqual([]);
		// the extractor did find the metrics (an extractor that finds nothing would pass the loop above)
		expect(found.size).toBeGreaterThanOrEqual(20);
		for (const m of [
			"up",
			"wallet_claim_duration_bucket",
			"moleculer_request_time_bucket",
			"moleculer_circuit_breaker_opened_active",
			"wallet_outbox_backlog",
			"wallet_replication_lag_bucket",
			"wallet_replication_published_total",
			"wallet_replication_applied_total",
			"wallet_replication_apply_errors_total",
			"wallet_replication_relay_errors_total",
			"wallet_forwarded_total",
		])
			expect(found).toContain(m);
	});
});
