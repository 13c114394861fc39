import type { AssetConfig } from "../../config";
import { unprocessable } from "./errors";

export function assetDecimals(assets: Record<string, AssetConfig>, asset: string): number {
	const a = assets[asset];
	if (!a)
		throw unprocessable("UNKNOWN_ASSET", `Unknown asset "${asset}"`, { supported: Object.keys(assets) });
	return a.decimals;
}
