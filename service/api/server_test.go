package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/throttle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backend records the calls that reach it; the databases hold secrets the
// viewer must not see.
type backend struct {
	calls   []string
	keepers map[string]string // of the last regeneration
}

const (
	redisPass = "app-password-123"
	sourceURL = "redis://admin:s3cret-admin@10.0.0.7:12001"
)

func (b *backend) db() api.Database {
	return api.Database{UID: 1, Name: "orders_replica", AuthenticationRedisPass: redisPass,
		ReplicaSources: []api.ReplicaSourceStatus{{ReplicaSource: api.ReplicaSource{URI: sourceURL}, Status: api.SourceInSync,
			LastError: "an error that quoted the password s3cret-admin"}}}
}
func (b *backend) ListDatabases(context.Context) ([]api.Database, error) {
	return []api.Database{b.db()}, nil
}
func (b *backend) GetDatabase(context.Context, int) (api.Database, error) { return b.db(), nil }
func (b *backend) CreateDatabase(context.Context, api.CreateDatabaseRequest) (api.Database, error) {
	b.calls = append(b.calls, "create")
	return b.db(), nil
}
func (b *backend) UpdateDatabase(context.Context, int, api.UpdateDatabaseRequest) (api.Database, error) {
	b.calls = append(b.calls, "update")
	return b.db(), nil
}
func (b *backend) DeleteDatabase(context.Context, int) error {
	b.calls = append(b.calls, "delete")
	return nil
}
func (b *backend) SourceURL(context.Context, int) (api.SourceURL, error) {
	b.calls = append(b.calls, "source_url")
	return api.SourceURL{URI: sourceURL}, nil
}
func (b *backend) RegenerateAdminPassword(_ context.Context, _ int, req api.RegenerateAdminPasswordRequest) (api.AdminPassword, error) {
	b.keepers = req.Keepers
	b.calls = append(b.calls, "regenerate")
	return api.AdminPassword{}, nil
}
func (b *backend) RecordAdminPasswordKeepers(_ context.Context, _ int, req api.AdminPasswordKeepersRequest) (api.SourceURL, error) {
	b.calls = append(b.calls, "record_keepers")
	b.keepers = req.Keepers
	return api.SourceURL{URI: sourceURL, AdminPasswordKeepers: req.Keepers}, nil
}
func (b *backend) Cluster(context.Context) (api.Cluster, error) { return api.Cluster{Name: "c"}, nil }

func newTestHandler(b *backend) http.Handler {
	return NewHandler(Config{Username: "admin", Password: "admin-pw", ViewerUsername: "viewer", ViewerPassword: "viewer-pw",
		Backend: b, Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "replicad_build_info 1\n") }),
		ConsoleData: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, map[bool]string{true: "viewer", false: "admin"}[IsViewer(r.Context())])
		}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func request(h http.Handler, user, pw, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestViewerReadsButChangesNothing(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)

	for _, path := range []string{"/v1/bdbs", "/v1/bdbs/1", "/v1/cluster", "/metrics", "/ui/api/overview"} {
		rec := request(h, "viewer", "viewer-pw", "GET", path, "")
		assert.Equal(t, http.StatusOK, rec.Code, "viewer GET %s", path)
		assert.NotContains(t, rec.Body.String(), redisPass, "viewer GET %s shows the database password", path)
		assert.NotContains(t, rec.Body.String(), "s3cret-admin", "viewer GET %s shows a source's password", path)
		assert.NotContains(t, rec.Body.String(), "redis://", "viewer GET %s shows a source URL", path)
		// The README: in what the viewer reads, the databases have no
		// authentication_redis_pass (not an empty one, which reads as "no
		// password").
		assert.NotContains(t, rec.Body.String(), "authentication_redis_pass", "viewer GET %s", path)
	}
	var dbs []api.Database
	require.NoError(t, json.Unmarshal(request(h, "viewer", "viewer-pw", "GET", "/v1/bdbs", "").Body.Bytes(), &dbs))
	require.Len(t, dbs, 1)
	assert.Equal(t, "10.0.0.7:12001", dbs[0].ReplicaSources[0].URI, "the viewer sees the source's address")
	assert.Equal(t, api.SourceInSync, dbs[0].ReplicaSources[0].Status)
	assert.Equal(t, "viewer", request(h, "viewer", "viewer-pw", "GET", "/ui/api/overview", "").Body.String())

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/bdbs", `{"name":"x","memory_size":1}`},
		{"PUT", "/v1/bdbs/1", `{"replica_sync":"paused"}`},
		{"DELETE", "/v1/bdbs/1", ""},
		{"GET", "/v1/bdbs/1/source_url", ""},
		{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", ""},
		{"PUT", "/v1/bdbs/1/admin_password_keepers", `{"keepers":{"a":"b"}}`},
	} {
		rec := request(h, "viewer", "viewer-pw", c.method, c.path, c.body)
		assert.Equal(t, http.StatusForbidden, rec.Code, "viewer %s %s", c.method, c.path)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, api.CodeForbidden, e.Code)
	}
	assert.Empty(t, b.calls, "no change reached the backend")

	// The admin still does everything and sees everything.
	assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "PUT", "/v1/bdbs/1", `{"replica_sync":"paused"}`).Code)
	assert.Contains(t, request(h, "admin", "admin-pw", "GET", "/v1/bdbs/1", "").Body.String(), sourceURL)
	assert.Equal(t, []string{"update"}, b.calls)
}

