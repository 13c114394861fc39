variable "domain" {
  type        = string
  description = "Host name of the API (Google-managed certificate)."
}

variable "network_name" {
  type        = string
  description = "VPC the gateways run in (the health-check firewall rule is added there)."
}

variable "health_path" {
  type        = string
  description = "Path the load balancer health-checks on every gateway pod."
  validation {
    condition     = startswith(var.health_path, "/")
    error_message = "health_path must start with a slash."
  }
}

variable "health_port" {
  type        = number
  description = "Port the gateway pods serve health_path on (the app's PORT)."
  validation {
    condition     = var.health_port > 0 && var.health_port < 65536
    error_message = "health_port must be a TCP port."
  }
}

variable "neg_name" {
  type        = string
  description = "Name of the gateway's standalone NEGs (same in every zone)."
}

variable "neg_zones" {
  type        = map(list(string))
  description = "Per region, the zones that hold a gateway NEG (one per zone of the region's cluster)."
  validation {
    condition     = length(var.neg_zones) > 0 && alltrue([for r, z in var.neg_zones : length(z) > 0])
    error_message = "neg_zones must name at least one region, each with at least one zone."
  }
}

variable "drained_regions" {
  type        = list(string)
  description = "Regions taken out of the load balancer for maintenance: their gateways get no new requests."
  default     = []
  validation {
    condition     = length(var.drained_regions) < length(var.neg_zones) && alltrue([for r in var.drained_regions : contains(keys(var.neg_zones), r)])
    error_message = "drained_regions must name known regions and leave at least one region serving."
  }
}

variable "drain_seconds" {
  type        = number
  description = "Connection draining of a removed endpoint; at most the gateway's preStop sleep (k8s/base/roles/gateway.yaml)."
  default     = 10
  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 3600
    error_message = "drain_seconds must be between 0 and 3600."
  }
}
