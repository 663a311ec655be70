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
	"github.com/replicad/terraform-provider-redis/internal/sysmon"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// `redis-replicad serve` runs with sysmon kept awake: the same process
// (its pid does not change) with the setting in its environment, and it
// serves as usual.
func TestServeKeepsSysmonAwake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH: install it (apt-get install -y redis-server)")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	var stderr bytes.Buffer
	portMin, portMax, _ := servicetest.PortWindow(t)
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--port-range", fmt.Sprintf("%d-%d", portMin, portMax))
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=0")
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// stderr is read once the process has ended: its writes come from
	// another goroutine until then.
	stop := sync.OnceFunc(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "the service did not answer /healthz in 30 s: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	require.NoError(t, err, "the process started is the one serving")
	vars := strings.Split(string(environ), "\x00")
	assert.Contains(t, vars, "GODEBUG=gctrace=0,"+sysmon.Setting)
	// The trace prints once the host's monotonic clock passes a multiple of
	// the period (about 24.8 days): on a host up for less, never.
	stop()
	if up := uptimeSeconds(t); up < 2147483 {
		assert.NotContains(t, stderr.String(), "SCHED ", "no scheduler trace on a host up for %.0f s", up)
	}
}

func uptimeSeconds(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/uptime")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	require.NotEmpty(t, f)
	up, err := strconv.ParseFloat(f[0], 64)
	require.NoError(t, err)
	return up
}
