// Which methods a path answers, from the route tables: an OPTIONS request is answered with them
// (204 and Allow) instead of being routed, since moleculer-web would run the path's action for it.
const ORDER = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

export type MethodTable = (path: string) => string[] | undefined;

export function methodTable(routes: { prefix: string; aliases: Record<string, unknown> }[]): MethodTable {
	const entries = routes.flatMap(({ prefix, aliases }) =>
		Object.keys(aliases).map(alias => {
			const [method, path] = alias.split(" ");
			// "GET /" under a prefix is the prefix itself, as moleculer-web reads it.
			const pattern = (prefix + (path.startsWith("/") ? path : `/${path}`)).replace(/(.)\/$/, "$1")
				.split("/")
				.map(seg => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
				.join("/");
			return { method, re: new RegExp(`^${pattern}$`) };
		}),
	);
	return (url: string) => {
		let path = url.split("?")[0];
		if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
		const methods = entries.filter(e => e.re.test(path)).map(e => e.method);
		return methods.length > 0 ? ORDER.filter(m => m === "OPTIONS" || methods.includes(m)) : undefined;
	};
}
