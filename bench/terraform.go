package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Terraform is row 5.
type Terraform struct {
	Databases    int       `json:"redis_database"`
	ReplicaOf    int       `json:"redis_replica_of"`
	Apply        float64   `json:"apply_seconds"`
	Plans        []float64 `json:"no_change_plan_seconds"`
	Plan         float64   `json:"no_change_plan_median_seconds"`
	PlanExitCode int       `json:"plan_exit_code"`
	Note         string    `json:"note,omitempty"`
}

const tfConfig = `terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" { type = string }
variable "password" {
  type      = string
  sensitive = true
}
variable "ca_cert" { type = string }
variable "source_address" { type = string }
variable "source_uri" {
  type      = string
  sensitive = true
}

provider "redis" {
  endpoint = var.endpoint
  username = "admin"
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "db" {
  count       = %d
  name        = "tf-${count.index}"
  memory_size = 64 * 1024 * 1024
}
`

const tfReplicaOf = `
# Every database is a Replica Of one open-source redis-server.
resource "redis_replica_of" "db" {
  count       = %d
  database_id = redis_database.db[count.index].id
  source      = [{ address = var.source_address }]
  source_uris = [var.source_uri]
}
`

func (b *runner) terraform(ctx context.Context) error {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		return errors.New("terraform is not on PATH")
	}
	n := b.cfg.TFDatabases
	res := Terraform{Databases: n, ReplicaOf: n}
	if !b.providerHasReplicaOf() {
		res.ReplicaOf = 0
		res.Note = "the provider has no redis_replica_of yet: databases only"
	}
	src, err := b.startServer(ctx, "tf-source", sourceArgs...)
	if err != nil {
		return err
	}
	defer b.stopServer(src)
	if _, err := load(ctx, src.addr(), src.password, 1, func(int) gen { return mixedGen(0, 1000) }); err != nil {
		return err
	}

	dir := filepath.Join(b.runDir, "terraform")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(tfConfig, n)
	if res.ReplicaOf > 0 {
		conf += fmt.Sprintf(tfReplicaOf, n)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(conf), 0o600); err != nil {
		return err
	}
	rc := filepath.Join(dir, "terraformrc")
	bin := filepath.Join(b.cfg.OutDir, "bin")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides { \"replicad/redis\" = %q }\n  direct {}\n}\n", bin)), 0o600); err != nil {
		return err
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_VAR_endpoint="+b.svc.url, "TF_VAR_password="+b.svc.password, "TF_VAR_ca_cert="+string(b.svc.caPEM),
		"TF_VAR_source_address="+src.addr(), "TF_VAR_source_uri="+src.url())
	run := func(name string, args ...string) (time.Duration, int, error) {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(tctx, tf, append([]string{"-chdir=" + dir}, args...)...)
		cmd.Env = env
		log, err := os.Create(filepath.Join(b.runDir, "terraform-"+name+".log"))
		if err != nil {
			return 0, 0, err
		}
		defer log.Close()
		cmd.Stdout, cmd.Stderr = log, log
		began := time.Now()
		err = cmd.Run()
		d := time.Since(began)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code, err = ee.ExitCode(), nil
		}
		return d, code, err
	}
	what := fmt.Sprintf("%d redis_database", n)
	if res.ReplicaOf > 0 {
		what += fmt.Sprintf(" + %d redis_replica_of", n)
	}
	b.logf("terraform: apply of %s", what)
	d, code, err := run("apply", "apply", "-auto-approve", "-no-color", "-parallelism=10")
	if err != nil || code != 0 {
		return fmt.Errorf("terraform apply: exit %d %v (log: %s)", code, err, filepath.Join(b.runDir, "terraform-apply.log"))
	}
	res.Apply = d.Seconds()
	b.logf("terraform: apply took %.1fs", res.Apply)
	for i := range 3 {
		d, code, err := run(fmt.Sprintf("plan-%d", i), "plan", "-detailed-exitcode", "-no-color", "-parallelism=10")
		if err != nil {
			return fmt.Errorf("terraform plan: %w", err)
		}
		res.Plans = append(res.Plans, d.Seconds())
		res.PlanExitCode = max(res.PlanExitCode, code)
	}
	res.Plan = median(res.Plans)
	b.logf("terraform: no-change plan took %.2fs (median of %v, exit code %d)", res.Plan, res.Plans, res.PlanExitCode)
	b.res.Terraform = &res
	return nil
}

// providerHasReplicaOf says whether the provider in this tree offers
// redis_replica_of (it was written alongside the harness).
func (b *runner) providerHasReplicaOf() bool {
	files, _ := filepath.Glob(filepath.Join(b.cfg.Root, "provider", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), `"_replica_of"`) {
			return true
		}
	}
	return false
}
