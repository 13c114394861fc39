// Shared validation schemas (fastest-validator, through Moleculer's validator).
export const uuid = { type: "uuid" } as const;
export const amount = {
	type: "string",
	pattern: /^\d{1,20}(\.\d{1,18})?$/,
	messages: { stringPattern: "The '{field}' field must be a decimal string like 12.5" },
} as const;
export const asset = { type: "string", pattern: /^[A-Z][A-Z0-9]{1,15}$/ } as const;
export const paging = {
	page: { type: "number", integer: true, min: 1, max: 1_000_000, convert: true, optional: true },
	// Larger page sizes are accepted and capped at 100.
	pageSize: { type: "number", integer: true, min: 1, convert: true, optional: true },
} as const;
export const status = (values: readonly string[]) => ({ type: "enum", values, optional: true }) as const;
/** Free text: any well-formed Unicode but NUL, which PostgreSQL cannot store (nor a lone surrogate, which
 * is not Unicode text and which PostgreSQL's JSON refuses). The `u` flag makes a surrogate pair one code
 * point, so only an unpaired half falls in the excluded range. */
export const text = (min: number, max: number) =>
	({
		type: "string",
		min,
		max,
		trim: true,
		pattern: /^[^\u0000\uD800-\uDFFF]*$/u,
		messages: { stringPattern: "The '{field}' field must be text without NUL or unpaired surrogate characters" },
	}) as const;
