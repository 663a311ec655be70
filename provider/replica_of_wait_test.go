package provider

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// slowProxy forwards TCP connections to a target, the target's answers at
// most rate bytes per second: an initial load that takes a known while.
type slowProxy struct {
	addr string
}

func startSlowProxy(t *testing.T, target string, rate int) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(u, c); u.Close() }()
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, rate/10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
						// The throttle, not a wait for an outcome: n
						// bytes take n/rate seconds.
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return &slowProxy{addr: ln.Addr().String()}
}

const testAccWaitConfig = `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" {}
variable "ca_cert" {}
variable "password" { sensitive = true }
variable "source_address" {}
variable "source_url" { sensitive = true }
variable "create_timeout" { default = "2m" }
variable "fail_after" { default = null }

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "dst" {
  name        = "wait-dst"
  memory_size = 268435456
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = var.source_address }]
  source_uris = [var.source_url]
  fail_after  = var.fail_after
  timeouts {
    create = var.create_timeout
    update = "5m"
  }
}

output "dst_id" {
  value = redis_database.dst.id
}
`

// TestAccReplicaOf_createTimeoutResumes makes a destination whose initial
// load outlasts timeouts.create: the apply ends with a warning, the
// resource is kept (not tainted), its progress is logged as a percentage,
// the next plan is an update that waits, and the next apply waits for the
// same load to complete, without a flush or a reload.
func TestAccReplicaOf_createTimeoutResumes(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-wait-secret", "--enable-debug-command", "yes", "--rdbcompression", "no", "--repl-diskless-sync", "no")
	ctx := testAccContext(t)
	// About 4 MB, loaded through a proxy that lets 400 kB/s through.
	require.NoError(t, legacy.Client().Do(ctx, "DEBUG", "POPULATE", 40000, "key", 100).Err())
	proxy := startSlowProxy(t, legacy.Addr(), 400<<10)
	cli := newTestAccCLI(t, "TF_LOG=INFO", "TF_VAR_create_timeout=3s",
		"TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_source_address="+proxy.addr, "TF_VAR_source_url=redis://:legacy-wait-secret@"+proxy.addr)
	cli.write("main.tf", testAccWaitConfig)

	_, code := cli.run("apply", "-auto-approve", "-no-color")
	all := flat(cli.all.String())
	require.Equal(t, 0, code, "the apply whose create timed out failed:\n%s", tail(cli.all.String(), 6000))
	assert.Contains(t, all, "Warning: The Replica Of of database")
	assert.Contains(t, all, "is not in sync yet")
	assert.Contains(t, all, "not tainted")

	uid, err := strconv.Atoi(strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	require.NoError(t, err)
	db, err := e.client.GetDatabase(ctx, uid)
	require.NoError(t, err)
	gen := db.ReplicaGeneration
	require.NotEqual(t, "in-sync", db.ReplicaSyncStatus, "the load was over before the timeout: make it slower")

	state := cli.mustRun(0, "state", "show", "-no-color", "redis_replica_of.dst")
	assert.NotContains(t, state, "tainted")

	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, plan, "redis_replica_of.dst will be updated in-place")
	assert.Contains(t, plan, "status = \"syncing\" -> (known after apply)")
	assert.NotContains(t, plan, "must be replaced")
	assert.NotContains(t, plan, "flush")

	before := cli.all.Len()
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	assert.Regexp(t, regexp.MustCompile(`waiting for the Replica Of sync:.*progress="\d+\.\d% of the initial load \(\d+ of \d+ bytes\)"`),
		cli.all.String()[before:], "the progress of the load is not logged as a percentage")
	db, err = e.client.GetDatabase(ctx, uid)
	require.NoError(t, err)
	assert.Equal(t, "in-sync", db.ReplicaSyncStatus)
	assert.Equal(t, gen, db.ReplicaGeneration, "the destination was flushed and loaded again")
	dst := redisClientFor(t, db.Endpoint.Host, db.Endpoint.Port, db.AuthenticationRedisPass)
	n, err := dst.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 40000, n, "keys at the destination")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
}

