# Geo-replication across two locations ("us" and "eu"), each run by its own
# redis-replicad, plus an open-source redis-server given by URL.
#
#   us: orders             <- applications write here
#   eu: orders-replica     Replica Of orders                          (one-to-one)
#   eu: inventory          Replica Of orders and the open-source one  (many-to-one)
#
# Replication of orders crosses the ocean encrypted and compressed: orders
# requires TLS for replication and admits only eu's syncers (their client
# certificate), and eu trusts exactly the certificate that us presents. The
# redis_cluster data sources hand each location's certificates to the other.
# The open-source server is replicated in plain text, uncompressed.
#
# scripts/demo.sh starts everything on one machine and applies this
# configuration. By hand: set the variables (TF_VAR_us_endpoint, ...), then
# terraform init && terraform apply.

terraform {
  required_version = ">= 1.11"
  required_providers {
    redis = {
      source = "replicad/redis"
    }
  }
}

provider "redis" {
  alias    = "us"
  endpoint = var.us_endpoint
  password = var.us_password
  ca_cert  = var.us_ca_cert
}

provider "redis" {
  alias    = "eu"
  endpoint = var.eu_endpoint
  password = var.eu_password
  ca_cert  = var.eu_ca_cert
}

# The certificates of each location.
data "redis_cluster" "us" {
  provider = redis.us
}

data "redis_cluster" "eu" {
  provider = redis.eu
}

# --- us: the source ---------------------------------------------------------

resource "redis_database" "orders" {
  provider    = redis.us
  name        = "orders"
  memory_size = 64 * 1024 * 1024

  # Replication only over TLS, and only for the syncers of eu. Applications
  # keep connecting in plain text (tls_mode = "enabled" would make them use
  # TLS too).
  tls_mode            = "replica_ssl"
  client_certificates = [data.redis_cluster.eu.syncer_cert]
}

# A fresh admin password for orders, and the source URL that holds it.
# Changing var.password_rotation regenerates it, and the destinations below
# get the new URL in the same apply.
resource "redis_source_url_password" "orders" {
  provider    = redis.us
  database_id = redis_database.orders.id
  keepers = {
    rotation = var.password_rotation
  }
}

# How eu replicates orders: at its replication endpoint (the host:port of its
# source URL), over TLS, trusting exactly the certificate that us presents,
# and compressed (level 3 of 1-6).
locals {
  orders_source = {
    address     = redis_source_url_password.orders.address
    encryption  = true
    server_cert = data.redis_cluster.us.proxy_cert
    compression = 3
  }
}

# --- eu: a read replica of orders -------------------------------------------

resource "redis_database" "orders_replica" {
  provider    = redis.eu
  name        = "orders-replica"
  memory_size = 64 * 1024 * 1024
}

resource "redis_replica_of" "orders_replica" {
  provider    = redis.eu
  database_id = redis_database.orders_replica.id

  # Named by host:port, without secrets: plans show which source changes.
  source = [local.orders_source]
  # The credentials, matched by host:port; stored in the state as sensitive.
  source_uris = [redis_source_url_password.orders.source_url]
}

# --- eu: inventory, many-to-one ---------------------------------------------

resource "redis_database" "inventory" {
  provider    = redis.eu
  name        = "inventory"
  memory_size = 64 * 1024 * 1024
}

# The source URL of orders, read at plan and apply time and never stored.
# Depending on the password resource makes Terraform read it after a
# rotation, not before.
ephemeral "redis_source_url" "orders" {
  provider    = redis.us
  database_id = redis_source_url_password.orders.database_id
}

locals {
  # The host:port of the open-source server is not a secret: show it in plans.
  legacy_address = nonsensitive(regex("^rediss?://(?:.*@)?([^@/]+)$", var.legacy_redis_url)[0])
}

resource "redis_replica_of" "inventory" {
  provider    = redis.eu
  database_id = redis_database.inventory.id

  source = [
    local.orders_source,
    # An open-source Redis: plain text, and it could not compress anyway.
    { address = local.legacy_address },
  ]
  # Write-only (Terraform 1.11+): these URLs never reach the plan or the state.
  # Terraform cannot see them change, so the version says when to send them.
  source_uris_wo         = [ephemeral.redis_source_url.orders.uri, var.legacy_redis_url]
  source_uris_wo_version = var.password_rotation
}

# --- outputs ------------------------------------------------------------------

output "endpoints" {
  description = "Where applications connect, as host:port."
  value = {
    orders         = redis_database.orders.endpoint
    orders_replica = redis_database.orders_replica.endpoint
    inventory      = redis_database.inventory.endpoint
  }
}

output "passwords" {
  description = "Application passwords: terraform output -json passwords"
  sensitive   = true
  value = {
    orders         = redis_database.orders.password
    orders_replica = redis_database.orders_replica.password
    inventory      = redis_database.inventory.password
  }
}

output "replication" {
  description = "Each destination's sources, with their status, lag and compression (refresh to update)."
  value = join("\n", flatten([
    for name, r in {
      orders_replica = redis_replica_of.orders_replica
      inventory      = redis_replica_of.inventory
      } : [
      for addr, s in r.source_status :
      format("%-15s <- %-21s %-11s lag %d ms%s%s%s", name, addr, s.status, s.lag,
        s.compression_active ? "  compressed" : "",
        s.compression_note == "" ? "" : "  (${s.compression_note})",
      s.last_error == "" ? "" : "  (${s.last_error})")
    ]
  ]))
}

# --- variables ----------------------------------------------------------------

variable "us_endpoint" {
  description = "REST API of the redis-replicad in us, https://host:port."
  type        = string
}

variable "us_password" {
  type      = string
  sensitive = true
}

variable "us_ca_cert" {
  description = "PEM of the CA of the us API (DATA_DIR/ca.pem)."
  type        = string
}

variable "eu_endpoint" {
  description = "REST API of the redis-replicad in eu, https://host:port."
  type        = string
}

variable "eu_password" {
  type      = string
  sensitive = true
}

variable "eu_ca_cert" {
  description = "PEM of the CA of the eu API (DATA_DIR/ca.pem)."
  type        = string
}

variable "legacy_redis_url" {
  description = "URL of an open-source redis-server to replicate into inventory: redis://[:password@]host:port."
  type        = string
  sensitive   = true
}

variable "password_rotation" {
  description = "Change it to regenerate the admin password of orders (and send the new URL to its destinations)."
  type        = number
  default     = 1
}
