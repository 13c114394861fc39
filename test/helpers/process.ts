import type { ChildProcess } from "node:child_process";

/** SIGKILL and wait for the exit: no graceful stop, as a crash or a lost host looks to its peers. */
export async function killProcess(p: ChildProcess | undefined): Promise<void> {
	if (!p || p.exitCode !== null || p.signalCode !== null) return;
	await new Promise(resolve => {
		p.once("exit", resolve);
		p.kill("SIGKILL");
	});
}
