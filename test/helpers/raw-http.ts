// Bytes on a socket, for requests no HTTP client will send (bad headers, CONNECT, unknown methods),
// and the answer parsed just enough to check its status, headers and JSON body.
import net from "node:net";

export interface RawReply {
	/** 0 when the server closed without answering. */
	status: number;
	headers: Record<string, string>;
	body: any;
	text: string;
}

export function parseRawReply(text: string): RawReply {
	const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
	if (!m) return { status: 0, headers: {}, body: undefined, text };
	const end = text.indexOf("\r\n\r\n");
	const headers: Record<string, string> = {};
	for (const line of text.slice(m[0].length, end).split("\r\n")) {
		const i = line.indexOf(":");
		if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
	}
	let bodyText = end >= 0 ? text.slice(end + 4) : "";
	if (headers["transfer-encoding"] === "chunked") bodyText = bodyText.replace(/^[0-9a-f]+\r\n/i, "").replace(/\r\n0\r\n\r\n$/, "");
	let body: any = bodyText;
	try {
		body = bodyText ? JSON.parse(bodyText) : undefined;
	} catch {
		/* not JSON */
	}
	return { status: Number(m[1]), headers, body, text };
}

/** Sends `data`, reads until the server closes (or `ms` pass), and parses the first answer. */
export function rawRequest(baseUrl: string, data: string | Buffer, ms = 3000): Promise<RawReply> {
	const u = new URL(baseUrl);
	return new Promise(resolve => {
		const chunks: Buffer[] = [];
		let done = false;
		const finish = () => {
			if (done) return;
			done = true;
			clearTimeout(timer);
			socket.destroy();
			resolve(parseRawReply(Buffer.concat(chunks).toString("latin1")));
		};
		const socket = net.connect(Number(u.port), u.hostname, () => socket.write(data));
		socket.on("data", d => chunks.push(d));
		socket.on("close", finish);
		socket.on("error", finish);
		const timer = setTimeout(finish, ms);
	});
}
