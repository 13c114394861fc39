# One region: a private regional GKE cluster, Cloud SQL for PostgreSQL on a private IP, Memorystore for Redis,
# a Managed Kafka cluster with its event topic and a Kafka Connect cluster (MirrorMaker 2), and the service
# accounts the pods use.

data "google_compute_zones" "available" {
  region = var.region
  status = "UP"
}

locals {
  name  = "wallet-${var.region}"
  zones = slice(sort(data.google_compute_zones.available.names), 0, 3)
}

resource "google_compute_subnetwork" "this" {
  name                     = local.name
  region                   = var.region
  network                  = var.network_id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }
}

# Private nodes reach the internet (image pulls from outside Google) through Cloud NAT only.
resource "google_compute_router" "this" {
  name    = local.name
  region  = var.region
  network = var.network_id
}

resource "google_compute_router_nat" "this" {
  name                               = local.name
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

# ---- service accounts (least privilege) ----

# Nodes: write logs and metrics, pull images; nothing else.
resource "google_service_account" "nodes" {
  account_id   = "wallet-nodes-${var.region}"
  display_name = "GKE nodes of ${local.name}"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = var.artifact_repository
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# The wallet pods (Kubernetes service account wallet/wallet through Workload Identity): connect to this
# region's Cloud SQL as an IAM user, and nothing else (Kafka takes the kafka account's key, below).
resource "google_service_account" "app" {
  account_id   = "wallet-app-${var.region}"
  display_name = "wallet pods in ${var.region}"
}

resource "google_service_account_iam_member" "app_workload_identity" {
  service_account_id = google_service_account.app.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[wallet/wallet]"
}

resource "google_project_iam_member" "app" {
  for_each = toset(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.app.email}"
  condition {
    title      = "only-${local.name}"
    expression = "resource.name.startsWith(\"projects/${var.project_id}/instances/${local.name}\") || resource.type != \"sqladmin.googleapis.com/Instance\""
  }
}

# The External Secrets Operator (its own KSA external-secrets/external-secrets) reads the wallet secrets only.
resource "google_service_account" "secrets" {
  account_id   = "wallet-secrets-${var.region}"
  display_name = "External Secrets Operator in ${var.region}"
}

resource "google_service_account_iam_member" "secrets_workload_identity" {
  service_account_id = google_service_account.secrets.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[external-secrets/external-secrets]"
}

resource "google_secret_manager_secret" "redis_url" {
  secret_id = "wallet-${var.region}-redis-url"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

# The token of this region's NATS (NATS_TOKEN), one per region like the bus it opens: a token read in one
# region does not open another region's NATS, and each region rotates its own.
resource "google_secret_manager_secret" "nats_token" {
  secret_id = "wallet-${var.region}-nats-token"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

# The password of the region's Kafka client (KAFKA_SASL_PASSWORD): the base64-encoded JSON key of the kafka
# service account below. The key is made with gcloud and added as a version (docs/deploy.md step 4), never by
# terraform, so it is in no state.
resource "google_secret_manager_secret" "kafka_password" {
  secret_id = "wallet-${var.region}-kafka-password"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "secrets" {
  for_each = {
    jwt            = var.jwt_secret_id
    internal       = var.internal_secret_id
    redis          = google_secret_manager_secret.redis_url.id
    nats_token     = google_secret_manager_secret.nats_token.id
    kafka_password = google_secret_manager_secret.kafka_password.id
  }
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.secrets.email}"
}

# ---- GKE ----

resource "google_container_cluster" "this" {
  name                = local.name
  location            = var.region
  node_locations      = local.zones
  network             = var.network_id
  subnetwork          = google_compute_subnetwork.this.id
  deletion_protection = var.deletion_protection

  # The default pool is replaced by the managed one below.
  remove_default_node_pool = true
  initial_node_count       = 1

  release_channel {
    channel = "REGULAR"
  }
  # Dataplane V2 enforces the NetworkPolicies of k8s/base/network-policy.yaml.
  datapath_provider = "ADVANCED_DATAPATH"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }
  monitoring_config {
    managed_prometheus {
      enabled = true
    }
  }
  maintenance_policy {
    recurring_window {
      start_time = "2024-01-06T02:00:00Z"
      end_time   = "2024-01-06T06:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    }
  }
}

resource "google_container_node_pool" "default" {
  name     = "default"
  cluster  = google_container_cluster.this.id
  location = var.region
  autoscaling {
    min_node_count = var.node_count.min
    max_node_count = var.node_count.max
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }
  node_config {
    machine_type    = var.node_machine_type
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot = true
    }
  }
}

# ---- Cloud SQL for PostgreSQL ----

resource "google_sql_database_instance" "this" {
  name                = local.name
  region              = var.region
  database_version    = "POSTGRES_16"
  deletion_protection = var.deletion_protection
  depends_on          = [var.private_services]

  settings {
    tier              = var.database_tier
    availability_type = "REGIONAL"
    disk_autoresize   = true
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network_id
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 14
      }
    }
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    insights_config {
      query_insights_enabled = true
    }
    maintenance_window {
      day  = 7
      hour = 3
    }
  }
}

resource "google_sql_database" "wallet" {
  name     = "wallet"
  instance = google_sql_database_instance.this.name
}

# The app logs in as its service account (IAM database authentication): no password exists, so none is in
# the state. docs/deploy.md step 5 grants it the schema.
resource "google_sql_user" "app" {
  name     = trimsuffix(google_service_account.app.email, ".gserviceaccount.com")
  instance = google_sql_database_instance.this.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# ---- Memorystore for Redis ----

resource "google_redis_instance" "this" {
  name                    = local.name
  region                  = var.region
  tier                    = "STANDARD_HA"
  memory_size_gb          = var.redis_memory_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = var.network_id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "DISABLED"
  depends_on              = [var.private_services]
  redis_configs = {
    # Cache entries all have TTLs; evict the nearest to expiring under memory pressure.
    maxmemory-policy = "volatile-ttl"
  }
}

# ---- Managed Service for Apache Kafka ----

resource "google_managed_kafka_cluster" "this" {
  cluster_id = local.name
  location   = var.region
  capacity_config {
    vcpu_count   = var.kafka_vcpus
    memory_bytes = var.kafka_vcpus * 4 * 1024 * 1024 * 1024
  }
  gcp_config {
    access_config {
      network_configs {
        subnet = google_compute_subnetwork.this.id
      }
    }
  }
  rebalance_config {
    mode = "AUTO_REBALANCE_ON_SCALE_UP"
  }
}

resource "google_managed_kafka_connect_cluster" "this" {
  connect_cluster_id = "${local.name}-mm2"
  kafka_cluster      = google_managed_kafka_cluster.this.id
  location           = var.region
  capacity_config {
    vcpu_count   = 3
    memory_bytes = 3 * 4 * 1024 * 1024 * 1024
  }
  gcp_config {
    access_config {
      network_configs {
        primary_subnet   = google_compute_subnetwork.this.id
        dns_domain_names = [for r in var.peer_regions : "wallet-${r}.${r}.managedkafka.${var.project_id}.cloud.goog"]
      }
    }
  }
}

# The region's event topic, which its outbox relay publishes to (KAFKA_TOPIC_PREFIX "wallet", k8s/base/config.env):
# the app creates no event topic (it publishes and subscribes with topic auto-creation off), so it is provisioned
# here. Events of one key stay in one partition, so the count is set once, generously: adding partitions later
# moves keys to other partitions and breaks their order. MirrorMaker 2 creates the copies in the other regions
# (`<region>.wallet.events.<region>`) with the same partitions.
resource "google_managed_kafka_topic" "events" {
  topic_id           = "wallet.events.${var.region}"
  cluster            = google_managed_kafka_cluster.this.cluster_id
  location           = var.region
  partition_count    = 12
  replication_factor = 3
}

# The Kafka client of the wallet pods (the event log and the region link, both in the replication role):
# SASL/PLAIN over TLS as this service account, its password a key of it (the app's Kafka clients speak PLAIN and
# SCRAM, not Google's OAUTHBEARER). An account of its own, so that the long-lived key opens Kafka and nothing else
# (the app account also logs in to Cloud SQL). Project-wide, like every managedkafka.client grant: it reaches this
# region's cluster and the link's (var.link_region at the root), which is another region's for all but one.
resource "google_service_account" "kafka" {
  account_id   = "wallet-kafka-${var.region}"
  display_name = "Kafka client of the wallet pods in ${var.region}"
}

resource "google_project_iam_member" "kafka_client" {
  project = var.project_id
  role    = "roles/managedkafka.client"
  member  = "serviceAccount:${google_service_account.kafka.email}"
}
