package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
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
	bin := buildBinary(t, t.TempDir(), "-ldflags", "-X github.com/replicad/terraform-provider-redis/service/app.Version=v9.8.7-test")
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		require.NoError(t, err)
		assert.Equal(t, "v9.8.7-test", strings.TrimSpace(string(out)), arg)
	}
}

// buildBinary builds redis-replicad into dir with the extra go build flags,
// and returns its path.
func buildBinary(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "redis-replicad")
	args := append(append([]string{"build", "-o", bin}, flags...), ".")
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func TestParseServeGrace(t *testing.T) {
	cfg, _, err := parseServe([]string{"--data-dir", "/tmp/x", "--admin-password-grace", "0s"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Negative(t, int64(cfg.AdminPasswordGrace), "0s means no grace period")
	cfg, _, err = parseServe([]string{"--data-dir", "/tmp/x"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "15m0s", cfg.AdminPasswordGrace.String())
}

func TestServeHelpListsEnvironmentVariables(t *testing.T) {
	var out bytes.Buffer
	_, _, err := parseServe([]string{"-h"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	names := []string{"data-dir", "listen", "admin-user", "admin-password", "viewer-user", "viewer-password", "log-format", "log-level", "tls-cert", "port-range"}
	for _, n := range names {
		assert.Contains(t, out.String(), "--"+n+"  [$"+envName(n)+"]", "serve -h lists %s with its environment variable", n)
	}
}

func TestLogFormat(t *testing.T) {
	t.Setenv("REDIS_REPLICAD_LOG_FORMAT", "json")
	_, lo, err := parseServe([]string{"--data-dir", t.TempDir()}, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	lo.logger(&out).Info("database started", "uid", 1)
	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line), "a JSON log line: %s", out.String())
	assert.Equal(t, "database started", line["msg"])
	assert.EqualValues(t, 1, line["uid"])

	_, _, err = parseServe([]string{"--data-dir", t.TempDir(), "--log-format", "xml"}, &bytes.Buffer{})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "text or json"), err.Error())
}

// go-redis's own messages (a pool that cannot dial a database that is down)
// come out as lines of the chosen format, not the standard logger's.
func TestGoRedisMessagesAreLogLines(t *testing.T) {
	_, lo, err := parseServe([]string{"--data-dir", t.TempDir(), "--log-format", "json", "--log-level", "debug"}, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	goRedisLog{lo.logger(&out).With("component", "go-redis")}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 5, "connect: no such file or directory")
	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line), "a JSON log line: %s", out.String())
	assert.Equal(t, "connection pool: failed to dial after 5 attempts: connect: no such file or directory", line["msg"])
	assert.Equal(t, "go-redis", line["component"])
	assert.Equal(t, "DEBUG", line["level"])
}

// A bad value of a flag or of its environment variable is refused before
// anything starts, with an error that names the flag (or the variable) and
// the value, never run with a default or turned into another value.
func TestServeFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--port-range", "5-3"}, []string{"--port-range", `"5-3"`}},
		{[]string{"--port-range", "0-100"}, []string{"--port-range", `"0-100"`}},
		{[]string{"--port-range", "12000-70000"}, []string{"--port-range"}},
		{[]string{"--port-range", "12000"}, []string{"--port-range"}},
		{[]string{"--listen", "nonsense"}, []string{"--listen", `"nonsense"`}},
		{[]string{"--listen", "127.0.0.1:99999"}, []string{"--listen", "99999"}},
		{[]string{"--listen", "127.0.0.1:https"}, []string{"--listen"}},
		{[]string{"--admin-password-grace", "-5m"}, []string{"--admin-password-grace", "negative"}},
		{[]string{"--log-level", "loud"}, []string{"--log-level"}},
		{[]string{"stray"}, []string{`"stray"`}},
		// Basic auth ends the user name at the first colon: nobody could log in.
		{[]string{"--admin-user", "ops:admin"}, []string{"--admin-user", "':'"}},
		{[]string{"--viewer-user", "grafana:ro", "--viewer-password", "pw-123456"}, []string{"--viewer-user", "':'"}},
		{[]string{"--viewer-user", "graf\nana", "--viewer-password", "pw-123456"}, []string{"--viewer-user", "control"}},
	} {
		args := append([]string{"--data-dir", t.TempDir()}, tc.args...)
		_, _, err := parseServe(args, &bytes.Buffer{})
		require.Error(t, err, "%v", tc.args)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, "%v", tc.args)
		}
	}
	// "user:password" given as the user name: the error does not show it.
	_, _, err := parseServe([]string{"--data-dir", t.TempDir(), "--admin-user", "admin:hunter2-secret"}, &bytes.Buffer{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2-secret")

	// An empty variable is unset: the default, not an error about a flag
	// that was not given.
	t.Setenv("REDIS_REPLICAD_PORT_RANGE", "")
	t.Setenv("REDIS_REPLICAD_ADMIN_PASSWORD_GRACE", "")
	cfg, _, err := parseServe([]string{"--data-dir", t.TempDir()}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 12000, cfg.PortMin)
	assert.Equal(t, "15m0s", cfg.AdminPasswordGrace.String())

	t.Setenv("REDIS_REPLICAD_ADMIN_PASSWORD_GRACE", "soon")
	_, _, err = parseServe([]string{"--data-dir", t.TempDir()}, &bytes.Buffer{})
	require.Error(t, err)
	for _, w := range []string{"REDIS_REPLICAD_ADMIN_PASSWORD_GRACE", "--admin-password-grace", `"soon"`} {
		assert.Contains(t, err.Error(), w)
	}
}

// `redis-replicad --help` (and -h, help) is help, not an error; an unknown
// command is named in the error.
func TestCommandHelpAndUnknownCommand(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		require.NoError(t, run([]string{arg}, &bytes.Buffer{}), arg)
	}
	err := run([]string{"srve"}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"srve"`)
	assert.Contains(t, err.Error(), "serve")
	require.Error(t, run(nil, &bytes.Buffer{}))
}

// A service that cannot start says why in its log's format: with
// --log-format json, a plain "redis-replicad: ..." line was the one line a
// log collector could not parse, and the one that mattered.
func TestStartErrorIsALogLineOfTheChosenFormat(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, []byte("x"), 0o600))
	var out bytes.Buffer
	err := run([]string{"serve", "--data-dir", notDir, "--log-format", "json", "--listen", "127.0.0.1:0"}, &out)
	require.Error(t, err)
	assert.ErrorIs(t, err, errLogged, "main prints nothing more: the error is in the log")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every line is JSON: %s", l)
	}
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	assert.Equal(t, "ERROR", last["level"])
	assert.Contains(t, last["err"], notDir, "the line says why")

	// A setting refused before the start, JSON asked for: a JSON line too.
	out.Reset()
	err = run([]string{"serve", "--data-dir", t.TempDir(), "--log-format", "json", "--port-range", "9-3"}, &out)
	require.Error(t, err)
	assert.ErrorIs(t, err, errLogged)
	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line), "a JSON line: %s", out.String())
	assert.Equal(t, "ERROR", line["level"])
	assert.Contains(t, line["err"], "--port-range")
}
