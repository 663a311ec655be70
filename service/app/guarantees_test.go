package app_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// What held when the service was attacked, kept true by a test each.

func TestHugeBodyIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	body := `{"name": "x", "memory_size": 1048576, "authentication_redis_pass": "` + strings.Repeat("a", 5<<20) + `"}`
	code, e := call(t, i, "POST", "/v1/bdbs", body, nil)
	assert.Equal(t, 413, code, "%v", e)
	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	assert.Empty(t, list)
}

func TestRacingConflictingCreatesHaveOneWinner(t *testing.T) {
	i := servicetest.Start(t)
	const n = 50
	codes := make([]int, n)
	errs := make([]error, n)
	// The winner starts a redis-server while 49 losers are answered: on a
	// loaded machine that outlasts the usual 30 s client timeout. And
	// a goroutine must not end the test (t.Fatal) on its own.
	hc := *i.HTTPClient()
	hc.Timeout = 3 * time.Minute
	body, err := json.Marshal(api.CreateDatabaseRequest{Name: "race", MemorySize: 16 << 20})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest("POST", i.URL+"/v1/bdbs", bytes.NewReader(body))
			if err != nil {
				errs[k] = err
				return
			}
			req.SetBasicAuth(i.Username, i.Password)
			resp, err := hc.Do(req)
			if err != nil {
				errs[k] = err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[k] = resp.StatusCode
		}()
	}
	wg.Wait()
	for k, err := range errs {
		require.NoError(t, err, "create %d got no answer", k)
	}
	won := 0
	for _, c := range codes {
		if c == 200 {
			won++
		} else {
			assert.Equal(t, 409, c)
		}
	}
	assert.Equal(t, 1, won)
	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	assert.Len(t, list, 1, "no orphan of the losers")
}

// Two clients that read a database that is not a Replica Of (two
// Terraform resources on one database_id) and make it one with
// if_replica_generation: one wins, the other gets a 409 and changed
// nothing.
func TestRacingConditionalReplicaOfsHaveOneWinner(t *testing.T) {
	i := servicetest.Start(t)
	srcA := mustCreate(t, i, api.CreateDatabaseRequest{Name: "a", MemorySize: 16 << 20})
	srcB := mustCreate(t, i, api.CreateDatabaseRequest{Name: "b", MemorySize: 16 << 20})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 16 << 20})
	gen := dst.ReplicaGeneration
	uris := []string{sourceURL(t, i, srcA.UID), sourceURL(t, i, srcB.UID)}
	codes := make([]int, len(uris))
	var wg sync.WaitGroup
	for k, uri := range uris {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[k], _ = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{
				ReplicaSources: &[]api.ReplicaSource{{URI: uri}}, IfReplicaGeneration: &gen}, nil)
		}()
	}
	wg.Wait()
	assert.ElementsMatch(t, []int{200, 409}, codes)
	var got api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
	require.Len(t, got.ReplicaSources, 1)
	winner := 0
	if codes[1] == 200 {
		winner = 1
	}
	want, err := url.Parse(uris[winner])
	require.NoError(t, err)
	assert.Contains(t, got.ReplicaSources[0].URI, want.Host, "the winner's source, not the loser's")
	assert.Equal(t, gen+1, got.ReplicaGeneration)

	// Unconditional updates are as before.
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{
		ReplicaSources: &[]api.ReplicaSource{{URI: uris[1-winner]}}}, nil)
	assert.Equal(t, 200, code, "%v", e)

	// No longer a Replica Of, the database reads with no generation: a
	// conditional update with what it reads succeeds.
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{}}, nil)
	require.Equal(t, 200, code, "%v", e)
	var plain api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &plain)
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{
		ReplicaSources: &[]api.ReplicaSource{{URI: uris[0]}}, IfReplicaGeneration: &plain.ReplicaGeneration}, nil)
	assert.Equal(t, 200, code, "%v", e)
}

