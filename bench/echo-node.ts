// The echo node of `runEcho` over NATS (bench/echo.ts spawns it): a bare broker with the echo service, in a
// process of its own so each call really crosses NATS and the serializer twice. NATS_URL and NAMESPACE from env.
import { bareBroker, echoService } from "./echo";

const natsUrl = process.env.NATS_URL;
const namespace = process.env.NAMESPACE;
if (!natsUrl || !namespace) throw new Error("echo-node needs NATS_URL and NAMESPACE");

// Moleculer's own SIGTERM handler stops the broker; a parent that dies without killing us closes our stdin.
const broker = bareBroker({ nodeID: `echo-${process.pid}`, namespace, natsUrl, ownSignals: true });
broker.createService(echoService);
process.stdin.on("end", () => void broker.stop().finally(() => process.exit(0)));
process.stdin.resume();
broker.start().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