// A source that has sent nothing yet has no last_update, rather than the
// year 1 (Go's zero time), which reads as a date.
func TestNoLastUpdateBeforeTheSourceSendsAnything(t *testing.T) {
	body := request(newTestHandler(&backend{}), "admin", "admin-pw", "GET", "/v1/bdbs/1", "").Body.String()
	assert.Contains(t, body, `"status":"in-sync"`)
	assert.NotContains(t, body, "last_update")
}

func TestAuthentication(t *testing.T) {
	h := newTestHandler(&backend{})
	for _, c := range []struct{ user, pw string }{{"", ""}, {"viewer", "admin-pw"}, {"admin", "viewer-pw"}, {"viewer", "wrong"}} {
		rec := request(h, c.user, c.pw, "GET", "/v1/bdbs", "")
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "%q/%q", c.user, c.pw)
		assert.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
	}
	// The console's own calls get no challenge: the browser would open its
	// login dialog over the page.
	rec := request(h, "admin", "wrong", "GET", "/ui/api/overview", "", "X-Requested-With", "replicad-console")
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
	// Without a viewer configured, an empty viewer login is no login.
	noViewer := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: &backend{}, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	assert.Equal(t, http.StatusUnauthorized, request(noViewer, "", "", "GET", "/v1/bdbs", "").Code)
	req := httptest.NewRequest("GET", "/v1/bdbs", nil)
	req.Header.Set("Authorization", "Basic Og==") // ":"
	rec = httptest.NewRecorder()
	noViewer.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
}

func TestRequestsLogAtDebug(t *testing.T) {
	var buf strings.Builder
	h := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: &backend{}, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	request(h, "admin", "admin-pw", "GET", "/v1/bdbs", "")
	assert.Empty(t, buf.String(), "a request is not logged at info")
	buf.Reset()
	h = NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: &backend{}, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	request(h, "admin", "admin-pw", "GET", "/v1/bdbs", "")
	assert.Contains(t, buf.String(), "level=DEBUG msg=\"api request\"")
}

