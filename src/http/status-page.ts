// The operators' status page (GET /status): status.html beside this file, one page with its style and script
// inline, read once. It shows what GET /health/regions answers, polled every second (docs/operations.md).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const html = fs.readFileSync(path.join(__dirname, "status.html"), "utf8");

/** The CSP source of the page's one inline element of this tag: its hash, so that nothing else inline runs. */
function hashOf(tag: "script" | "style"): string {
	const found = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))];
	if (found.length !== 1) throw new Error(`status.html must have exactly one <${tag}> (it has ${found.length})`);
	return `'sha256-${createHash("sha256").update(found[0][1], "utf8").digest("base64")}'`;
}

// The page is inline on purpose (one file, no build, no second request). Rather than 'unsafe-inline', its script
// and style are allowed by their hashes: an injected element would not run. Nothing else is loaded but its data
// (connect-src 'self'), and it may not be framed.
const CSP = [
	"default-src 'none'",
	`script-src ${hashOf("script")}`,
	`style-src ${hashOf("style")}`,
	"connect-src 'self'",
	"img-src data:", // the empty favicon, so that the browser asks for no /favicon.ico
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
].join("; ");

export const STATUS_PAGE = {
	html,
	headers: {
		"Content-Type": "text/html; charset=utf-8",
		// Live by nature: a cached copy would show an old page during an incident.
		"Cache-Control": "no-store",
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer",
	},
};
