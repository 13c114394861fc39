// Writes the OpenAPI document for the embedded default configuration (assets, regions, port) to a
// file, for `npm run lint:openapi` and for tools that want it without a running gateway:
//   npm run -s openapi -- dist/openapi.json
// A running gateway serves the document of its own configuration at GET /api/openapi.json.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../config";
import { openApiDocument } from "../src/openapi";

const out = process.argv[2];
if (!out) {
	console.error("usage: tsx scripts/openapi.ts <file.json>");
	process.exit(2);
}
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(openApiDocument(loadConfig({})), null, 2) + "\n");