// The regeneration's body is optional; when given, it is decoded strictly
// and its keepers are bounded, and a rejected request reaches no backend.
func TestRegenerateKeepers(t *testing.T) {
	const path = "/v1/bdbs/1/actions/regenerate_admin_password"
	b := &backend{}
	h := newTestHandler(b)

	for _, body := range []string{"", " \n", "{}"} {
		b.keepers = map[string]string{"stale": "x"}
		assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "POST", path, body).Code, "body %q", body)
		assert.Empty(t, b.keepers, "body %q", body)
	}
	rec := request(h, "admin", "admin-pw", "POST", path, `{"keepers":{"rotation":"2025-q3","team":"a b"}}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, map[string]string{"rotation": "2025-q3", "team": "a b"}, b.keepers)

	big := map[string]string{}
	for i := range api.MaxAdminPasswordKeepers + 1 {
		big[strconv.Itoa(i)] = "v"
	}
	tooMany, err := json.Marshal(api.RegenerateAdminPasswordRequest{Keepers: big})
	require.NoError(t, err)
	b.calls = nil
	for name, body := range map[string]string{
		"unknown field":   `{"keepers":{"a":"b"},"password":"chosen"}`,
		"malformed":       `{"keepers":`,
		"not strings":     `{"keepers":{"a":1}}`,
		"trailing data":   `{} {}`,
		"too many":        string(tooMany),
		"empty key":       `{"keepers":{"":"b"}}`,
		"key too long":    `{"keepers":{"` + strings.Repeat("k", api.MaxKeeperKeyBytes+1) + `":"b"}}`,
		"value too long":  `{"keepers":{"a":"` + strings.Repeat("v", api.MaxKeeperValueBytes+1) + `"}}`,
		"keepers is list": `{"keepers":["a"]}`,
	} {
		rec := request(h, "admin", "admin-pw", "POST", path, body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, name)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), name)
		assert.Equal(t, api.CodeInvalidRequest, e.Code, name)
	}
	assert.Empty(t, b.calls, "a rejected regeneration reached the backend")
}

// Recording keepers: a body with keepers is required, decoded strictly.
func TestRecordKeepers(t *testing.T) {
	const path = "/v1/bdbs/1/admin_password_keepers"
	b := &backend{}
	h := newTestHandler(b)
	for name, body := range map[string]string{
		"empty body":    "",
		"no keepers":    `{}`,
		"empty keepers": `{"keepers":{}}`,
		"unknown field": `{"keepers":{"a":"b"},"regenerate":true}`,
		"empty key":     `{"keepers":{"":"b"}}`,
	} {
		rec := request(h, "admin", "admin-pw", "PUT", path, body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, name)
	}
	assert.Empty(t, b.calls, "a rejected request reached the backend")
	rec := request(h, "admin", "admin-pw", "PUT", path, `{"keepers":{"rotation":"1"}}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, map[string]string{"rotation": "1"}, b.keepers)
	var out api.SourceURL
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	assert.Equal(t, map[string]string{"rotation": "1"}, out.AdminPasswordKeepers)
}

// A page of another site, in a browser that logged in to the API (which
// then sends the credentials by itself), cannot change anything: its form
// posts and scripts' requests are refused before they reach the backend.
// Reads, Terraform, curl and the console (same origin) are not affected.
func TestCrossOriginChangesAreRefused(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	for _, hdr := range [][]string{
		{"Origin", "https://evil.example", "Content-Type", "text/plain"},
		{"Sec-Fetch-Site", "cross-site", "Content-Type", "application/x-www-form-urlencoded"},
	} {
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/v1/bdbs", `{"name":"csrf","memory_size":1048576}`},
			{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", ""},
			{"PUT", "/v1/bdbs/1", `{"replica_sync":"stopped"}`},
			{"DELETE", "/v1/bdbs/1", ""},
		} {
			rec := request(h, "admin", "admin-pw", c.method, c.path, c.body, hdr...)
			assert.Equal(t, http.StatusForbidden, rec.Code, "%s %s with %v", c.method, c.path, hdr)
			assert.Contains(t, rec.Body.String(), "cross-origin request refused")
		}
		assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "GET", "/v1/bdbs", "", hdr...).Code, "reads are not changes")
	}
	assert.Empty(t, b.calls, "no cross-origin change reached the backend")

	assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "POST", "/v1/bdbs", `{"name":"ok","memory_size":1048576}`,
		"Sec-Fetch-Site", "same-origin", "Content-Type", "application/json").Code, "the console, same origin")
	assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "POST", "/v1/bdbs", `{"name":"ok","memory_size":1048576}`,
		"Content-Type", "application/json").Code, "Terraform and curl send no Origin")
	assert.Equal(t, []string{"create", "create"}, b.calls)
}

