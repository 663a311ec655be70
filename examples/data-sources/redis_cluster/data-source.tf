data "redis_cluster" "this" {}

output "cluster" {
  value = "${data.redis_cluster.this.name} runs redis-replicad ${data.redis_cluster.this.version}"
}

# The CA certificate, for instance to configure another provider block or a
# client that talks to the REST API.
output "ca_cert" {
  value = data.redis_cluster.this.ca_cert
}
