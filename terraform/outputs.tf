output "load_balancer_ip" {
  description = "Global anycast address of the API; point the domain's A record at it."
  value       = one(module.global_lb[*].ip_address)
}

output "clusters" {
  description = "GKE cluster name and location per region (for `gcloud container clusters get-credentials`)."
  value       = { for r, m in module.region : r => { name = m.cluster_name, location = r } }
}

output "k8s_region_env" {
  description = "Per region, the content of k8s/overlays/<region>/region.env (no secrets)."
  value = { for r, m in module.region : r => join("\n", [
    "REGION=${r}",
    "GCP_PROJECT=${var.project_id}",
    "GCP_SERVICE_ACCOUNT=${m.app_service_account}",
    "CLOUDSQL_INSTANCE=${m.database_connection_name}",
    "DATABASE_URL=postgres://${urlencode(m.database_user)}@127.0.0.1:5432/${m.database_name}",
    "KAFKA_BROKERS=${m.kafka_bootstrap}",
    "KAFKA_SERVICE_ACCOUNT=${m.kafka_service_account}",
    "LINK_KAFKA_BROKERS=${module.region[var.link_region].kafka_bootstrap}",
    "",
  ]) }
}

output "redis_hosts" {
  description = "Memorystore host:port per region, for the wallet-<region>-redis-url secret (the AUTH string is read with gcloud, not from here)."
  value       = { for r, m in module.region : r => "${m.redis_host}:${m.redis_port}" }
}

output "image_repository" {
  description = "Artifact Registry path of the wallet-backend image."
  value       = "europe-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/wallet-backend"
}

output "secrets_service_accounts" {
  description = "Per region, the Google service account to annotate the External Secrets Operator's Kubernetes service account with."
  value       = { for r, m in module.region : r => m.secrets_service_account }
}

output "kafka_service_accounts" {
  description = "Per region, the Google service account the wallet pods' Kafka clients log in as; its key is the wallet-<region>-kafka-password secret (docs/deploy.md step 4)."
  value       = { for r, m in module.region : r => m.kafka_service_account }
}