// Wrong passwords are slowed down per client address: a guesser gets 429
// (which Terraform's client retries) once its turns are taken seconds ahead,
// another address is not slowed at all, and the guesser's own address logs
// in with the right password once the burst ends.
func TestWrongPasswordsAreThrottledPerAddress(t *testing.T) {
	b := &backend{}
	logins := throttle.New(slog.New(slog.NewTextHandler(io.Discard, nil)), "API login")
	logins.Base, logins.Max, logins.MaxWait = time.Second, time.Second, 2*time.Second
	h := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: b, Logins: logins, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	from := func(addr, pw string) int {
		req := httptest.NewRequest("GET", "/v1/bdbs", nil)
		req.RemoteAddr = addr + ":40000"
		req.SetBasicAuth("admin", pw)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	// The free attempts first, one after the other: then every guess of
	// the burst below takes a turn.
	for range throttle.FreeAttempts {
		require.Equal(t, http.StatusUnauthorized, from("10.0.0.1", "guess"))
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := from("10.0.0.1", "guess")
			mu.Lock()
			codes[c]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Positive(t, codes[http.StatusTooManyRequests], "a burst of guesses is cut short: %v", codes)
	assert.Equal(t, 20, codes[http.StatusTooManyRequests]+codes[http.StatusUnauthorized], "%v", codes)
	assert.LessOrEqual(t, codes[http.StatusUnauthorized], 3, "at most the turns within MaxWait (now, 1 s and 2 s ahead) were checked: %v", codes)

	assert.Equal(t, http.StatusOK, from("10.0.0.2", "admin-pw"), "another address is not slowed")
	redistest.Eventually(t, 10*time.Second, "the guesser's address logs in with the right password", func() error {
		if c := from("10.0.0.1", "admin-pw"); c != http.StatusOK {
			return fmt.Errorf("%d", c)
		}
		return nil
	})
	assert.Equal(t, http.StatusUnauthorized, from("10.0.0.1", "guess"), "a success clears the record: the next failure is free")
}

// Answers that carry passwords are never cached (a proxy on the way, a
// browser that showed them).
func TestAnswersWithSecretsAreNotCached(t *testing.T) {
	h := newTestHandler(&backend{})
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/bdbs", ""},
		{"GET", "/v1/bdbs/1", ""},
		{"GET", "/v1/bdbs/1/source_url", ""},
		{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", ""},
		{"PUT", "/v1/bdbs/1", `{"replica_sync":"paused"}`},
		{"GET", "/v1/bdbs/404", ""},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, c.body)
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"), "%s %s (%d)", c.method, c.path, rec.Code)
	}
}

// A known path asked with a method it does not take is a 405 naming the
// ones it takes; an unknown path is a 404 (no_route).
func TestWrongMethodIsMethodNotAllowed(t *testing.T) {
	h := newTestHandler(&backend{})
	for _, c := range []struct{ method, path, allow string }{
		{"PATCH", "/v1/bdbs/1", "GET, PUT, DELETE"},
		{"DELETE", "/v1/cluster", "GET"},
		{"PUT", "/v1/bdbs", "GET, POST"},
		{"GET", "/v1/bdbs/1/actions/regenerate_admin_password", "POST"},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, "")
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s", c.method, c.path)
		assert.Equal(t, c.allow, rec.Header().Get("Allow"), "%s %s", c.method, c.path)
		assert.Contains(t, rec.Body.String(), "takes "+c.allow, "%s %s", c.method, c.path)
	}
	// A path that is none of the API's is no_route, not the not_found
	// that says a database does not exist (which a client takes for a
	// deletion).
	rec := request(h, "admin", "admin-pw", "GET", "/v1/v1/bdbs/1", "")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Contains(t, rec.Body.String(), `"error_code":"no_route"`)
	assert.Equal(t, http.StatusOK, request(h, "admin", "admin-pw", "GET", "/v1/bdbs/1", "").Code)
}

// Field names are matched exactly, as Redis Enterprise's are: "NAME" or
// "Memory_Size" is an unknown field (Go's decoder alone would take it for
// "name"), refused before anything reaches the backend, at any depth.
func TestFieldNamesAreCaseSensitive(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	for _, c := range []struct{ method, path, body, field string }{
		{"POST", "/v1/bdbs", `{"NAME":"x","memory_size":4194304}`, `"NAME"`},
		{"PUT", "/v1/bdbs/1", `{"Memory_Size":4194304}`, `"Memory_Size"`},
		{"PUT", "/v1/bdbs/1", `{"replica_sources":[{"URI":"redis://a:b@h:1"}]}`, `"URI"`},
		{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", `{"Keepers":{"a":"b"}}`, `"Keepers"`},
		{"PUT", "/v1/bdbs/1/admin_password_keepers", `{"KEEPERS":{"a":"b"}}`, `"KEEPERS"`},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, c.body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s %s", c.method, c.path, c.body)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, api.CodeInvalidRequest, e.Code)
		assert.Contains(t, e.Description, "unknown field "+c.field)
	}
	assert.Empty(t, b.calls, "nothing reached the backend")
	// Keys of a map (keepers) are the caller's: any case goes.
	rec := request(h, "admin", "admin-pw", "POST", "/v1/bdbs/1/actions/regenerate_admin_password", `{"keepers":{"Rotation":"B"}}`)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, map[string]string{"Rotation": "B"}, b.keepers)
}

