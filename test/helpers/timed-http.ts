// HTTP calls for fault tests: the client's own deadline is long (30 s), so a slow server answer is
// measured (Reply.ms), not cut off by the test.
import { Client, tokenFor, type Reply } from "./http";

export type TimedReply<T = any> = Reply<T>;

export class TimedClient extends Client {
	static override async as(base: string, userId: string) {
		return new TimedClient(base, await tokenFor(userId), 30_000);
	}
}
