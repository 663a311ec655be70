package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/replicad/terraform-provider-redis/internal/client"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// testAccProtoV6ProviderFactories serves the provider in process to the
// terraform binary that the acceptance tests run.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"redis": providerserver.NewProtocol6WithError(New("test")()),
}

// minTerraformVersion is the oldest terraform the acceptance tests support.
var minTerraformVersion = [3]int{1, 11, 0}

// testAccPreCheck fails the test when no suitable terraform binary is
// installed. It never skips: an acceptance run without terraform tests nothing.
func testAccPreCheck(t *testing.T) {
	t.Helper()
	bin := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("terraform"); err != nil {
			t.Fatalf("the acceptance tests need the terraform CLI, which is not on PATH: install terraform 1.11+ " +
				"(or set TF_ACC_TERRAFORM_PATH to its path)")
		}
	}
	out, err := exec.Command(bin, "version", "-json").Output()
	if err != nil {
		t.Fatalf("%s version -json: %v: install terraform 1.11+", bin, err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version -json: %v: install terraform 1.11+", bin, err)
	}
	if !versionAtLeast(v.Version, minTerraformVersion) {
		t.Fatalf("%s is terraform %s: install terraform 1.11+", bin, v.Version)
	}
}

// versionAtLeast compares a "major.minor.patch[-suffix]" version with min.
func versionAtLeast(version string, min [3]int) bool {
	version, _, _ = strings.Cut(version, "-")
	parts := strings.SplitN(version, ".", 3)
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			var err error
			if n, err = strconv.Atoi(parts[i]); err != nil {
				return false
			}
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

// testAccRequire skips the test when TF_ACC is not set, as resource.Test
// does, and otherwise fails it when terraform is missing.
func testAccRequire(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance tests are run only when TF_ACC is set")
	}
	testAccPreCheck(t)
}

// testAccEnv is one redis-replicad instance started for an acceptance test,
// with a client of its API for checks and out-of-band changes.
type testAccEnv struct {
	inst   *servicetest.Instance
	client *client.Client
}

// testAccStart starts redis-replicad for an acceptance test. Like
// resource.Test, it skips the test when TF_ACC is not set, before starting
// anything.
func testAccStart(t *testing.T) *testAccEnv {
	t.Helper()
	return testAccStartWith(t, nil)
}

// testAccStartWith is testAccStart with changes to the instance's
// configuration (nil for none).
func testAccStartWith(t *testing.T, configure func(*app.Config)) *testAccEnv {
	t.Helper()
	testAccRequire(t)
	inst := servicetest.StartWith(t, configure)
	c, err := client.New(client.Config{
		Endpoint: inst.URL, Username: inst.Username, Password: inst.Password, CACert: inst.CACert,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testAccEnv{inst: inst, client: c}
}

// testAccShortGrace gives regenerated admin passwords a grace period of a
// few seconds, for tests of what a destination that keeps the old password
// experiences once it ends.
func testAccShortGrace(c *app.Config) { c.AdminPasswordGrace = 3 * time.Second }

// providerConfig is the provider block that points at the instance.
func (e *testAccEnv) providerConfig() string {
	return fmt.Sprintf(`
provider "redis" {
  endpoint = %s
  username = %s
  password = %s
  ca_cert  = %s
}
`, hclString(e.inst.URL), hclString(e.inst.Username), hclString(e.inst.Password), hclString(e.inst.CACert))
}

// hclString quotes s as an HCL string literal, template sequences included.
func hclString(s string) string {
	q, _ := json.Marshal(s)
	r := strings.NewReplacer("${", "$${", "%{", "%%{").Replace(string(q))
	return r
}

// ctx returns a context for out-of-band API calls of a test.
func testAccContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"1.11.0": true, "1.11.4": true, "1.12.0-alpha": true, "2.0.0": true,
		"1.10.5": false, "0.15.0": false, "1.9": false, "x": false,
	} {
		if got := versionAtLeast(v, minTerraformVersion); got != want {
			t.Errorf("versionAtLeast(%q) = %v", v, got)
		}
	}
}

func TestHCLString(t *testing.T) {
	got := hclString("a\"b\n${x}%{y}")
	if !bytes.Equal([]byte(got), []byte(`"a\"b\n$${x}%%{y}"`)) {
		t.Fatalf("hclString = %s", got)
	}
}