// TestAccReplicaOf_failAfter makes a destination of a source that nothing
// serves: the apply fails once the source has been failing for fail_after,
// long before the timeout, naming the source and its error, and the logs
// show its status and last error while waiting.
func TestAccReplicaOf_failAfter(t *testing.T) {
	e := testAccStart(t)
	nothing := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	cli := newTestAccCLI(t, "TF_LOG=INFO",
		"TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_source_address="+nothing, "TF_VAR_source_url=redis://:nothing-secret@"+nothing)
	cli.write("main.tf", testAccWaitConfig)
	start := time.Now()
	_, code := cli.run("apply", "-auto-approve", "-no-color", "-var", "fail_after=4s", "-var", "create_timeout=3m")
	took := time.Since(start)
	all := flat(cli.all.String())
	require.Equal(t, 1, code, "the apply of a source that nothing serves:\n%s", tail(cli.all.String(), 4000))
	assert.Less(t, took, 2*time.Minute, "the apply waited for the timeout")
	assert.Regexp(t, regexp.MustCompile(`every source has been failing for 4s \(fail_after\): source `+
		regexp.QuoteMeta(nothing)+` is \S+, last error: .*(refused|connect)`), all)
	assert.Regexp(t, regexp.MustCompile(`waiting for the Replica Of sync.*last_error=.*source=`+regexp.QuoteMeta(nothing)+
		`|waiting for the Replica Of sync.*source=`+regexp.QuoteMeta(nothing)+`.*last_error=`), all)
	assert.NotContains(t, all, "nothing-secret")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// redisClientFor connects to a database of the service.
func redisClientFor(t *testing.T, host string, port int, password string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Password: password, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAccReplicaOf_serviceRestartDuringWait restarts the service while a
// create waits for the initial load: the provider retries the API until it
// answers again, and the apply ends once the destination is in sync.
func TestAccReplicaOf_serviceRestartDuringWait(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-restart-secret", "--enable-debug-command", "yes",
		"--rdbcompression", "no", "--repl-diskless-sync", "no")
	ctx := testAccContext(t)
	require.NoError(t, legacy.Client().Do(ctx, "DEBUG", "POPULATE", 40000, "key", 100).Err())
	proxy := startSlowProxy(t, legacy.Addr(), 400<<10)
	logPath := filepath.Join(t.TempDir(), "terraform.log")
	cli := newTestAccCLI(t, "TF_LOG=INFO", "TF_LOG_PATH="+logPath, "TF_VAR_create_timeout=3m",
		"TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_source_address="+proxy.addr, "TF_VAR_source_url=redis://:legacy-restart-secret@"+proxy.addr)
	cli.write("main.tf", testAccWaitConfig)

	bin := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if bin == "" {
		bin = "terraform"
	}
	apply := exec.Command(bin, "-chdir="+cli.dir, "apply", "-auto-approve", "-no-color")
	apply.Env = cli.env
	var out strings.Builder
	apply.Stdout, apply.Stderr = &out, &out
	require.NoError(t, apply.Start())
	done := make(chan error, 1)
	go func() { done <- apply.Wait() }()
	logged := func(what string) func(context.Context) error {
		return func(context.Context) error {
			data, _ := os.ReadFile(logPath)
			if !strings.Contains(string(data), what) {
				return fmt.Errorf("not logged yet: %q", what)
			}
			return nil
		}
	}
	require.NoError(t, testAccEventually(2*time.Minute, "the wait starts", logged("waiting for the Replica Of sync")))
	e.inst.Stop(t)
	require.NoError(t, testAccEventually(2*time.Minute, "the provider meets the outage", logged("cannot be reached")))
	e.inst.StartAgain(t)

	select {
	case err := <-done:
		require.NoError(t, err, "the apply failed:\n%s", out.String())
	case <-time.After(4 * time.Minute):
		t.Fatalf("the apply did not end:\n%s", out.String())
	}
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(data), "the redis-replicad API answers again")
	assert.NotContains(t, out.String(), "Warning: The Replica Of of database", "the apply did not wait for the sync")
	uid, err := strconv.Atoi(strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	require.NoError(t, err)
	db, err := e.client.GetDatabase(ctx, uid)
	require.NoError(t, err)
	assert.Equal(t, "in-sync", db.ReplicaSyncStatus)
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
}
