import net from "node:net";

/** A TCP port free on 127.0.0.1 right now (the OS picks it; a test then binds it quickly). */
export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.listen(0, "127.0.0.1", () => {
			const port = (srv.address() as net.AddressInfo).port;
			srv.close(() => resolve(port));
		});
		srv.on("error", reject);
	});
}

function portIsFree(port: number): Promise<boolean> {
	return new Promise(resolve => {
		const srv = net.createServer();
		srv.once("error", () => resolve(false));
		srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
	});
}

/** `n` consecutive ports free on 127.0.0.1 right now (the embedded default's regions listen on PORT + i). */
export async function freePortRange(n: number): Promise<number> {
	for (let attempt = 0; attempt < 50; attempt++) {
		const base = 20_000 + Math.floor(Math.random() * 30_000);
		const free = await Promise.all(Array.from({ length: n }, (_, i) => portIsFree(base + i)));
		if (free.every(Boolean)) return base;
	}
	throw new Error(`no ${n} consecutive free ports found`);
}
