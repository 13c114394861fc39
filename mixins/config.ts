import type { ServiceBroker } from "moleculer";
import { config, type Config } from "../config";

/** The app configuration of the broker a service runs in (brokerOptions puts it there). */
export function appConfig(broker: ServiceBroker): Config {
	return (broker.options as { appConfig?: Config }).appConfig ?? config();
}
