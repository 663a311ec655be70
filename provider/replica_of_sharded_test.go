package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

const testAccShardedDestinationConfig = `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

provider "redis" {}

variable "src_address" {}
variable "src_url" { sensitive = true }

resource "redis_database" "dst" {
  name         = "sharded-dst"
  memory_size  = 100663296
  shards_count = 3
  replication  = true
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = var.src_address }]
  source_uris = [var.src_url]
}

output "endpoints" { value = redis_database.dst.endpoints }
output "password" {
  value     = redis_database.dst.password
  sensitive = true
}
output "status" { value = redis_replica_of.dst.source_status[var.src_address].status }
`

// TestAccReplicaOf_shardedDestination makes a database of 3 shards (a
// replica each) the Replica Of a plain Redis with the real terraform CLI:
// every key of the source reaches the masters of the destination, key by
// key, writes after the apply follow, and plan -detailed-exitcode finds
// nothing to change.
func TestAccReplicaOf_shardedDestination(t *testing.T) {
	e := testAccStart(t)
	src := redistest.Start(t, "--requirepass", "sharded-src-secret-"+strconv.Itoa(redistest.FreePort(t)))
	sc := src.Client()
	ctx := context.Background()
	pipe := sc.Pipeline()
	for i := range 3000 {
		k := fmt.Sprint("acc:", i)
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
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	cli := newTestAccCLI(t, EnvEndpoint+"="+e.inst.URL, EnvPassword+"="+e.inst.Password, EnvCACert+"="+e.inst.CACert,
		"TF_VAR_src_address="+src.Addr(), "TF_VAR_src_url="+src.URL())
	cli.write("main.tf", testAccShardedDestinationConfig)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	var endpoints []string
	if err := json.Unmarshal([]byte(cli.mustRun(0, "output", "-json", "endpoints")), &endpoints); err != nil {
		t.Fatal(err)
	}
	if len(endpoints) != 6 {
		t.Fatalf("endpoints: %v, want 6 (3 masters and their replicas)", endpoints)
	}
	password := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "password"))
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: endpoints, Password: password, MaxRedirects: 16})
	defer cc.Close()
	equal := func(what string) {
		t.Helper()
		err := testAccEventually(2*time.Minute, what, func(ctx context.Context) error {
			var mu sync.Mutex
			var masters []*redis.Client
			if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				mu.Lock()
				defer mu.Unlock()
				masters = append(masters, m)
				return nil
			}); err != nil {
				return err
			}
			if len(masters) != 3 {
				return fmt.Errorf("%d masters, want 3", len(masters))
			}
			return redistest.DiffMasters(ctx, masters, "replicad:", sc)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	equal("every key of the source at the sharded destination")
	if got := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "status")); got != "in-sync" {
		t.Errorf("source_status says %q after the apply, want in-sync", got)
	}
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// Writes after the apply follow, across the slots, in MULTIs.
	for i := range 200 {
		tx := sc.TxPipeline()
		tx.Incr(ctx, fmt.Sprint("ctr:", i%17))
		tx.Del(ctx, fmt.Sprint("acc:", i))
		if _, err := tx.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	equal("the writes after the apply at the sharded destination")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
