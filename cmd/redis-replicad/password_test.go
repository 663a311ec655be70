package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

func TestPasswordFlagsFromAFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(file, []byte("s3cret with space\n"), 0o600))
	cfg, lo, err := parseServe([]string{"--data-dir", dir, "--admin-password-file", file, "--viewer-user", "v", "--viewer-password-file", file}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "s3cret with space", cfg.AdminPassword, "the line end is not part of it")
	assert.Equal(t, "s3cret with space", cfg.ViewerPassword)
	assert.Empty(t, lo.warnings)

	_, _, err = parseServe([]string{"--data-dir", dir, "--admin-password-file", file, "--admin-password", "x"}, &bytes.Buffer{})
	require.Error(t, err, "two sources of one password")
	assert.Contains(t, err.Error(), "keep one")

	require.NoError(t, os.WriteFile(file, []byte("\n"), 0o600))
	_, _, err = parseServe([]string{"--data-dir", dir, "--admin-password-file", file}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is empty")

	require.NoError(t, os.WriteFile(file, []byte("line one\nline two\n"), 0o600))
	_, _, err = parseServe([]string{"--data-dir", dir, "--admin-password-file", file}, &bytes.Buffer{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "line one", "the error does not quote the file")

	_, _, err = parseServe([]string{"--data-dir", dir, "--admin-password-file", filepath.Join(dir, "missing")}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--admin-password-file")
}

func TestPasswordOnTheCommandLineIsWarnedAbout(t *testing.T) {
	_, lo, err := parseServe([]string{"--data-dir", t.TempDir(), "--admin-password", "hunter2-value"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Len(t, lo.warnings, 1)
	assert.Contains(t, lo.warnings[0], "--admin-password-file")
	assert.NotContains(t, lo.warnings[0], "hunter2-value")

	t.Setenv(envName("admin-password"), "from-the-environment")
	cfg, lo, err := parseServe([]string{"--data-dir", t.TempDir()}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "from-the-environment", cfg.AdminPassword)
	assert.Empty(t, lo.warnings, "the environment is not the command line")
}

// A service given its password by --admin-password-file serves with it,
// and the password is in no process's command line or environment: not
// the service's, not its redis-server children's.
func TestAdminPasswordFromAFileIsNotInProcessLists(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH: install it (apt-get install -y redis-server)")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	const password = "pw-from-file-7f3a9c"
	pwFile := filepath.Join(dir, "admin-password.txt")
	require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	portMin, portMax, _ := servicetest.PortWindow(t)
	run := func(extra []string, env ...string) (*exec.Cmd, *bytes.Buffer, func()) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--port-range", fmt.Sprintf("%d-%d", portMin, portMax)}, extra...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		stop := sync.OnceFunc(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		t.Cleanup(stop)
		return cmd, &stderr, stop
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitAuthorized := func(pw string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			req, _ := http.NewRequest("GET", "https://"+addr+"/v1/bdbs", nil)
			req.SetBasicAuth("admin", pw)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			require.True(t, time.Now().Before(deadline), "the API did not accept the password: %v", err)
			time.Sleep(50 * time.Millisecond)
		}
	}

	cmd, _, stop := run([]string{"--admin-password-file", pwFile}, "REDIS_REPLICAD_VIEWER_USER=viewer", "REDIS_REPLICAD_VIEWER_PASSWORD=viewer-pw-in-env-5b1d")
	waitAuthorized(password)
	// A database: its redis-server is a child whose environment and
	// command line count too.
	req, _ := http.NewRequest("POST", "https://"+addr+"/v1/bdbs", strings.NewReader(`{"name":"db","memory_size":16777216}`))
	req.SetBasicAuth("admin", password)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	kids := children(t, cmd.Process.Pid)
	require.NotEmpty(t, kids, "the database's redis-server")
	for _, pid := range append([]int{cmd.Process.Pid}, kids...) {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			if err != nil {
				continue // ended meanwhile
			}
			assert.NotContains(t, string(b), password, "/proc/%d/%s", pid, f)
			if pid != cmd.Process.Pid {
				assert.NotContains(t, string(b), "viewer-pw-in-env-5b1d", "the child %d's %s", pid, f)
			}
		}
	}
	stop()

	// The flag still works, with a warning that does not quote it.
	_, stderr, stop := run([]string{"--admin-password", password})
	waitAuthorized(password)
	stop()
	assert.Contains(t, stderr.String(), "--admin-password was given on the command line")
	assert.Equal(t, 0, strings.Count(stderr.String(), password), "the password is not logged")
}

// children lists the processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// A password file that every local user can read defeats its purpose: it
// is warned about (without the password). A file written by a Windows
// editor (a byte order mark, CRLF) gives the password typed.
func TestPasswordFileReadableByAllIsWarnedAbout(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(file, []byte("\ufeffwin-s3cret\r\n"), 0o600))
	require.NoError(t, os.Chmod(file, 0o644)) // whatever the umask
	cfg, lo, err := parseServe([]string{"--data-dir", dir, "--admin-password-file", file}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "win-s3cret", cfg.AdminPassword)
	require.Len(t, lo.warnings, 1)
	assert.Contains(t, lo.warnings[0], "every local user")
	assert.Contains(t, lo.warnings[0], "--admin-password-file")
	assert.NotContains(t, lo.warnings[0], "s3cret")

	require.NoError(t, os.Chmod(file, 0o640))
	_, lo, err = parseServe([]string{"--data-dir", dir, "--admin-password-file", file}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Empty(t, lo.warnings, "readable by its group only, as a service's group may need")
}

// A viewer password file without a viewer user is refused with the flag the
// user gave: the error named --viewer-password alone.
func TestViewerPasswordFileWithoutAViewerUser(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(file, []byte("viewer-s3cret\n"), 0o600))
	var stderr bytes.Buffer
	err := run([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--viewer-password-file", file}, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--viewer-password-file")
	assert.NotContains(t, err.Error()+stderr.String(), "viewer-s3cret")
}
