# Three regions of the wallet backend, each with its own GKE cluster, Cloud SQL for PostgreSQL, Memorystore
# for Redis and Managed Kafka (linked by MirrorMaker 2), behind one global external Application Load Balancer
# that sends each client to the nearest region whose gateways pass /health/ready.

locals {
  services = [
    "container.googleapis.com",
    "sqladmin.googleapis.com",
    "redis.googleapis.com",
    "managedkafka.googleapis.com",
    "servicenetworking.googleapis.com",
    "secretmanager.googleapis.com",
    "compute.googleapis.com",
    "artifactregistry.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each           = toset(local.services)
  service            = each.value
  disable_on_destroy = false
}

# One VPC for all regions: regional subnets, and one private services range for Cloud SQL and Memorystore.
resource "google_compute_network" "vpc" {
  name                    = "wallet"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_global_address" "private_services" {
  name          = "wallet-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 16
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

resource "google_artifact_registry_repository" "images" {
  location      = "europe"
  repository_id = "wallet"
  format        = "DOCKER"
  description   = "The wallet-backend image (one image for every node role)."
  depends_on    = [google_project_service.apis]
}

# Secrets shared by every region: created empty, their values added out of band (docs/deploy.md step 4), so
# no secret value is in the state.
resource "google_secret_manager_secret" "jwt" {
  secret_id = "wallet-jwt-secret"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# Signs the identity the services hand each other (INTERNAL_SECRET). Shared like the JWT secret: a write
# forwarded to its entity's home region carries the user's assertion there.
resource "google_secret_manager_secret" "internal" {
  secret_id = "wallet-internal-secret"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

module "region" {
  source   = "./modules/region"
  for_each = var.regions

  project_id          = var.project_id
  region              = each.key
  peer_regions        = [for r in keys(var.regions) : r if r != each.key]
  network_id          = google_compute_network.vpc.id
  network_name        = google_compute_network.vpc.name
  private_services    = google_service_networking_connection.private_services.id
  subnet_cidr         = each.value.subnet_cidr
  pods_cidr           = each.value.pods_cidr
  services_cidr       = each.value.services_cidr
  master_cidr         = each.value.master_cidr
  node_machine_type   = var.node_machine_type
  node_count          = var.node_count
  database_tier       = var.database_tier
  redis_memory_gb     = var.redis_memory_gb
  kafka_vcpus         = var.kafka_vcpus
  jwt_secret_id       = google_secret_manager_secret.jwt.id
  internal_secret_id  = google_secret_manager_secret.internal.id
  artifact_repository = google_artifact_registry_repository.images.id
  deletion_protection = var.deletion_protection
}

# MirrorMaker 2: each region's Connect cluster copies the other regions' event topics into its own Kafka.
module "mirror" {
  source   = "./modules/kafka-mirror"
  for_each = var.regions

  region          = each.key
  connect_cluster = module.region[each.key].kafka_connect_cluster
  local_bootstrap = module.region[each.key].kafka_bootstrap
  sources         = { for r in keys(var.regions) : r => module.region[r].kafka_bootstrap if r != each.key }
}

# Off on the first apply: its backends are the NEGs GKE creates once the gateway Service is applied
# (docs/deploy.md, steps 2 and 8).
module "global_lb" {
  source = "./modules/global-lb"
  count  = var.load_balancer_enabled ? 1 : 0

  domain       = var.domain
  network_name = google_compute_network.vpc.name
  health_port  = var.gateway_health_port
  health_path  = "/health/ready"
  neg_name     = var.gateway_neg_name
  # Zones where each region's gateway NEGs live (GKE creates one NEG per zone of a regional cluster).
  neg_zones       = { for r in keys(var.regions) : r => module.region[r].zones }
  drained_regions = var.drained_regions
  depends_on      = [module.region]
}
