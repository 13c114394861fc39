import { eventLogContract } from "../helpers/event-log-contract";
import { MemoryEventLog } from "../../src/replication/memory-log";

eventLogContract("memory", async () => ({ log: new MemoryEventLog({ retryMs: 20 }), cleanup: async () => undefined }));
