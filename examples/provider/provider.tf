terraform {
  required_providers {
    redis = {
      source = "replicad/redis"
    }
  }
}

# Every setting may instead come from the environment:
# REDIS_REPLICAD_ENDPOINT, REDIS_REPLICAD_USERNAME, REDIS_REPLICAD_PASSWORD
# and REDIS_REPLICAD_CA_CERT.
provider "redis" {
  endpoint = "https://replicad-us.example.com:9443"
  username = "admin"
  password = var.replicad_us_password
  # The CA that redis-replicad generated in its data directory.
  ca_cert = file("${path.module}/replicad-us-ca.pem")
}

# One provider block per redis-replicad instance: an alias for each location.
provider "redis" {
  alias    = "eu"
  endpoint = "https://replicad-eu.example.com:9443"
  password = var.replicad_eu_password
  ca_cert  = file("${path.module}/replicad-eu-ca.pem")
}

variable "replicad_us_password" {
  type      = string
  sensitive = true
}

variable "replicad_eu_password" {
  type      = string
  sensitive = true
}