func TestAPIOffersModernTLSOnly(t *testing.T) {
	i := servicetest.Start(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(i.CACert))
	host := strings.TrimPrefix(i.URL, "https://")
	try := func(cfg *tls.Config) error {
		cfg.RootCAs = pool
		c, err := tls.Dial("tcp", host, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	assert.NoError(t, try(&tls.Config{MinVersion: tls.VersionTLS13}), "TLS 1.3")
	assert.NoError(t, try(&tls.Config{MaxVersion: tls.VersionTLS12}), "TLS 1.2")
	assert.Error(t, try(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}), "TLS 1.1 and older")
	var weak []*tls.CipherSuite
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !strings.Contains(cs.Name, "GCM") && !strings.Contains(cs.Name, "CHACHA20") {
			weak = append(weak, cs)
		}
	}
	require.NotEmpty(t, weak)
	for _, cs := range weak {
		if !supportsTLS12(cs) {
			continue
		}
		assert.Error(t, try(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}}), "a cipher without AEAD: %s", cs.Name)
	}
	resp, err := http.Get("http://" + host + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode, "plain HTTP on the HTTPS port")
}

func supportsTLS12(cs *tls.CipherSuite) bool {
	for _, v := range cs.SupportedVersions {
		if v == tls.VersionTLS12 {
			return true
		}
	}
	return false
}

// No secret in the service's log, on any command line, or in a file anyone
// but the service may read.
func TestSecretsStayOutOfLogsCommandLinesAndOpenFiles(t *testing.T) {
	p := servicetest.StartProcess(t)
	api := newProcessAPI(t, p)
	appPass := "app-pass-" + strconv.Itoa(os.Getpid()) + "-Zq9"
	src := api.create(t, map[string]any{"name": "src", "memory_size": 64 << 20, "authentication_redis_pass": appPass})
	var su struct{ URI string }
	api.do(t, "GET", fmt.Sprintf("/v1/bdbs/%v/source_url", src["uid"]), nil, &su)
	u, err := url.Parse(su.URI)
	require.NoError(t, err)
	adminPass, _ := u.User.Password()
	api.create(t, map[string]any{"name": "dst", "memory_size": 64 << 20, "replica_sources": []map[string]any{{"uri": su.URI}}})
	// A wrong password and a regenerated one are logged; neither may show.
	api.create(t, map[string]any{"name": "bad", "memory_size": 64 << 20, "replica_sources": []map[string]any{{"uri": "redis://admin:wrong-secret-123@" + u.Host}}})
	var regen struct {
		Password string `json:"authentication_admin_pass"`
	}
	api.do(t, "POST", fmt.Sprintf("/v1/bdbs/%v/actions/regenerate_admin_password", src["uid"]), nil, &regen)

	secrets := []string{appPass, adminPass, "wrong-secret-123", p.Password(t)}
	if regen.Password != "" {
		secrets = append(secrets, regen.Password)
	}
	log := p.Log()
	require.Contains(t, log, "database created", "the log is being written")
	for _, s := range secrets {
		assert.NotContains(t, log, s, "a secret in the service's log")
	}
	// Every process on the host: the service, its redis-servers.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	checked := 0
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(p.DataDir)) && !bytes.Contains(b, []byte("redis-server")) {
			continue
		}
		checked++
		for _, s := range secrets {
			assert.NotContains(t, string(b), s, "a secret on the command line of %s", f)
		}
	}
	assert.Greater(t, checked, 1, "the service and its redis-servers were found")
	// Files that hold secrets are the service's alone.
	require.NoError(t, filepath.WalkDir(p.DataDir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walked: a rewrite's temporary file
		}
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		name := d.Name()
		if name == "state.db" || strings.Contains(name, "password") || strings.HasSuffix(name, "key.pem") || strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".acl") {
			assert.Zero(t, info.Mode().Perm()&0o077, "%s is readable by others: %v", path, info.Mode())
		}
		return nil
	}))
}

// processAPI calls the REST API of a service running as a process.
type processAPI struct {
	url, user, pass string
	c               *http.Client
}

func newProcessAPI(t *testing.T, p *servicetest.Process) *processAPI {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(p.CACert(t)))
	return &processAPI{url: p.URL, user: "admin", pass: p.Password(t),
		c: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (a *processAPI) do(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	require.NoError(t, err)
	req.SetBasicAuth(a.user, a.pass)
	resp, err := a.c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(data, out), "%s", data)
	}
	return resp.StatusCode
}

func (a *processAPI) create(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	var db map[string]any
	code := a.do(t, "POST", "/v1/bdbs", req, &db)
	require.Equal(t, 200, code, "create %v", req["name"])
	return db
}
