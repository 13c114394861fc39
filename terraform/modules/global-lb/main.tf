# The global external Application Load Balancer: one anycast IP, TLS at Google's edge, and one backend
# service whose backends are the gateway NEGs of every zone of every region. With the default
# WATERFALL_BY_REGION locality policy a client is sent to the nearest region with healthy capacity; when the
# health check fails for all of a region's endpoints, its traffic spills to the next-nearest region.

locals {
  # zone -> region, for every zone that holds a gateway NEG.
  neg_regions = merge([for r, zones in var.neg_zones : { for z in zones : z => r }]...)
}

data "google_compute_network_endpoint_group" "gateway" {
  for_each = local.neg_regions
  name     = var.neg_name
  zone     = each.key
}

resource "google_compute_health_check" "gateway" {
  name                = "wallet-gateway-ready"
  check_interval_sec  = 5
  timeout_sec         = 3
  healthy_threshold   = 2
  unhealthy_threshold = 2
  http_health_check {
    port         = var.health_port
    request_path = var.health_path
  }
  log_config {
    enable = true
  }
}

resource "google_compute_backend_service" "gateway" {
  name                            = "wallet-gateway"
  protocol                        = "HTTP"
  load_balancing_scheme           = "EXTERNAL_MANAGED"
  health_checks                   = [google_compute_health_check.gateway.id]
  timeout_sec                     = 30
  connection_draining_timeout_sec = var.drain_seconds
  locality_lb_policy              = "ROUND_ROBIN"
  dynamic "backend" {
    for_each = data.google_compute_network_endpoint_group.gateway
    content {
      group                 = backend.value.id
      balancing_mode        = "RATE"
      max_rate_per_endpoint = 500
      # 0 drains the region: the load balancer sends its clients to the next-nearest region.
      capacity_scaler = contains(var.drained_regions, local.neg_regions[backend.key]) ? 0 : 1
    }
  }
  log_config {
    enable      = true
    sample_rate = 0.1
  }
}

resource "google_compute_url_map" "api" {
  name            = "wallet-api"
  default_service = google_compute_backend_service.gateway.id
}

resource "google_compute_managed_ssl_certificate" "api" {
  name = "wallet-api"
  managed {
    domains = [var.domain]
  }
}

resource "google_compute_target_https_proxy" "api" {
  name             = "wallet-api"
  url_map          = google_compute_url_map.api.id
  ssl_certificates = [google_compute_managed_ssl_certificate.api.id]
}

resource "google_compute_global_address" "api" {
  name = "wallet-api"
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "wallet-api-https"
  target                = google_compute_target_https_proxy.api.id
  ip_address            = google_compute_global_address.api.address
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Plain HTTP answers with a redirect to HTTPS only.
resource "google_compute_url_map" "redirect" {
  name = "wallet-api-redirect"
  default_url_redirect {
    https_redirect = true
    strip_query    = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  name    = "wallet-api-redirect"
  url_map = google_compute_url_map.redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "wallet-api-http"
  target                = google_compute_target_http_proxy.redirect.id
  ip_address            = google_compute_global_address.api.address
  port_range            = "80"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# The load balancer's proxies and health checkers reach the gateway pods (NetworkPolicy
# gateway-from-load-balancer admits the same ranges).
resource "google_compute_firewall" "lb_to_gateway" {
  name          = "wallet-lb-to-gateway"
  network       = var.network_name
  direction     = "INGRESS"
  source_ranges = ["130.211.0.0/22", "35.191.0.0/16"]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.health_port)]
  }
}
