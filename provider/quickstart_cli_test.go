package provider

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
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

// TestAccREADME_locallyBuiltProvider runs the shell block of the README's
// "Using a locally built provider" as a user pastes it, with only its
// ports, data directory and terraform's prompt adapted (and the binaries
// built by the test rather than make build): the instance started in the
// background must have written its password and CA before the next lines
// read them.
func TestAccREADME_locallyBuiltProvider(t *testing.T) {
	testAccRequire(t)
	servicetest.RequireRedisServer(t)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "### Using a locally built provider")
	require.True(t, ok, "the README lost its section")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)

	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	require.NoError(t, os.MkdirAll(filepath.Join(work, "examples", "quickstart"), 0o755))
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(testAccProviderBinary(t), "terraform-provider-redis"),
		filepath.Join(bin, "terraform-provider-redis")))
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "redis-replicad"), "./cmd/redis-replicad")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	example, err := os.ReadFile("../examples/quickstart/main.tf")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(work, "examples", "quickstart", "main.tf"), example, 0o600))

	portMin, portMax, listen := servicetest.PortWindow(t)
	if strings.HasSuffix(listen, ":0") {
		listen = "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	}
	script := strings.NewReplacer("/tmp/replicad", filepath.Join(work, "data"), "127.0.0.1:9443", listen,
		"make build", ": make build", "terraform apply", "terraform apply -auto-approve -no-color").Replace(block)
	// The instance the block starts in the background ends with the script.
	script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script
	// A block that never ends (an instance that does not start) is
	// stopped, the instance with it (its process group).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+filepath.Join(work, "home"), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_CLI_CONFIG_FILE=", "REDIS_REPLICAD_LISTEN="+listen,
		"REDIS_REPLICAD_PORT_RANGE="+strconv.Itoa(portMin)+"-"+strconv.Itoa(portMax))
	require.NoError(t, os.MkdirAll(filepath.Join(work, "home"), 0o700))
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "the README's block failed:\n%s", tail(string(out), 6000))
	assert.Contains(t, string(out), "Apply complete! Resources: 1 added")
}
