resource "redis_database" "orders" {
  name        = "orders"
  memory_size = 256 * 1024 * 1024
}

# Regenerates the admin password of orders. Changing the keeper regenerates
# it again: destinations that still use the old URL then stop with an
# authentication error until they get the new one, which Terraform gives them
# in the same apply when they use source_url.
resource "redis_source_url_password" "orders" {
  database_id = redis_database.orders.id
  keepers = {
    rotation = "2025-10"
  }
}

output "orders_source_address" {
  value = redis_source_url_password.orders.address
}

output "orders_source_url" {
  value     = redis_source_url_password.orders.source_url
  sensitive = true
}
