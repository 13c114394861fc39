output "ip_address" {
  description = "The API's global anycast IP."
  value       = google_compute_global_address.api.address
}

output "backend_service" {
  description = "Id of the gateway backend service (drain a region by setting its backends' capacity_scaler to 0)."
  value       = google_compute_backend_service.gateway.id
}
