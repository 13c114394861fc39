// Moleculer's Zipkin exporter (Jaeger and OpenTelemetry collectors both receive Zipkin v2). A trace id
// is the request id, which a client may choose (X-Request-ID); Zipkin wants hex, so other ids are hashed.
import { createHash } from "node:crypto";
import { TracerExporters } from "moleculer";

const HEX = /^[0-9a-f-]+$/i;

export class HashingZipkinExporter extends ((TracerExporters as any).Zipkin as new (opts: object) => any) {
	convertID(id: string | null): string | null {
		if (!id) return null;
		if (HEX.test(id) && id.replace(/-/g, "").length >= 16) return super.convertID(id);
		return createHash("sha256").update(id).digest("hex").slice(0, 16);
	}

	makePayload(span: any) {
		const payload = super.makePayload(span);
		// The request id as given by the client, so a trace can be found from a log line.
		if (span.tags?.requestID) payload.tags.requestId = String(span.tags.requestID);
		return payload;
	}
}
