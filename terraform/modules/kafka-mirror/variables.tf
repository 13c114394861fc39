variable "region" {
  type        = string
  description = "Region whose Connect cluster runs the connectors (the target of the mirroring)."
}

variable "connect_cluster" {
  type        = string
  description = "Id of the region's Managed Kafka Connect cluster."
}

variable "local_bootstrap" {
  type        = string
  description = "Bootstrap address of the region's own Kafka (the target)."
}

variable "sources" {
  type        = map(string)
  description = "Bootstrap address of every other region's Kafka, by region name."
  validation {
    condition     = alltrue([for r, b in var.sources : can(regex(":[0-9]+$", b))])
    error_message = "every source must be a host:port bootstrap address."
  }
}

variable "topics" {
  type        = string
  description = "Regex of the topics to mirror (the outbox relay's event topics)."
  default     = "wallet\\..*"
}
