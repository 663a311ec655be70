package provider

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The tests of this file run the terraform CLI as a user does, on the
// provider binary built from this module: terraform-plugin-testing does not
// expose what terraform prints, and serves the provider in process, where
// provider aliases share one server.

var (
	providerBinOnce sync.Once
	providerBinDir  string
	providerBinErr  error
)

// testAccProviderBinary builds terraform-provider-redis once per test
// binary and returns the directory that holds it.
func testAccProviderBinary(t *testing.T) string {
	t.Helper()
	providerBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "terraform-provider-redis-bin")
		if err != nil {
			providerBinErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "terraform-provider-redis"), ".")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			providerBinErr = errors.New(err.Error() + "\n" + string(out))
			return
		}
		providerBinDir = dir
	})
	if providerBinErr != nil {
		t.Fatalf("build the provider: %v", providerBinErr)
	}
	return providerBinDir
}

// testAccCLI is a working directory where the terraform CLI runs with the
// provider binary (dev_overrides), keeping everything it prints.
type testAccCLI struct {
	t   *testing.T
	dir string
	env []string
	// all is everything terraform printed, stdout and stderr, logs included.
	all bytes.Buffer
}

func newTestAccCLI(t *testing.T, env ...string) *testAccCLI {
	t.Helper()
	testAccRequire(t)
	bin := testAccProviderBinary(t)
	home := t.TempDir()
	rc := filepath.Join(home, "terraformrc")
	if err := os.WriteFile(rc, []byte(`provider_installation {
  dev_overrides { "replicad/redis" = "`+bin+`" }
  direct {}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &testAccCLI{t: t, dir: t.TempDir()}
	c.env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	c.env = append(c.env, env...)
	return c
}

// write puts a file in the working directory.
func (c *testAccCLI) write(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// run runs terraform with args and returns its stdout and exit code; stdout
// and stderr are also kept in c.all.
func (c *testAccCLI) run(args ...string) (string, int) {
	c.t.Helper()
	return c.runInput("", args...)
}

// runInput is run with stdin, for the answers to terraform's prompts.
func (c *testAccCLI) runInput(stdin string, args ...string) (string, int) {
	c.t.Helper()
	bin := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if bin == "" {
		bin = "terraform"
	}
	cmd := exec.Command(bin, append([]string{"-chdir=" + c.dir}, args...)...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	c.all.Write(stdout.Bytes())
	c.all.Write(stderr.Bytes())
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), code
}

// mustRun runs terraform and fails the test unless it exits with want.
func (c *testAccCLI) mustRun(want int, args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != want {
		c.t.Fatalf("terraform %s exited with %d, want %d:\n%s", strings.Join(args, " "), code, want, tail(c.all.String(), 8000))
	}
	return out
}

// checkNoSecrets fails the test when any secret, in any of its encodings,
// appears in what terraform printed.
func (c *testAccCLI) checkNoSecrets(secrets map[string]string) {
	c.t.Helper()
	all := c.all.String()
	for name, secret := range secrets {
		if len(secret) < 6 {
			c.t.Fatalf("the secret %s is too short to search for", name)
		}
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			if i := strings.Index(all, form); i >= 0 {
				lo, hi := max(0, i-300), min(len(all), i+len(form)+100)
				c.t.Errorf("the %s appears in terraform's output (%d bytes searched):\n...%s...",
					name, len(all), strings.ReplaceAll(all[lo:hi], form, "<"+name+">"))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// testAccCLIProviderConfig is the start of a configuration run by
// testAccCLI: the provider from the local build, configured from the
// TF_VAR_endpoint, TF_VAR_password and TF_VAR_ca_cert its tests set.
const testAccCLIProviderConfig = `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" {}
variable "ca_cert" {}
variable "password" { sensitive = true }

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}
`
