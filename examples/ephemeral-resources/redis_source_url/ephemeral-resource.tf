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
  # when it changes: bump the version to send the URL again.
  source_uris_wo         = [ephemeral.redis_source_url.orders.uri]
  source_uris_wo_version = 1
}
