// What a circuit breaker counts: signs that a node or its dependency is unhealthy (timeouts, a database
// or transporter that is away or overloaded), never a refusal of one caller's input. A 4xx is the
// caller's problem; a 500 is a bug that one user could trigger on purpose, so it must not take an action
// down for everyone (the bug is fixed and the error logged, not turned into an outage).
const UNHEALTHY = new Set([
	"REQUEST_TIMEOUT",
	"DATABASE_UNAVAILABLE",
	"DATABASE_BUSY",
	"SERVICE_NOT_AVAILABLE",
	"BROKER_DISCONNECTED",
	"NO_RESPONSE",
	"BAD_GATEWAY",
]);
const NETWORK = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND)$/;

export function breakerCounts(err: unknown): boolean {
	const e = err as { type?: unknown; code?: unknown } | null;
	if (!e) return false;
	if (typeof e.type === "string" && UNHEALTHY.has(e.type)) return true;
	return typeof e.code === "string" && NETWORK.test(e.code);
}
