import type { Page } from "../domain/types";

import { unprocessable } from "../domain/errors";

export const MAX_PAGE_SIZE = 100;
/**
 * How deep a list can be paged. An OFFSET makes PostgreSQL read and drop every row before the page, and the
 * total is a count of the whole filtered set: both grow with the data. Past this depth a client narrows the
 * list with its filters (asset, status) instead; the total is counted up to this many rows.
 */
export const MAX_ROWS = 10_000;

export function pageArgs(page?: number, pageSize?: number) {
	const p = Math.max(1, page ?? 1);
	const size = Math.min(MAX_PAGE_SIZE, Math.max(1, pageSize ?? 20));
	return { page: p, pageSize: size, offset: (p - 1) * size };
}

/** Refuses a page that starts past MAX_ROWS. */
export function checkDepth(page: number, pageSize: number): void {
	if ((page - 1) * pageSize >= MAX_ROWS)
		throw unprocessable("PAGE_TOO_DEEP", `Lists can be paged through their first ${MAX_ROWS} rows; narrow the list with its filters`, {
			maxPage: Math.ceil(MAX_ROWS / pageSize),
		});
}

/** `counted` is the count of at most MAX_ROWS + 1 rows: more than MAX_ROWS is reported as capped. */
export function toPage<T>(rows: T[], counted: number, page: number, pageSize: number): Page<T> {
	const capped = counted > MAX_ROWS;
	const total = Math.min(counted, MAX_ROWS);
	return { rows, total, page, pageSize, totalPages: Math.ceil(total / pageSize), ...(capped ? { totalCapped: true } : {}) };
}

/** Builds "WHERE a = $1 AND b = $2" from the defined filters. */
export function where(filters: [string, unknown][], extra: string[] = []) {
	const values: unknown[] = [];
	const parts = [...extra];
	for (const [clause, value] of filters) {
		if (value === undefined) continue;
		values.push(value);
		parts.push(clause.replace("?", `$${values.length}`));
	}
	return { sql: parts.length ? `WHERE ${parts.join(" AND ")}` : "", values };
}
