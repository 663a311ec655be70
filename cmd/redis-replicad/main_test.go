package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersionIsStamped builds redis-replicad as make build and the release
// do, with the version in the ldflags, and checks that `redis-replicad
// version` prints it.
func TestVersionIsStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "redis-replicad")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/replicad/terraform-provider-redis/service/app.Version=v9.8.7-test", ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		require.NoError(t, err)
		assert.Equal(t, "v9.8.7-test", strings.TrimSpace(string(out)), arg)
	}
}

func TestParseServeGrace(t *testing.T) {
	cfg, _, err := parseServe([]string{"--data-dir", "/tmp/x", "--admin-password-grace", "0s"}, nil)
	require.NoError(t, err)
	assert.Negative(t, int64(cfg.AdminPasswordGrace), "0s means no grace period")
	cfg, _, err = parseServe([]string{"--data-dir", "/tmp/x"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "15m0s", cfg.AdminPasswordGrace.String())
}
