variable "project_id" {
  type        = string
  description = "Google Cloud project id."
}

variable "region" {
  type        = string
  description = "Region this module builds (one of the app's REGIONS)."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region name such as us-central1."
  }
}

variable "peer_regions" {
  type        = list(string)
  description = "The other regions, whose Kafka topics this region mirrors."
}

variable "network_id" {
  type        = string
  description = "Self link / id of the shared VPC."
}

variable "network_name" {
  type        = string
  description = "Name of the shared VPC."
}

variable "private_services" {
  type        = string
  description = "Id of the private services connection (Cloud SQL and Memorystore need it first)."
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the region's subnet (nodes, Kafka, Memorystore clients)."
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for GKE pods."
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for GKE Services."
}

variable "master_cidr" {
  type        = string
  description = "/28 range of the private GKE control plane."
  validation {
    condition     = can(cidrhost(var.master_cidr, 0)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be a /28 block."
  }
}

variable "node_machine_type" {
  type        = string
  description = "Machine type of the node pool."
}

variable "node_count" {
  type = object({
    min = number
    max = number
  })
  description = "Autoscaling bounds of the node pool, per zone."
}

variable "database_tier" {
  type        = string
  description = "Cloud SQL machine tier."
}

variable "redis_memory_gb" {
  type        = number
  description = "Memorystore capacity in GB."
}

variable "kafka_vcpus" {
  type        = number
  description = "vCPUs of the region's Kafka cluster."
}

variable "jwt_secret_id" {
  type        = string
  description = "Secret Manager id of the shared JWT secret (the app service account may read it)."
}

variable "internal_secret_id" {
  type        = string
  description = "Secret Manager id of the shared INTERNAL_SECRET (the External Secrets Operator's service account may read it)."
}

variable "artifact_repository" {
  type        = string
  description = "Artifact Registry repository the nodes pull the image from."
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the cluster and the database from deletion."
}
