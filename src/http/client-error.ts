// Requests Node's HTTP parser refuses before the app sees them (a newline or NUL in a header, a header
// name with a space, conflicting Content-Length and Transfer-Encoding, a head over the limit, an
// unknown method), and CONNECT, which Node hands over as a bare socket: answered with the same JSON
// error body as every other error, then closed.
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { Duplex } from "node:stream";

const REASONS: Record<number, string> = {
	400: "Bad Request",
	405: "Method Not Allowed",
	408: "Request Timeout",
	417: "Expectation Failed",
	431: "Request Header Fields Too Large",
};

export function rawErrorResponse(status: number, code: string, message: string, extraHeaders: Record<string, string> = {}): string {
	const requestId = randomUUID();
	const body = JSON.stringify({ error: { code, message, requestId } });
	const headers = {
		"Content-Type": "application/json; charset=utf-8",
		"Content-Length": String(Buffer.byteLength(body)),
		"X-Request-ID": requestId,
		...extraHeaders,
		Connection: "close",
	};
	const head = Object.entries(headers)
		.map(([k, v]) => `${k}: ${v}`)
		.join("\r\n");
	return `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\n${head}\r\n\r\n${body}`;
}

function answer(socket: Duplex, status: number, code: string, message: string, headers?: Record<string, string>) {
	if (!socket.writable) return void socket.destroy();
	socket.end(rawErrorResponse(status, code, message, headers));
}

/** Node's parser error codes -> the answer. Anything else the parser refuses is a 400. */
export function clientErrorAnswer(code: string | undefined): { status: number; code: string; message: string } {
	if (code === "HPE_HEADER_OVERFLOW")
		return { status: 431, code: "HEADERS_TOO_LARGE", message: "The request's headers are too large" };
	if (code === "ERR_HTTP_REQUEST_TIMEOUT")
		return { status: 408, code: "REQUEST_TIMEOUT", message: "The request was not received in time" };
	if (code === "HPE_INVALID_METHOD") return { status: 400, code: "BAD_REQUEST", message: "Unknown HTTP method" };
	return { status: 400, code: "BAD_REQUEST", message: "Malformed HTTP request" };
}

export function answerClientErrors(server: Server, extraHeaders: Record<string, string>) {
	server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
		// A peer that went away, or a socket whose answer has started: nothing sensible can be written.
		if (err.code === "ECONNRESET" || (socket as any)._httpMessage?.headersSent) return void socket.destroy();
		const a = clientErrorAnswer(err.code);
		answer(socket, a.status, a.code, a.message, extraHeaders);
	});
	// An Expect header other than 100-continue: Node would answer a bare 417.
	server.on("checkExpectation", (_req, res) => {
		const requestId = randomUUID();
		const body = JSON.stringify({ error: { code: "EXPECTATION_FAILED", message: "Only 'Expect: 100-continue' is supported", requestId } });
		res.writeHead(417, { ...extraHeaders, "Content-Type": "application/json; charset=utf-8", "X-Request-ID": requestId, Connection: "close" });
		res.end(body);
	});
	server.on("connect", (_req, socket: Duplex) => {
		socket.on("error", () => socket.destroy());
		answer(socket, 405, "METHOD_NOT_ALLOWED", "CONNECT is not supported", { ...extraHeaders, Allow: "GET, POST, PATCH, OPTIONS" });
	});
}
