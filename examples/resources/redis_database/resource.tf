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
