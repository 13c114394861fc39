// The operators' status page (GET /status) in headless Chromium (Debian's chromium, driven by playwright-core), on
// three in-process regions with failover: what an operator sees while a region goes down and comes back, and while
// the page's own data fails, all without reloading the page. Also the page and its data over plain HTTP, without a
// token.
import fs from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../helpers/http";
import { startTestRegions, type TestRegions } from "../helpers/regions";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Without the background-networking flags Chromium reaches for Google's services, and fails on a closed network.
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let browser: Browser;
let rs: TestRegions;
beforeAll(async () => {
	// Not a skip: CI installs chromium (.ci/run), so a missing one is a broken machine.
	if (!fs.existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
	browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
	rs = await startTestRegions({
		count: 3,
		env: { FAILOVER: "on", LINK: "memory", WATCH_INTERVAL_MS: "200", WATCH_TIMEOUT_MS: "150", LEASE_MS: "1000", LEASE_SAFETY_MS: "100", FAILBACK_AFTER_MS: "1000" },
	});
}, 90_000);
afterAll(async () => {
	await browser?.close();
	await rs?.stop();
});

/** A page on a region's /status, with what went wrong in it (uncaught errors, CSP refusals) and its navigations. */
async function open(apiUrl: string) {
	// A fixed locale, so that the clock on the page reads hh:mm:ss whatever the machine's.
	const page = await browser.newPage({ locale: "en-GB", timezoneId: "UTC" });
	page.setDefaultTimeout(5000); // every look at the page is bounded; the waits are the polls' timeouts
	const problems: string[] = [];
	let navigations = 0;
	page.on("pageerror", err => problems.push(`uncaught: ${err.message}`));
	page.on("console", msg => {
		if (msg.type() === "error" && /Content Security Policy/i.test(msg.text())) problems.push(msg.text());
	});
	page.on("framenavigated", frame => {
		if (frame === page.mainFrame()) navigations++;
	});
	const res = await page.goto(`${apiUrl}/status`, { timeout: 10_000 });
	expect(res?.status()).toBe(200);
	return { page, problems, navigations: () => navigations };
}

const cell = (page: Page, region: string, field: string) => page.locator(`tr[data-region="${region}"] td[data-field="${field}"]`);
const textOf = (page: Page, region: string, field: string) => cell(page, region, field).textContent({ timeout: 1000 });
const freshness = (page: Page) => page.locator("#freshness");
/** What a row shows, as an operator reads it. */
const row = async (page: Page, region: string) => ({
	health: await textOf(page, region, "health"),
	owner: await textOf(page, region, "owner"),
	epoch: await textOf(page, region, "epoch"),
});

describe("the status page", () => {
	it("and its data are served without a token; the page may run only its own inline script and style", async () => {
		const [a] = rs.regions;
		const anon = new Client(a.apiUrl);
		const page = await anon.get("/status");
		expect(page.status).toBe(200);
		expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
		expect(page.headers.get("cache-control")).toBe("no-store");
		const csp = page.headers.get("content-security-policy") ?? "";
		expect(csp).toContain("default-src 'none'");
		expect(csp).toMatch(/script-src 'sha256-[\w+/]+=*'(;|$)/);
		expect(csp).toMatch(/style-src 'sha256-[\w+/]+=*'(;|$)/);
		expect(csp).toContain("connect-src 'self'");
		expect(csp).not.toContain("unsafe");
		expect(page.body).toContain("<table");

		const data = await anon.get("/health/regions");
		expect(data.status).toBe(200);
		expect(data.body).toMatchObject({ servedBy: a.name, failover: true });
		expect(data.body.regions.map((r: { name: string }) => r.name)).toEqual(rs.regions.map(r => r.name));
		// The same view as the authenticated route's, which still wants its token.
		expect((await anon.get("/api/v1/regions")).status).toBe(401);
		const withToken = await (await Client.as(a.apiUrl, "ops")).get("/api/v1/regions");
		expect(Object.keys(withToken.body)).toEqual(Object.keys(data.body));

		expect((await anon.request("OPTIONS", "/status")).headers.get("allow")).toBe("GET, OPTIONS");
		expect((await anon.request("OPTIONS", "/health/regions")).headers.get("allow")).toBe("GET, OPTIONS");
	});

	it("shows a failed poll as stale, keeps the last view, and recovers by itself", async () => {
		const b = rs.regions[1];
		const { page, problems, navigations } = await open(b.apiUrl);
		try {
			await expect.poll(() => freshness(page).getAttribute("data-state"), { timeout: 10_000 }).toBe("fresh");
			await expect.poll(() => textOf(page, b.name, "health"), { timeout: 5000 }).toBe("up");

			// The gateway answers an error (as when the view cannot be made), then not at all.
			await page.route("**/health/regions", route =>
				route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ error: { code: "SERVICE_UNAVAILABLE", message: "x", requestId: "r" } }) }),
			);
			await expect.poll(() => freshness(page).textContent(), { timeout: 10_000 }).toMatch(/^Stale: HTTP 503 SERVICE_UNAVAILABLE; last update \d\d:\d\d:\d\d/);
			expect(await freshness(page).getAttribute("data-state")).toBe("stale");
			expect(await freshness(page).isVisible()).toBe(true);
			// The last good view stays, marked as such (dimmed).
			expect(await textOf(page, b.name, "health")).toBe("up");
			expect(await page.locator("body").getAttribute("class")).toBe("stale");
			await page.unroute("**/health/regions");
			await page.route("**/health/regions", route => route.abort("connectionrefused"));
			await expect.poll(() => freshness(page).textContent(), { timeout: 10_000 }).toMatch(/^Stale: gateway unreachable;/);

			const staleSince = await freshness(page).getAttribute("data-updated-at");
			await page.unroute("**/health/regions");
			await expect.poll(() => freshness(page).getAttribute("data-state"), { timeout: 10_000 }).toBe("fresh");
			expect(Date.parse((await freshness(page).getAttribute("data-updated-at"))!)).toBeGreaterThan(Date.parse(staleSince!));
			expect(await freshness(page).textContent()).toMatch(/^Updated \d\d:\d\d:\d\d$/);
			expect(await page.locator("body").getAttribute("class")).not.toBe("stale");
			expect(problems).toEqual([]);
			expect(navigations()).toBe(1);
		} finally {
			await page.close();
		}
	});

	it("shows a region going down, its home taken over by its successor, and its return, without a reload", async () => {
		const [a, b, c] = rs.regions;
		const { page, problems, navigations } = await open(a.apiUrl);
		try {
			for (const r of rs.regions)
				await expect.poll(() => row(page, r.name), { timeout: 15_000 }).toEqual({ health: "up", owner: r.name, epoch: expect.stringMatching(/^\d+$/) });
			expect(await page.locator("[data-field=servedBy]").textContent()).toBe(a.name);
			expect(await page.locator("[data-field=failover]").textContent()).toBe("on");
			expect(await page.locator("[data-field=durability]").textContent()).toBe(a.cfg.failover.durability);
			expect(await textOf(page, a.name, "lease")).toMatch(/^\d+\.\d s$/);
			expect(await textOf(page, a.name, "lag")).toBe("0 ms");
			expect(await cell(page, c.name, "health").getAttribute("data-health")).toBe("up");
			const epoch = Number((await row(page, c.name)).epoch);
			// The page keeps asking: what it shows is a second old at most.
			const first = await freshness(page).getAttribute("data-updated-at");
			await expect.poll(() => freshness(page).getAttribute("data-updated-at"), { timeout: 5000 }).not.toBe(first);

			// Stopped (as a crash would), and started again once the page has shown what follows.
			await rs.restart(c.name, async () => {
				// The successor of asia-east1 in the order us-central1, europe-west1, asia-east1 is us-central1.
				await expect.poll(() => cell(page, c.name, "health").getAttribute("data-health"), { timeout: 15_000, interval: 100 }).toBe("down");
				expect(await textOf(page, c.name, "health")).toBe("down");
				await expect.poll(() => row(page, c.name), { timeout: 15_000, interval: 100 }).toEqual({ health: "down", owner: a.name, epoch: String(epoch + 1) });
				expect(await row(page, b.name)).toMatchObject({ health: "up", owner: b.name });
			});
			// Back: up again, and (fail-back is on here) its home is its own again, under the epoch after.
			await expect.poll(() => row(page, c.name), { timeout: 30_000, interval: 100 }).toEqual({ health: "up", owner: c.name, epoch: String(epoch + 2) });
			expect(await freshness(page).getAttribute("data-state")).toBe("fresh");
			expect(problems).toEqual([]);
			expect(navigations()).toBe(1);
		} finally {
			await page.close();
		}
	}, 90_000);
});
