// Every refusal the domain can make, as a Moleculer error whose `code` is the HTTP status and whose
// `type` is the stable machine-readable code of the API's error body.
import { Errors } from "moleculer";

export type Details = Record<string, unknown> | undefined;

export class AppError extends Errors.MoleculerClientError {
	constructor(status: number, code: string, message: string, details?: Details) {
		super(message, status, code, details);
		// The name Moleculer knows: errors crossing the transporter are rebuilt as this class, not a plain Error.
		this.name = "MoleculerClientError";
	}
}

export const badRequest = (code: string, message: string, details?: Details) => new AppError(400, code, message, details);
export const unauthorized = (message = "Authentication required", code = "UNAUTHORIZED") =>
	new AppError(401, code, message);
export const forbidden = (code: string, message: string, details?: Details) => new AppError(403, code, message, details);
export const notFound = (entity: string) =>
	new AppError(404, `${entity.toUpperCase()}_NOT_FOUND`, `${entity[0].toUpperCase()}${entity.slice(1)} not found`);
export const conflict = (code: string, message: string, details?: Details) => new AppError(409, code, message, details);
export const unprocessable = (code: string, message: string, details?: Details) =>
	new AppError(422, code, message, details);