// A request without the body it needs says so in a sentence, not "EOF".
func TestAMissingBodyIsNamed(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/bdbs"}, {"PUT", "/v1/bdbs/1"}, {"PUT", "/v1/bdbs/1/admin_password_keepers"},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, "  ")
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s", c.method, c.path)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, "the request needs a JSON object as its body, and it has none", e.Description, "%s %s", c.method, c.path)
	}
	assert.Empty(t, b.calls)
}

// What a status message quotes of the data goes, the sentence stays:
// possessives are no quotes.
func TestRedactData(t *testing.T) {
	for in, want := range map[string]string{
		``: ``,
		`the source's link is down: the destination's redis-server stopped`: `the source's link is down: the destination's redis-server stopped`,
		`3 pending entries: "orders:1" group "billing": 1 of 4`:             `3 pending entries: "…" group "…": 1 of 4`,
		`key "a\"b"... (db 0): unknown rdb value type 99`:                   `key "…" (db 0): unknown rdb value type 99`,
		`ERR unknown command 'FOO', with args beginning with: 'k1' 'v1' `:   `ERR unknown command '…', with args beginning with: '…' '…' `,
		`NOGROUP No such key 'ledger' or consumer group 'g' in XREADGROUP`:  `NOGROUP No such key '…' or consumer group '…' in XREADGROUP`,
	} {
		assert.Equal(t, want, RedactData(in), in)
	}
}

// Redis does not escape a quote inside the data it quotes: a key name with
// an apostrophe ("customer's ledger") was redacted up to its apostrophe,
// and the viewer read the rest of it.
func TestRedactDataKeysWithQuotes(t *testing.T) {
	for in, want := range map[string]string{
		`NOGROUP No such key 'customer's ledger' or consumer group 'g' in XREADGROUP`: `NOGROUP No such key '…' or consumer group '…' in XREADGROUP`,
		`ERR unknown command 'FOO', with args beginning with: 'it's' 'o'brien' `:      `ERR unknown command '…', with args beginning with: '…' '…' `,
		`WRONGTYPE on key 'a'b'c'.`: `WRONGTYPE on key '…'.`,
		`the source's link is down: the destinations' redis-servers stopped`: `the source's link is down: the destinations' redis-servers stopped`,
	} {
		got := RedactData(in)
		assert.Equal(t, want, got, in)
		for _, secret := range []string{"ledger", "brien", "b'c"} {
			assert.NotContains(t, got, secret, in)
		}
	}
}

type panickingBackend struct{ backend }

func (panickingBackend) ListDatabases(context.Context) ([]api.Database, error) {
	panic("a bug in listing")
}

// A handler that panics is a bug the operator must see: net/http logged it
// through the server's ErrorLog, at debug level (where TLS handshake noise
// goes), so that a default log said nothing. It is an error line with the
// stack, and the client gets a 500 in the API's JSON.
func TestAPanicIsLoggedAsAnError(t *testing.T) {
	var logs bytes.Buffer
	h := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: &panickingBackend{}, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/bdbs", nil)
	req.SetBasicAuth("admin", "admin-pw")
	require.NotPanics(t, func() { h.ServeHTTP(rec, req) })
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	var e api.Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	assert.Equal(t, api.CodeInternal, e.Code)
	var line map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &line), "one JSON line: %s", logs.String())
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, "a bug in listing", line["panic"])
	assert.Contains(t, line["stack"], "ListDatabases")
	assert.Equal(t, "/v1/bdbs", line["path"])
}

