output "connectors" {
  description = "Connector ids running in this region."
  value       = concat([for c in google_managed_kafka_connector.source : c.connector_id], [for c in google_managed_kafka_connector.checkpoint : c.connector_id])
}
