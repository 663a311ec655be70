# The current source URL of database 3, without regenerating its password.
data "redis_source_url" "orders" {
  database_id = "3"
}

output "orders_source_address" {
  value = data.redis_source_url.orders.address
}

output "orders_source_url" {
  value     = data.redis_source_url.orders.uri
  sensitive = true
}
