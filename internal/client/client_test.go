package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testUser     = "admin"
	testPassword = "s3cret-api-pass"
)

// newTestServer starts a TLS server whose handler is h, behind basic auth, and
// a Client that trusts its certificate and retries quickly.
func newTestServer(t *testing.T, h http.HandlerFunc) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
			writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, "bad credentials")
			return
		}
		h(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := New(Config{
		Endpoint:     srv.URL,
		Username:     testUser,
		Password:     testPassword,
		CACert:       certPEM(srv),
		RetryMax:     3,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func certPEM(srv *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Code: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func TestRetryOn503ThenSuccess(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			writeError(w, http.StatusServiceUnavailable, api.CodeInternal, "starting")
			return
		}
		writeJSON(w, api.Database{UID: 7, Name: "db", Status: api.StatusActive})
	})
	db, err := c.GetDatabase(context.Background(), 7)
	if err != nil {
		t.Fatalf("GetDatabase: %v", err)
	}
	if db.UID != 7 || db.Name != "db" {
		t.Fatalf("got %+v", db)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("server saw %d calls, want 3", n)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "broken")
	})
	_, err := c.GetCluster(context.Background())
	if StatusCode(err) != http.StatusInternalServerError {
		t.Fatalf("err = %v, want HTTP 500", err)
	}
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeInternal || apiErr.Description != "broken" {
		t.Fatalf("api error = %+v", apiErr)
	}
	if n := calls.Load(); n != 4 { // first attempt + RetryMax
		t.Fatalf("server saw %d calls, want 4", n)
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict} {
		var calls atomic.Int32
		c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeError(w, status, api.CodeInvalidRequest, "memory_size must be at least 1 MiB")
		})
		_, err := c.CreateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "x"})
		if StatusCode(err) != status {
			t.Fatalf("status %d: err = %v", status, err)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("status %d: server saw %d calls, want 1", status, n)
		}
		if !strings.Contains(err.Error(), "memory_size must be at least 1 MiB") {
			t.Fatalf("error does not carry the description: %v", err)
		}
	}
}

func TestPOSTNotRetriedOn500(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "half done")
	})
	_, err := c.CreateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20})
	if StatusCode(err) != http.StatusInternalServerError {
		t.Fatalf("err = %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a POST answered 500 was sent %d times, want 1", n)
	}
}

func TestRetryOn429(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			writeError(w, http.StatusTooManyRequests, "too_many_requests", "slow down")
			return
		}
		writeJSON(w, api.Database{UID: 1, Name: "x"})
	})
	if _, err := c.CreateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("server saw %d calls, want 2", n)
	}
}

func TestNotFound(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "database 42 does not exist")
	})
	_, err := c.GetDatabase(context.Background(), 42)
	if !IsNotFound(err) {
		t.Fatalf("IsNotFound(%v) = false", err)
	}
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeNotFound {
		t.Fatalf("errors.As: %+v", apiErr)
	}
	if want := "GET /v1/bdbs/42: HTTP 404: not_found: database 42 does not exist"; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	if IsNotFound(errors.New("other")) || IsNotFound(nil) {
		t.Fatal("IsNotFound true for a non-404")
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, "<html>conflict</html>\n")
	})
	err := c.DeleteDatabase(context.Background(), 3)
	if !IsConflict(err) {
		t.Fatalf("err = %v", err)
	}
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeConflict || apiErr.Description != "<html>conflict</html>" {
		t.Fatalf("api error = %+v", apiErr)
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	const dbPass = "db-pass-Xy%7/z"
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// A careless service that echoes what it received, the API
		// password included.
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest,
			"rejected "+string(body)+" from "+testPassword+" encoded "+strings.ReplaceAll(dbPass, "%", "%25"))
	})
	ctx := context.Background()
	pass := dbPass
	_, errCreate := c.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "x", MemorySize: 1, AuthenticationRedisPass: dbPass})
	_, errUpdate := c.UpdateDatabase(ctx, 1, api.UpdateDatabaseRequest{AuthenticationRedisPass: &pass})
	for _, err := range []error{errCreate, errUpdate} {
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, secret := range []string{testPassword, dbPass, "db-pass-Xy%257%2Fz"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("error %q shows a secret", msg)
			}
		}
		if !strings.Contains(msg, "(redacted)") {
			t.Fatalf("error %q was not redacted", msg)
		}
	}
}