// Every answer, the API's JSON, its errors (which quote the path asked) and
// the metrics, tells browsers not to sniff it for another type.
func TestAnswersAreNotSniffed(t *testing.T) {
	h := newTestHandler(&backend{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/bdbs"}, {"GET", "/v1/nope/<script>alert(1)</script>"}, {"GET", "/metrics"}, {"GET", "/healthz"}, {"POST", "/v1/cluster"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(c.method, c.path, nil)
		req.SetBasicAuth("admin", "admin-pw")
		h.ServeHTTP(rec, req)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), "%s %s (%d)", c.method, c.path, rec.Code)
	}
}

type failingBackend struct{ backend }

func (failingBackend) GetDatabase(context.Context, int) (api.Database, error) {
	return api.Database{}, errors.New("read the state file: input/output error")
}

// A request that fails inside the service is an error line that says which
// request, and which database: it said "request failed" and the error only.
func TestAFailedRequestIsLoggedWithWhatWasAsked(t *testing.T) {
	var logs bytes.Buffer
	h := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: &failingBackend{}, Metrics: http.NotFoundHandler(),
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/bdbs/7", nil)
	req.SetBasicAuth("admin", "admin-pw")
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	var line map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &line), "one JSON line: %s", logs.String())
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, "GET", line["method"])
	assert.Equal(t, "/v1/bdbs/7", line["path"])
	assert.EqualValues(t, 7, line["uid"], "the line names the database, so that the log's handler adds its name")
	assert.Contains(t, line["err"], "input/output error")
}

// A body that names a field twice, is no object, or gives "port": 0 is
// refused before anything reaches the backend. The first two used to be
// taken (the last value won, so {"name":"a","name":"b"} created "b", and
// "null" went on as an empty create); "port": 0 was taken as "choose one".
func TestAmbiguousBodiesAreRefused(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/bdbs", `{"name":"a","memory_size":4194304,"name":"b"}`, `field "name" is given twice`},
		{"POST", "/v1/bdbs", `{"name":"a","memory_size":4194304,"n\u0061me":"b"}`, `field "name" is given twice`},
		{"PUT", "/v1/bdbs/1", `{"replica_sources":[{"uri":"redis://h:1","uri":"redis://h:2"}]}`, `field "uri" is given twice`},
		{"PUT", "/v1/bdbs/1", `{"memory_size":4194304,"memory_size":8388608}`, `field "memory_size" is given twice`},
		{"PUT", "/v1/bdbs/1/admin_password_keepers", `{"keepers":{"a":"1","a":"2"}}`, `field "a" is given twice`},
		{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", `{"keepers":{"a":"1"},"keepers":{"b":"2"}}`, `field "keepers" is given twice`},
		{"POST", "/v1/bdbs", `null`, "the body must be a JSON object"},
		{"PUT", "/v1/bdbs/1", `null`, "the body must be a JSON object"},
		{"POST", "/v1/bdbs", `{"name":"a","memory_size":4194304,"port":0}`, "port 0 is out of range 1024-65535: leave port out"},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, c.body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s %s", c.method, c.path, c.body)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, api.CodeInvalidRequest, e.Code)
		assert.Contains(t, e.Description, c.want, "%s %s %s", c.method, c.path, c.body)
	}
	assert.Empty(t, b.calls, "nothing reached the backend")

	// The same key in two objects, or as a key and a value, is fine.
	ok := []struct{ method, path, body string }{
		{"POST", "/v1/bdbs", `{"name":"a","memory_size":4194304,"replica_sources":[{"uri":"redis://h:1","server_cert":"c"},{"uri":"redis://h:2","server_cert":"c"}],"port":1024}`},
		{"PUT", "/v1/bdbs/1", `{"replica_sources":[],"name":"name"}`},
		{"POST", "/v1/bdbs/1/actions/regenerate_admin_password", `{"keepers":{"name":"keepers","keepers":"name"}}`},
	}
	for _, c := range ok {
		rec := request(h, "admin", "admin-pw", c.method, c.path, c.body)
		assert.Equal(t, http.StatusOK, rec.Code, "%s %s %s: %s", c.method, c.path, c.body, rec.Body)
	}
	assert.Equal(t, []string{"create", "update", "regenerate"}, b.calls)
}

