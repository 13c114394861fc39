terraform {
  # 1.9: validations may refer to other variables (drained_regions).
  required_version = ">= 1.9.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.30"
    }
  }
  # State in a versioned GCS bucket; bucket and prefix come from `terraform init -backend-config=...`
  # (docs/deploy.md, step 1).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
}
