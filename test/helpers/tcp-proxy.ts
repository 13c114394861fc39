// A TCP proxy for fault injection: put it between a node and PostgreSQL (or anything else), then
// `break()` it to cut every open connection and refuse new ones, and `heal()` it to let traffic through
// again. The node sees exactly what a network cut or a dead database host looks like: resets on open
// connections and connections closed right after they are accepted.
import net from "node:net";

export class TcpProxy {
	private server?: net.Server;
	private sockets = new Set<net.Socket>();
	private broken = false;
	/** The port the proxy listens on (after start). */
	port = 0;
	/** Connections accepted (and passed through) since start. */
	accepted = 0;
	/** Connections destroyed on arrival while broken. */
	refused = 0;

	constructor(
		readonly targetHost: string,
		readonly targetPort: number,
	) {}



	async start(): Promise<number> {
		this.server = net.createServer(client => this.onConnection(client));
		await new Promise<void>((resolve, reject) => {
			this.server!.once("error", reject);
			this.server!.listen(0, "127.0.0.1", () => resolve());
		});
		this.port = (this.server.address() as net.AddressInfo).port;
		return this.port;
	}

	/** `url` with its host and port replaced by the proxy's. */
	wrap(url: string): string {
		const u = new URL(url);
		u.hostname = "127.0.0.1";
		u.port = String(this.port);
		return u.toString();
	}

	get isBroken() {
		return this.broken;
	}

	private onConnection(client: net.Socket) {
		if (this.broken) {
			this.refused++;
			client.destroy();
			return;
		}
		this.accepted++;
		const upstream = net.connect(this.targetPort, this.targetHost);
		this.sockets.add(client);
		this.sockets.add(upstream);
		const drop = () => {
			client.destroy();
			upstream.destroy();
			this.sockets.delete(client);
			this.sockets.delete(upstream);
		};
		client.on("error", drop).on("close", drop);
		upstream.on("error", drop).on("close", drop);
		client.pipe(upstream);
		upstream.pipe(client);
	}

	/** Destroys every open connection and refuses new ones until heal(). */
	break(): void {
		this.broken = true;
		for (const s of this.sockets) s.destroy();
		this.sockets.clear();
	}

	heal(): void {
		this.broken = false;
	}

	async stop(): Promise<void> {
		this.break();
		const srv = this.server;
		this.server = undefined;
		if (srv) await new Promise<void>(resolve => srv.close(() => resolve()));
	}
}
