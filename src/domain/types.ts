export type SupplyStatus = "active" | "paused" | "closed";
export type OrderStatus = "open" | "claimed" | "completed" | "cancelled" | "expired";
export type ClaimStatus = "active" | "settled" | "released";

export interface User {
	id: string;
	scopes: string[];
}

/** Rows as the services hold them: amounts are exact decimal strings. */
export interface Supply {
	id: string;
	userId: string;
	asset: string;
	amount: string;
	reserved: string;
	spent: string;
	available: string;
	status: SupplyStatus;
	homeRegion: string;
	version: number;
	createdAt: string;
	updatedAt: string;
}

export interface OrderItem {
	sku: string;
	name: string;
	unitPrice: string;
	quantity: number;
}

export interface Order {
	id: string;
	userId: string;
	asset: string;
	items: OrderItem[];
	amount: string;
	status: OrderStatus;
	claimId: string | null;
	claimerId: string | null;
	homeRegion: string;
	version: number;
	expiresAt: string;
	createdAt: string;
	updatedAt: string;
}

export interface Claim {
	id: string;
	orderId: string;
	claimerId: string;
	supplyId: string;
	amount: string;
	status: ClaimStatus;
	idempotencyKey: string;
	region: string;
	epoch: number;
	version: number;
	expiresAt: string;
	createdAt: string;
	settledAt: string | null;
	releasedAt: string | null;
}

export interface Page<T> {
	rows: T[];
	total: number;
	page: number;
	pageSize: number;
	totalPages: number;
	/** Present when the list holds more rows than are counted (src/store/paging.ts MAX_ROWS): total is a floor. */
	totalCapped?: boolean;
}