func TestSourceURIPasswordsNeverInErrors(t *testing.T) {
	const srcPass, lonePass = "src:p@ss/w%rd!", "lone-secret-42"
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "rejected "+string(body))
	})
	uri := (&url.URL{Scheme: "redis", User: url.UserPassword("admin", srcPass), Host: "10.0.0.1:6379"}).String()
	sources := []api.ReplicaSource{{URI: uri}, {URI: "redis://" + lonePass + "@10.0.0.2:6379"}}
	ctx := context.Background()
	_, errCreate := c.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "x", MemorySize: 1, ReplicaSources: sources})
	_, errUpdate := c.UpdateDatabase(ctx, 1, api.UpdateDatabaseRequest{ReplicaSources: &sources})
	for _, err := range []error{errCreate, errUpdate} {
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, secret := range []string{srcPass, url.QueryEscape(srcPass), url.PathEscape(srcPass), "p%40ss%2Fw%25rd", lonePass} {
			if strings.Contains(msg, secret) {
				t.Fatalf("error %q shows a secret (%q)", msg, secret)
			}
		}
		if !strings.Contains(msg, "10.0.0.1:6379") {
			t.Fatalf("error %q lost the address", msg)
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	_, srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Cluster{Name: "c"})
	})
	c, err := New(Config{Endpoint: srv.URL, Password: "wrong-password", CACert: certPEM(srv)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetCluster(context.Background())
	if StatusCode(err) != http.StatusUnauthorized {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("error %q shows the password", err)
	}
}

func TestTLSVerification(t *testing.T) {
	_, srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Cluster{Name: "c"})
	})
	// Without the CA the certificate is refused, and not retried.
	c, err := New(Config{Endpoint: srv.URL, Password: testPassword, RetryMax: 3, RetryWaitMin: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.GetCluster(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Fatal("a certificate error was retried")
	}
	// insecure_skip_verify accepts it.
	c, err = New(Config{Endpoint: srv.URL, Password: testPassword, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.GetCluster(context.Background())
	if err != nil || cl.Name != "c" {
		t.Fatalf("cluster %+v, err %v", cl, err)
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var mu sync.Mutex
	var logged []string
	c, err := New(Config{
		Endpoint: "https://" + addr, Password: testPassword, InsecureSkipVerify: true,
		RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond,
		Log: func(_ context.Context, msg string, fields map[string]any) {
			mu.Lock()
			defer mu.Unlock()
			logged = append(logged, msg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListDatabases(context.Background())
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) < 3 {
		t.Fatalf("logged %v, want at least one line per attempt", logged)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusServiceUnavailable, api.CodeInternal, "busy")
	})
	c.http.RetryMax = 1000
	c.http.RetryWaitMin = 50 * time.Millisecond
	c.http.RetryWaitMax = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ListDatabases(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the context did not stop the retries")
	}
}

func TestRoutesAndBodies(t *testing.T) {
	type seen struct{ method, path, body string }
	var mu sync.Mutex
	var got []seen
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, strings.TrimSpace(string(b))})
		mu.Unlock()
		if ct := r.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json" {
			t.Errorf("content type %q", ct)
		}
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/v1/bdbs" && r.Method == http.MethodGet:
			writeJSON(w, []api.Database{{UID: 1}, {UID: 2}})
		case strings.HasSuffix(r.URL.Path, "/source_url"):
			writeJSON(w, api.SourceURL{URI: "redis://admin:x@h:1"})
		case strings.HasSuffix(r.URL.Path, "/regenerate_admin_password"):
			writeJSON(w, api.AdminPassword{AuthenticationAdminPass: "x", URI: "redis://admin:x@h:1"})
		case r.URL.Path == "/v1/cluster":
			writeJSON(w, api.Cluster{Name: "c", Version: "1"})
		default:
			writeJSON(w, api.Database{UID: 5, Name: "n", MemorySize: 4 << 20})
		}
	})
	ctx := context.Background()
	size := int64(2 << 20)
	dbs, err := c.ListDatabases(ctx)
	must(t, err)
	if len(dbs) != 2 {
		t.Fatalf("dbs = %+v", dbs)
	}
	_, err = c.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "n", MemorySize: 4 << 20})
	must(t, err)
	_, err = c.GetDatabase(ctx, 5)
	must(t, err)
	_, err = c.UpdateDatabase(ctx, 5, api.UpdateDatabaseRequest{MemorySize: &size})
	must(t, err)
	must(t, c.DeleteDatabase(ctx, 5))
	su, err := c.GetSourceURL(ctx, 5)
	must(t, err)
	ap, err := c.RegenerateAdminPassword(ctx, 5, nil)
	must(t, err)
	_, err = c.RegenerateAdminPassword(ctx, 5, map[string]string{"rotation": "2"})
	must(t, err)
	cl, err := c.GetCluster(ctx)
	must(t, err)
	if su.URI == "" || ap.AuthenticationAdminPass != "x" || cl.Version != "1" {
		t.Fatalf("decoded %+v %+v %+v", su, ap, cl)
	}
	want := []seen{
		{"GET", "/v1/bdbs", ""},
		{"POST", "/v1/bdbs", `{"name":"n","memory_size":4194304}`},
		{"GET", "/v1/bdbs/5", ""},
		{"PUT", "/v1/bdbs/5", `{"memory_size":2097152}`},
		{"DELETE", "/v1/bdbs/5", ""},
		{"GET", "/v1/bdbs/5/source_url", ""},
		{"POST", "/v1/bdbs/5/actions/regenerate_admin_password", ""},
		{"POST", "/v1/bdbs/5/actions/regenerate_admin_password", `{"keepers":{"rotation":"2"}}`},
		{"GET", "/v1/cluster", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d requests: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestEndpointWithPathPrefix(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/v1/cluster" {
			writeError(w, http.StatusNotFound, api.CodeNotFound, r.URL.Path)
			return
		}
		writeJSON(w, api.Cluster{Name: "c"})
	})
	base := *c.base
	base.Path = "/prefix/"
	c2, err := New(Config{Endpoint: base.String(), Password: testPassword, InsecureSkipVerify: true})
	must(t, err)
	_, err = c2.GetCluster(context.Background())
	must(t, err)
}

