# Two locations, one provider block (alias) each.
provider "redis" {
  alias    = "us"
  endpoint = "https://replicad-us.example.com:9443"
}

provider "redis" {
  alias    = "eu"
  endpoint = "https://replicad-eu.example.com:9443"
}

# Sources in the US, destinations in Europe.
resource "redis_database" "orders" {
  provider    = redis.us
  name        = "orders"
  memory_size = 256 * 1024 * 1024
}

resource "redis_database" "orders_eu" {
  provider    = redis.eu
  name        = "orders-eu"
  memory_size = 256 * 1024 * 1024
}

resource "redis_database" "inventory" {
  provider    = redis.us
  name        = "inventory"
  memory_size = 256 * 1024 * 1024
}

resource "redis_database" "inventory_eu" {
  provider    = redis.eu
  name        = "inventory-eu"
  memory_size = 256 * 1024 * 1024
}

# Terraform 1.11+: the source URL of orders, read from the US location at
# every plan and apply, and never stored in the plan or the state.
ephemeral "redis_source_url" "orders" {
  provider    = redis.us
  database_id = redis_database.orders.id
}

resource "redis_replica_of" "orders_eu" {
  provider    = redis.eu
  database_id = redis_database.orders_eu.id

  source = [{ address = redis_database.orders.replication_endpoint }]

  # An ephemeral value only fits a write-only argument. Terraform cannot see
  # when it changes: bump the version to send the URL again (the provider
  # also sends URLs that differ from those it sent last, with a warning).
  source_uris_wo         = [ephemeral.redis_source_url.orders.uri]
  source_uris_wo_version = 1
}

# With a password that this configuration rotates: the version follows the
# password, and the URL is read after the rotation, in the same apply.
resource "redis_source_url_password" "inventory" {
  provider    = redis.us
  database_id = redis_database.inventory.id
  keepers     = { rotation = "2025-10" }
}

ephemeral "redis_source_url" "inventory" {
  provider    = redis.us
  database_id = redis_source_url_password.inventory.database_id
  depends_on  = [redis_source_url_password.inventory]
}

resource "redis_replica_of" "inventory_eu" {
  provider    = redis.eu
  database_id = redis_database.inventory_eu.id

  source                 = [{ address = redis_source_url_password.inventory.address }]
  source_uris_wo         = [ephemeral.redis_source_url.inventory.uri]
  source_uris_wo_version = redis_source_url_password.inventory.password_version
}
