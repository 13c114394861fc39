output "cluster_name" {
  description = "GKE cluster name."
  value       = google_container_cluster.this.name
}

output "zones" {
  description = "Zones of the cluster's nodes (and of the gateway's NEGs)."
  value       = local.zones
}

output "app_service_account" {
  description = "Email of the Google service account the wallet pods use (Workload Identity)."
  value       = google_service_account.app.email
}

output "kafka_service_account" {
  description = "Email of the Google service account the wallet pods' Kafka clients log in as (KAFKA_SASL_USERNAME)."
  value       = google_service_account.kafka.email
}

output "secrets_service_account" {
  description = "Email of the Google service account the External Secrets Operator uses."
  value       = google_service_account.secrets.email
}

output "database_connection_name" {
  description = "Cloud SQL instance connection name (project:region:instance) for the Auth Proxy."
  value       = google_sql_database_instance.this.connection_name
}

output "database_name" {
  description = "Name of the wallet database."
  value       = google_sql_database.wallet.name
}

output "database_user" {
  description = "IAM database user of the app."
  value       = google_sql_user.app.name
}

output "redis_host" {
  description = "Private IP of the region's Memorystore instance."
  value       = google_redis_instance.this.host
}

output "redis_port" {
  description = "Port of the region's Memorystore instance."
  value       = google_redis_instance.this.port
}

output "kafka_bootstrap" {
  description = "Bootstrap address of the region's Kafka cluster."
  value       = "bootstrap.${google_managed_kafka_cluster.this.cluster_id}.${var.region}.managedkafka.${var.project_id}.cloud.goog:9092"
}

output "kafka_connect_cluster" {
  description = "Id of the region's Kafka Connect cluster (MirrorMaker 2 runs there)."
  value       = google_managed_kafka_connect_cluster.this.id
}
