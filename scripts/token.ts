// Prints a signed HS256 token for local use: npm run token -- <userId> [scopes...]
// With no scopes the token gets every non-admin scope.
import { DEV_JWT_SECRET, loadConfig } from "../config";
import { SCOPES } from "../src/domain/permissions";
import { signToken } from "../src/lib/jwt";

async function main() {
	const [userId, ...scopes] = process.argv.slice(2);
	if (!userId || userId.startsWith("-")) {
		console.error("usage: npm run token -- <userId> [scopes...]\n  scopes: " + SCOPES.join(" "));
		process.exit(2);
	}
	const unknown = scopes.filter(s => !(SCOPES as readonly string[]).includes(s));
	if (unknown.length) {
		console.error(`unknown scope(s): ${unknown.join(" ")}; known: ${SCOPES.join(" ")}`);
		process.exit(2);
	}
	const granted = scopes.length ? scopes : SCOPES.filter(s => s !== "admin");
	const ttl = process.env.TOKEN_TTL ?? "12h";
	const jwt = loadConfig().jwt;
	if (jwt.secret === DEV_JWT_SECRET)
		console.error("note: signed with the development secret, which only the embedded default accepts (set JWT_SECRET for a cluster)");
	process.stdout.write((await signToken(jwt, userId, granted, ttl)) + "\n");
}

main().catch(err => {
	console.error(err.message);
	process.exit(1);
});
