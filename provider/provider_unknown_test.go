package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAccProvider_unknownEndpoint: an endpoint that a resource of the same
// plan computes is an error that names it and says what works. The
// environment variable is not read for a setting that the provider block
// gives, even as an unknown value: the error did say to use it.
func TestAccProvider_unknownEndpoint(t *testing.T) {
	cli := newTestAccCLI(t, "REDIS_REPLICAD_ENDPOINT=https://127.0.0.1:1", "REDIS_REPLICAD_PASSWORD=unused")
	cli.write("main.tf", `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

resource "terraform_data" "instance" {
  input = "https://127.0.0.1:1"
}

provider "redis" {
  endpoint = terraform_data.instance.output
}

resource "redis_database" "db" {
  name        = "db"
  memory_size = 8388608
}
`)
	cli.mustRun(1, "plan", "-no-color")
	out := flat(cli.all.String())
	assert.Contains(t, out, "Unknown redis-replicad endpoint")
	assert.Contains(t, out, "leave it out of the provider block and set the REDIS_REPLICAD_ENDPOINT environment variable (which the provider reads only then)")
	assert.Contains(t, out, "terraform apply -target=")
}