// A body that is not UTF-8 text, or whose strings escape half of a UTF-16
// surrogate pair, is refused: encoding/json replaced such bytes with U+FFFD
// in silence, so a password sent as "abc\xffdefgh" was stored as another
// one, with which the client could never log in.
func TestBodiesWhoseTextIsNotUnicodeAreRefused(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/bdbs", "{\"name\":\"a\",\"memory_size\":4194304,\"authentication_redis_pass\":\"abc\xffdefgh\"}"},
		{"PUT", "/v1/bdbs/1", "{\"authentication_redis_pass\":\"abc\xc3defgh\"}"},
		{"PUT", "/v1/bdbs/1", `{"authentication_redis_pass":"abc\ud800defgh"}`},
		{"PUT", "/v1/bdbs/1", `{"authentication_redis_pass":"abc\udc00defgh"}`},
		{"PUT", "/v1/bdbs/1", `{"authentication_redis_pass":"abc\ud800\u0041defgh"}`},
		{"PUT", "/v1/bdbs/1", `{"replica_sources":[{"uri":"redis://h:1","server_cert":"\uDBFF"}]}`},
		{"PUT", "/v1/bdbs/1/admin_password_keepers", "{\"keepers\":{\"k\":\"\xed\xa0\x80\"}}"},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, c.body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s %q", c.method, c.path, c.body)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, api.CodeInvalidRequest, e.Code)
		assert.Contains(t, e.Description, "UTF-8", "%s %s %q", c.method, c.path, c.body)
	}
	assert.Empty(t, b.calls, "nothing reached the backend")

	// Escapes that are whole characters, a surrogate pair included, and
	// an escaped backslash before a u, are text.
	for _, body := range []string{
		`{"authentication_redis_pass":"pass \ud83d\ude00 \u00e9 日本 \\ud800"}`,
		`{"name":"\u0061bc"}`,
	} {
		rec := request(h, "admin", "admin-pw", "PUT", "/v1/bdbs/1", body)
		assert.Equal(t, http.StatusOK, rec.Code, "%s: %s", body, rec.Body)
	}
	assert.Equal(t, []string{"update", "update"}, b.calls)
}

// A body larger than the API takes is a 413 that says the bound: it was a
// 400 "request body too large", with no size to go by.
func TestABodyTooLargeSaysTheBound(t *testing.T) {
	b := &backend{}
	h := newTestHandler(b)
	body := `{"name":"` + strings.Repeat("a", maxBody) + `"}`
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/bdbs"}, {"PUT", "/v1/bdbs/1"}, {"POST", "/v1/bdbs/1/actions/regenerate_admin_password"},
	} {
		rec := request(h, "admin", "admin-pw", c.method, c.path, body)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "%s %s", c.method, c.path)
		var e api.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		assert.Equal(t, api.CodeInvalidRequest, e.Code)
		assert.Contains(t, e.Description, "4194304 bytes", "%s %s", c.method, c.path)
	}
	assert.Empty(t, b.calls, "nothing reached the backend")
}

// wouldFlushBackend refuses every update as one that would flush.
type wouldFlushBackend struct {
	backend
	got api.UpdateDatabaseRequest
}

func (b *wouldFlushBackend) UpdateDatabase(_ context.Context, _ int, req api.UpdateDatabaseRequest) (api.Database, error) {
	b.got = req
	return api.Database{}, &api.Error{Code: api.CodeWouldFlush, Description: "this update would flush database 1"}
}

// An update with replica_no_flush is read as such, and the refusal of one
// that would flush is a 409 with its own error_code, which a client tells
// from other conflicts.
func TestAnUpdateRefusedAsWouldFlushIs409(t *testing.T) {
	b := &wouldFlushBackend{}
	h := NewHandler(Config{Username: "admin", Password: "admin-pw", Backend: b,
		Metrics: http.NotFoundHandler(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := request(h, "admin", "admin-pw", http.MethodPut, "/v1/bdbs/1", `{"replica_sync":"enabled","replica_no_flush":true}`)
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	var e api.Error
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
	assert.Equal(t, api.CodeWouldFlush, e.Code)
	require.NotNil(t, b.got.ReplicaNoFlush)
	assert.True(t, *b.got.ReplicaNoFlush)
}
