package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// testAccShardedSourceConfig: a sharded database of one instance ("us",
// TLS required for replication, only eu's syncer certificate admitted) is
// the source of a sharded database of another ("eu"), through its source
// URL alone, encrypted and compressed.
const testAccShardedSourceConfig = `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

provider "redis" {
  alias    = "us"
  endpoint = var.us_endpoint
  password = var.us_password
  ca_cert  = var.us_ca_cert
}

provider "redis" {
  alias    = "eu"
  endpoint = var.eu_endpoint
  password = var.eu_password
  ca_cert  = var.eu_ca_cert
}

variable "us_endpoint" {}
variable "us_ca_cert" {}
variable "eu_endpoint" {}
variable "eu_ca_cert" {}
variable "us_password" { sensitive = true }
variable "eu_password" { sensitive = true }
variable "with_replica" { default = false }

data "redis_cluster" "us" { provider = redis.us }
data "redis_cluster" "eu" { provider = redis.eu }

resource "redis_database" "src" {
  provider            = redis.us
  name                = "sharded-src"
  memory_size         = 100663296
  shards_count        = 3
  replication         = true
  tls_mode            = "replica_ssl"
  client_certificates = [data.redis_cluster.eu.syncer_cert]
}

resource "redis_source_url_password" "src" {
  provider    = redis.us
  database_id = redis_database.src.id
}

resource "redis_database" "dst" {
  provider     = redis.eu
  name         = "sharded-dst"
  memory_size  = 100663296
  shards_count = 3
  replication  = true
}

resource "redis_replica_of" "dst" {
  count       = var.with_replica ? 1 : 0
  provider    = redis.eu
  database_id = redis_database.dst.id
  source = [{
    address     = redis_database.src.replication_endpoint
    encryption  = true
    server_cert = data.redis_cluster.us.proxy_cert
    compression = 3
  }]
  source_uris = [redis_source_url_password.src.source_url]
}

output "src_endpoints" { value = redis_database.src.endpoints }
output "dst_endpoints" { value = redis_database.dst.endpoints }
output "src_password" {
  value     = redis_database.src.password
  sensitive = true
}
output "dst_password" {
  value     = redis_database.dst.password
  sensitive = true
}
output "status" {
  value = var.with_replica ? redis_replica_of.dst[0].source_status[redis_database.src.replication_endpoint].status : ""
}
output "shards" {
  value = var.with_replica ? length(redis_replica_of.dst[0].source_status[redis_database.src.replication_endpoint].shards) : 0
}
`

// TestAccReplicaOf_shardedSource makes a sharded database (3 shards, a
// replica each) of one instance the source of a sharded database of
// another, with the real terraform CLI: the data written before the apply
// and after it reaches the destination's masters key by key, the status
// has one entry per shard, and plan -detailed-exitcode finds nothing to
// change.
func TestAccReplicaOf_shardedSource(t *testing.T) {
	r := testAccStartTwo(t)
	cli := newTestAccCLI(t,
		"TF_VAR_us_endpoint="+r.a.inst.URL, "TF_VAR_us_password="+r.a.inst.Password, "TF_VAR_us_ca_cert="+r.a.inst.CACert,
		"TF_VAR_eu_endpoint="+r.b.inst.URL, "TF_VAR_eu_password="+r.b.inst.Password, "TF_VAR_eu_ca_cert="+r.b.inst.CACert)
	cli.write("main.tf", testAccShardedSourceConfig)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	clusterOf := func(db string) *redis.ClusterClient {
		var endpoints []string
		if err := json.Unmarshal([]byte(cli.mustRun(0, "output", "-json", db+"_endpoints")), &endpoints); err != nil {
			t.Fatal(err)
		}
		if len(endpoints) != 6 {
			t.Fatalf("%s endpoints: %v, want 6 (3 masters and their replicas)", db, endpoints)
		}
		password := strings.TrimSpace(cli.mustRun(0, "output", "-raw", db+"_password"))
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: endpoints, Password: password, MaxRedirects: 16})
		t.Cleanup(func() { c.Close() })
		return c
	}
	src, dst := clusterOf("src"), clusterOf("dst")
	ctx := context.Background()
	write := func(prefix string, n int) {
		t.Helper()
		pipe := src.Pipeline()
		for i := range n {
			k := fmt.Sprint(prefix, i)
			switch i % 4 {
			case 0:
				pipe.Set(ctx, k, i, 0)
			case 1:
				pipe.HSet(ctx, k, "f", i)
			case 2:
				pipe.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: "m"})
			case 3:
				pipe.RPush(ctx, k, "a", i)
				pipe.Expire(ctx, k, time.Hour)
			}
			pipe.Incr(ctx, fmt.Sprint("ctr:", i%17))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	masters := func(ctx context.Context, c *redis.ClusterClient) ([]*redis.Client, error) {
		var mu sync.Mutex
		var out []*redis.Client
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			out = append(out, m)
			return nil
		})
		if err == nil && len(out) != 3 {
			err = fmt.Errorf("%d masters, want 3", len(out))
		}
		return out, err
	}
	equal := func(what string) {
		t.Helper()
		err := testAccEventually(2*time.Minute, what, func(ctx context.Context) error {
			sm, err := masters(ctx, src)
			if err != nil {
				return err
			}
			dm, err := masters(ctx, dst)
			if err != nil {
				return err
			}
			return redistest.DiffMasters(ctx, dm, "replicad:", sm...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	write("acc:", 3000)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "with_replica=true")
	if got := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "status")); got != "in-sync" {
		t.Errorf("source_status says %q after the apply, want in-sync", got)
	}
	if got := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "shards")); got != "3" {
		t.Errorf("source_status has %s shards, want 3", got)
	}
	equal("every key of the sharded source at the sharded destination")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "with_replica=true")

	write("later:", 500)
	equal("the writes after the apply at the sharded destination")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "with_replica=true")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "with_replica=true")
}
