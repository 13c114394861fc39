/** Runs the jobs with at most `size` in flight; results in the jobs' order. */
export async function inPool<T>(jobs: (() => Promise<T>)[], size: number): Promise<T[]> {
	const results: T[] = new Array(jobs.length);
	let next = 0;
	await Promise.all(
		Array.from({ length: size }, async () => {
			while (next < jobs.length) {
				const i = next++;
				results[i] = await jobs[i]();
			}
		}),
	);
	return results;
}
