# Two locations, one provider block (alias) each.
provider "redis" {
  alias    = "us"
  endpoint = "https://replicad-us.example.com:9443"
  password = var.us_password
}

provider "redis" {
  alias    = "eu"
  endpoint = "https://replicad-eu.example.com:9443"
  password = var.eu_password
}

# The source, in the US, and a source URL with a fresh admin password.
resource "redis_database" "orders" {
  provider    = redis.us
  name        = "orders"
  memory_size = 256 * 1024 * 1024
}

resource "redis_source_url_password" "orders" {
  provider    = redis.us
  database_id = redis_database.orders.id
}

# The destination, in Europe: a read-only copy of orders, kept up to date.
resource "redis_database" "orders_eu" {
  provider    = redis.eu
  name        = "orders-eu"
  memory_size = 256 * 1024 * 1024
}

resource "redis_replica_of" "orders_eu" {
  provider    = redis.eu
  database_id = redis_database.orders_eu.id

  # Sources are named by host:port, with no secret, so that a plan shows
  # which one is added, removed or changed.
  source = [
    { address = redis_source_url_password.orders.address, compression = 3 },
    { address = "10.0.0.5:6379" }, # an open-source redis-server without a password
    # Any node of an open-source Redis Cluster: each of its shards is
    # replicated, here from one of the shard's replicas.
    { address = "10.0.0.7:7000", read_from = "replica" },
  ]

  # The credentials, matched to the sources by host:port.
  source_uris = [redis_source_url_password.orders.source_url]

  timeouts {
    create = "30m" # the initial load of a large dataset takes time
  }
}

# A plan shows what Terraform would change, not whether the replication
# works: a source that is down leaves `plan -detailed-exitcode` at 0. This
# check fails (a warning in the plan, "fail" in its JSON) when a source of the
# destination is not in sync; see "Catching a destination out of sync in CI".
check "orders_eu_in_sync" {
  assert {
    condition = alltrue([for s in values(redis_replica_of.orders_eu.source_status) : s.status == "in-sync"])
    error_message = join("; ", [
      for addr, s in redis_replica_of.orders_eu.source_status :
      "${addr} is ${s.status}: ${s.last_error}" if s.status != "in-sync"
    ])
  }
}

# No output reads status or source_status here: an output whose value
# changes is a change for `plan -detailed-exitcode` ("Changes to Outputs",
# exit 2), so such an output would turn a source that goes down into drift.
# Read the status with `terraform state show` or the check above instead.

variable "us_password" {
  type      = string
  sensitive = true
}

variable "eu_password" {
  type      = string
  sensitive = true
}
