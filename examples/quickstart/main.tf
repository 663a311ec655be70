# Quickstart: one Redis database on a running redis-replicad.
#
# The provider block is empty: its settings come from the environment.
#
#   export REDIS_REPLICAD_ENDPOINT=https://127.0.0.1:9443
#   export REDIS_REPLICAD_PASSWORD="$(cat DATA_DIR/admin-password)"
#   export REDIS_REPLICAD_CA_CERT="$(cat DATA_DIR/ca.pem)"
#   terraform apply
#
# With the provider built from this repository (make build, and the
# dev_overrides of the README), there is nothing to install: no terraform
# init. With a released provider, run terraform init first.
#   redis-cli -h "$(terraform output -raw endpoint | cut -d: -f1)" \
#             -p "$(terraform output -raw endpoint | cut -d: -f2)" \
#             -a "$(terraform output -raw password)" PING

terraform {
  required_version = ">= 1.11"
  required_providers {
    redis = {
      source = "replicad/redis"
    }
  }
}

provider "redis" {}

resource "redis_database" "quickstart" {
  name        = "quickstart"
  memory_size = 64 * 1024 * 1024 # 64 MiB
}

output "endpoint" {
  description = "Where applications connect, as host:port."
  value       = redis_database.quickstart.endpoint
}

output "password" {
  description = "Password of the database's default user: terraform output -raw password"
  value       = redis_database.quickstart.password
  sensitive   = true
}
