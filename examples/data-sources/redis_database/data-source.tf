# Select a database by name...
data "redis_database" "cache" {
  name = "cache"
}

# ...or by id.
data "redis_database" "by_id" {
  id = "3"
}

output "cache_endpoint" {
  value = data.redis_database.cache.endpoint
}
