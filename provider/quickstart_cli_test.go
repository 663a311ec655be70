package provider

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccExamples_quickstartAsTheREADMESays follows the README's "Using a
// locally built provider": the provider binary built here, a CLI
// configuration with dev_overrides, examples/quickstart as it is, the
// provider's settings in the environment, then the commands of the example's
// header: terraform apply (no init with dev_overrides), and redis-cli PING
// with the outputs.
func TestAccExamples_quickstartAsTheREADMESays(t *testing.T) {
	e := testAccStart(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("the quickstart runs redis-cli: install it (apt-get install -y redis-tools)")
	}
	cli := newTestAccCLI(t, EnvEndpoint+"="+e.inst.URL, EnvPassword+"="+e.inst.Password, EnvCACert+"="+e.inst.CACert)
	_, file, _, _ := runtime.Caller(0)
	example, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "examples", "quickstart", "main.tf"))
	require.NoError(t, err)
	cli.write("main.tf", string(example))

	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	endpoint := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "endpoint"))
	password := strings.TrimSpace(cli.mustRun(0, "output", "-raw", "password"))
	host, port, ok := strings.Cut(endpoint, ":")
	require.True(t, ok, "endpoint %q", endpoint)
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "-a", password, "--no-auth-warning", "PING").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "PONG", strings.TrimSpace(string(out)))
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
