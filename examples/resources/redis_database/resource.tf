# A 256 MiB database on a port that the service picks, with a generated
# password.
resource "redis_database" "cache" {
  name        = "cache"
  memory_size = 256 * 1024 * 1024
}

# A 1 GiB database on a fixed port, with a password of your own.
resource "redis_database" "sessions" {
  name        = "sessions"
  memory_size = 1024 * 1024 * 1024
  port        = 12100
  password    = var.sessions_password

  timeouts {
    create = "5m"
  }
}

variable "sessions_password" {
  type      = string
  sensitive = true
}

output "cache_endpoint" {
  value = redis_database.cache.endpoint
}

output "cache_password" {
  value     = redis_database.cache.password
  sensitive = true
}

# Replication only over TLS, and only for the syncers of another location
# (its syncer_cert, from the redis_cluster data source of its provider).
# Destinations replicate it from its replication_endpoint.
provider "redis" {
  alias    = "eu"
  endpoint = "https://replicad-eu.example.com:9443"
}

data "redis_cluster" "eu" {
  provider = redis.eu
}

resource "redis_database" "orders" {
  name                = "orders"
  memory_size         = 256 * 1024 * 1024
  tls_mode            = "replica_ssl"
  client_certificates = [data.redis_cluster.eu.syncer_cert]
}

output "orders_replication_endpoint" {
  value = redis_database.orders.replication_endpoint
}

# A Redis Cluster of 3 shards, each with a replica: 1 GiB split across the
# shards. Applications use a cluster-aware client starting from any of its
# endpoints. shards_count, replication and oss_cluster cannot change later.
resource "redis_database" "catalog" {
  name         = "catalog"
  memory_size  = 1024 * 1024 * 1024
  shards_count = 3
  replication  = true
}

output "catalog_endpoints" {
  value = redis_database.catalog.endpoints
}