func TestLogNeverSeesSecrets(t *testing.T) {
	const dbPass = "never-log-this-pass"
	var mu sync.Mutex
	var lines []string
	c, srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Database{UID: 1, AuthenticationRedisPass: dbPass})
	})
	c2, err := New(Config{
		Endpoint: srv.URL, Password: testPassword, CACert: certPEM(srv),
		Log: func(_ context.Context, msg string, fields map[string]any) {
			b, _ := json.Marshal(fields)
			mu.Lock()
			lines = append(lines, msg+" "+string(b))
			mu.Unlock()
		},
	})
	must(t, err)
	_ = c
	_, err = c2.CreateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, AuthenticationRedisPass: dbPass})
	must(t, err)
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 {
		t.Fatal("nothing logged")
	}
	for _, l := range lines {
		if strings.Contains(l, dbPass) || strings.Contains(l, testPassword) {
			t.Fatalf("log line %q shows a secret", l)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"empty":       {},
		"scheme":      {Endpoint: "ftp://host"},
		"no host":     {Endpoint: "https://"},
		"credentials": {Endpoint: "https://admin:pw@host:9443"},
		"query":       {Endpoint: "https://host?x=1"},
		"bad ca":      {Endpoint: "https://host", CACert: "not a pem"},
	} {
		_, err := New(cfg)
		if err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
			continue
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error %q shows the credentials", name, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	refused, err := New(Config{Endpoint: "https://" + addr, Password: testPassword, InsecureSkipVerify: true,
		RetryMax: -1})
	require.NoError(t, err)
	_, err = refused.ListDatabases(context.Background())
	assert.True(t, IsUnreachable(err), "connection refused: %v", err)

	var status atomic.Int32
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, int(status.Load()), api.CodeInternal, "x")
	})
	for code, want := range map[int]bool{503: true, 502: true, 504: true, 500: false, 404: false, 400: false} {
		status.Store(int32(code))
		_, err = c.GetCluster(context.Background())
		assert.Equal(t, want, IsUnreachable(err), "HTTP %d: %v", code, err)
	}
	assert.False(t, IsUnreachable(nil))
}

// TestErrorsSayWhichSettingToFix: a wrong password and an API certificate
// that does not verify are answered with the settings that fix them, never
// with the password.
func TestErrorsSayWhichSettingToFix(t *testing.T) {
	_, srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Cluster{Name: "c"})
	})
	get := func(cfg Config) string {
		t.Helper()
		c, err := New(cfg)
		require.NoError(t, err)
		_, err = c.GetCluster(context.Background())
		require.Error(t, err)
		assert.NotContains(t, err.Error(), cfg.Password)
		return err.Error()
	}

	msg := get(Config{Endpoint: srv.URL, Password: "wrong-password", CACert: certPEM(srv)})
	assert.Contains(t, msg, "HTTP 401")
	assert.Contains(t, msg, "REDIS_REPLICAD_PASSWORD")

	msg = get(Config{Endpoint: srv.URL, Password: testPassword})
	assert.Contains(t, msg, "certificate signed by unknown authority")
	assert.Contains(t, msg, "set the provider's ca_cert (or REDIS_REPLICAD_CA_CERT)")

	// httptest's certificate names 127.0.0.1 and example.com, not localhost.
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	require.NoError(t, err)
	msg = get(Config{Endpoint: "https://localhost:" + port, Password: testPassword, CACert: certPEM(srv)})
	assert.Contains(t, msg, "does not name the endpoint's host")
}

// TestNotFoundIsTheServicesAnswerOnly: only the service's not_found says
// that an object does not exist. A 404 for a path that is none of the
// API's (an endpoint with a path too many) or from something else (a
// proxy's page) is an error that points at the endpoint, so that the
// provider does not take every resource for deleted.
func TestNotFoundIsTheServicesAnswerOnly(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/bdbs/1":
			writeError(w, http.StatusNotFound, api.CodeNotFound, "database 1 does not exist")
		case "/v1/bdbs/2":
			writeError(w, http.StatusNotFound, api.CodeNoRoute, "no route for GET /v1/bdbs/2")
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "<html>Not Found</html>")
		}
	})
	_, err := c.GetDatabase(context.Background(), 1)
	assert.True(t, IsNotFound(err), "%v", err)
	for _, uid := range []int{2, 3} {
		_, err := c.GetDatabase(context.Background(), uid)
		require.Error(t, err)
		assert.False(t, IsNotFound(err), "%v", err)
		assert.Equal(t, http.StatusNotFound, StatusCode(err))
		assert.Contains(t, err.Error(), "check the provider's endpoint")
	}
}
