variable "project_id" {
  type        = string
  description = "Google Cloud project that holds every region's resources."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "regions" {
  type = map(object({
    subnet_cidr   = string
    pods_cidr     = string
    services_cidr = string
    master_cidr   = string
  }))
  description = "The regions to serve from (the app's REGIONS), each with its own address ranges."
  default = {
    "us-central1"  = { subnet_cidr = "10.10.0.0/20", pods_cidr = "10.110.0.0/16", services_cidr = "10.210.0.0/20", master_cidr = "172.16.0.0/28" }
    "europe-west1" = { subnet_cidr = "10.20.0.0/20", pods_cidr = "10.120.0.0/16", services_cidr = "10.220.0.0/20", master_cidr = "172.16.0.16/28" }
    "asia-east1"   = { subnet_cidr = "10.30.0.0/20", pods_cidr = "10.130.0.0/16", services_cidr = "10.230.0.0/20", master_cidr = "172.16.0.32/28" }
  }
  validation {
    condition     = length(var.regions) >= 1 && alltrue([for r, c in var.regions : alltrue([for cidr in values(c) : can(cidrhost(cidr, 0))])])
    error_message = "regions needs at least one region, and every range must be a CIDR block."
  }
}

variable "link_region" {
  type        = string
  description = "The region whose Kafka also carries the region link in every region (LINK_KAFKA_BROKERS): the link needs one cluster all regions reach, and MirrorMaker copies only the event topics (docs/deploy.md)."
  default     = "us-central1"
  validation {
    condition     = contains(keys(var.regions), var.link_region)
    error_message = "link_region must be one of var.regions."
  }
}

variable "domain" {
  type        = string
  description = "Public host name of the API (a Google-managed certificate is issued for it)."
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a fully qualified host name such as api.example.com."
  }
}

variable "gateway_health_port" {
  type        = number
  description = "Port the gateway pods serve /health/ready on (the app's PORT; k8s/base/config.env)."
  default     = 3000
  validation {
    condition     = var.gateway_health_port > 0 && var.gateway_health_port < 65536
    error_message = "gateway_health_port must be a TCP port."
  }
}

variable "gateway_neg_name" {
  type        = string
  description = "Name of the standalone NEGs GKE creates for the gateway Service (k8s/base/service.yaml annotation)."
  default     = "wallet-gateway"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.gateway_neg_name))
    error_message = "gateway_neg_name must be a valid resource name (RFC 1035)."
  }
}

variable "node_machine_type" {
  type        = string
  description = "Machine type of the GKE node pool in every region."
  default     = "e2-standard-4"
  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.node_machine_type))
    error_message = "node_machine_type must be a Compute Engine machine type such as e2-standard-4."
  }
}

variable "node_count" {
  type = object({
    min = number
    max = number
  })
  description = "Autoscaling bounds of the node pool, per zone."
  default     = { min = 1, max = 5 }
  validation {
    condition     = var.node_count.min >= 1 && var.node_count.max >= var.node_count.min
    error_message = "node_count.min must be at least 1 and not above node_count.max."
  }
}

variable "database_tier" {
  type        = string
  description = "Cloud SQL machine tier of each region's PostgreSQL."
  default     = "db-custom-4-16384"
  validation {
    condition     = can(regex("^db-", var.database_tier))
    error_message = "database_tier must be a Cloud SQL tier such as db-custom-4-16384."
  }
}

variable "redis_memory_gb" {
  type        = number
  description = "Memorystore for Redis capacity per region, in GB."
  default     = 5
  validation {
    condition     = var.redis_memory_gb >= 1 && var.redis_memory_gb <= 300
    error_message = "redis_memory_gb must be between 1 and 300."
  }
}

variable "kafka_vcpus" {
  type        = number
  description = "vCPUs of each region's Managed Service for Apache Kafka cluster (memory is 4 GiB per vCPU)."
  default     = 3
  validation {
    condition     = var.kafka_vcpus >= 3
    error_message = "kafka_vcpus must be at least 3 (the service's minimum)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect clusters and databases from `terraform destroy`; turn off only for throwaway projects."
  default     = true
}

variable "drained_regions" {
  type        = list(string)
  description = "Regions drained at the load balancer for maintenance (docs/deploy.md, \"Draining a region\")."
  default     = []
  validation {
    condition     = alltrue([for r in var.drained_regions : contains(keys(var.regions), r)]) && length(var.drained_regions) < length(var.regions)
    error_message = "drained_regions must name regions of var.regions and leave at least one serving."
  }
}

variable "load_balancer_enabled" {
  type        = bool
  description = "Create the global load balancer; true once every region's gateway Service exists (its NEGs are the backends)."
  default     = false
}
