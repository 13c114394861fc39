import type { Page } from "../domain/types";

export const MAX_PAGE_SIZE = 100;

export function pageArgs(page?: number, pageSize?: number) {
	const p = Math.max(1, page ?? 1);
	const size = Math.min(MAX_PAGE_SIZE, Math.max(1, pageSize ?? 20));
	return { page: p, pageSize: size, offset: (p - 1) * size };
}

export function toPage<T>(rows: T[], total: number, page: number, pageSize: number): Page<T> {
	return { rows, total, page, pageSize, totalPages: Math.ceil(total / pageSize) };
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
