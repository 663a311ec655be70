// Package api serves the REST API of redis-replicad: HTTP routing, basic
// auth, strict JSON decoding and error mapping. What the requests do is the
// Backend's business.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/throttle"
)

// Backend carries out the requests.
type Backend interface {
	ListDatabases(ctx context.Context) ([]api.Database, error)
	GetDatabase(ctx context.Context, uid int) (api.Database, error)
	CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error)
	UpdateDatabase(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (api.Database, error)
	DeleteDatabase(ctx context.Context, uid int) error
	SourceURL(ctx context.Context, uid int) (api.SourceURL, error)
	RegenerateAdminPassword(ctx context.Context, uid int, req api.RegenerateAdminPasswordRequest) (api.AdminPassword, error)
	RecordAdminPasswordKeepers(ctx context.Context, uid int, req api.AdminPasswordKeepersRequest) (api.SourceURL, error)
	Cluster(ctx context.Context) (api.Cluster, error)
}

// Config of the handler.
type Config struct {
	Username, Password string
	// ViewerUsername and ViewerPassword, when set, are a read-only user: it
	// may read the databases, the cluster, the metrics and the console, but
	// change nothing and never sees a password or a source URL.
	ViewerUsername, ViewerPassword string
	Backend                        Backend
	Metrics                        http.Handler
	// Console serves the status console's files (GET / and /ui/...): they
	// hold no data, so they are served without authentication; the page
	// asks for a login and reads everything through authenticated calls.
	Console http.Handler
	// ConsoleData serves the console's own read calls (/ui/api/...), behind
	// the same authentication as the API; IsViewer tells who is asking.
	ConsoleData http.Handler
	Logger      *slog.Logger
	// Health says how the instance stands for /healthz: "starting" while
	// its databases come back after a start, then "ok". Nil means "ok".
	Health func() string
	// Logins slows down wrong passwords per client address; nil: one
	// with the package throttle's defaults.
	Logins *throttle.Throttle
}

// maxBody bounds request bodies; the largest legitimate one (32 sources with
// certificates) is far smaller.
const maxBody = 4 << 20

// NewHandler returns the API's routes.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logins == nil {
		cfg.Logins = throttle.New(cfg.Logger, "login to the API")
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	// /healthz is liveness: the process serves (200) whatever its
	// databases do; the status says whether they are all back yet.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		status := "ok"
		if cfg.Health != nil {
			status = cfg.Health()
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": status})
	})
	read, admin := s.reader, s.admin
	mux.Handle("GET /metrics", read(cfg.Metrics.ServeHTTP))
	mux.Handle("GET /v1/cluster", read(s.cluster))
	mux.Handle("GET /v1/bdbs", read(s.list))
	mux.Handle("POST /v1/bdbs", admin(s.create))
	mux.Handle("GET /v1/bdbs/{uid}", read(s.get))
	mux.Handle("PUT /v1/bdbs/{uid}", admin(s.update))
	mux.Handle("DELETE /v1/bdbs/{uid}", admin(s.delete))
	mux.Handle("GET /v1/bdbs/{uid}/source_url", admin(s.sourceURL))
	mux.Handle("POST /v1/bdbs/{uid}/actions/regenerate_admin_password", admin(s.regenerate))
	mux.Handle("PUT /v1/bdbs/{uid}/admin_password_keepers", admin(s.recordKeepers))
	if cfg.Console != nil {
		mux.Handle("GET /{$}", cfg.Console)
		mux.Handle("GET /ui/", cfg.Console)
	}
	if cfg.ConsoleData != nil {
		mux.Handle("GET /ui/api/", read(cfg.ConsoleData.ServeHTTP))
	}
	// A path the API knows, asked with another method, is a 405 that
	// names the methods it takes (the catch-all below would say 404).
	for path, allow := range map[string]string{
		"/healthz": "GET", "/metrics": "GET", "/v1/cluster": "GET",
		"/v1/bdbs": "GET, POST", "/v1/bdbs/{uid}": "GET, PUT, DELETE",
		"/v1/bdbs/{uid}/source_url":                        "GET",
		"/v1/bdbs/{uid}/actions/regenerate_admin_password": "POST",
		"/v1/bdbs/{uid}/admin_password_keepers":            "PUT",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, api.CodeInvalidRequest, fmt.Sprintf("%s takes %s, not %s", r.URL.Path, allow, r.Method))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.CodeNoRoute, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	// A browser that logged in to the API (basic auth, which it then
	// sends by itself) must not let another site's page change anything:
	// a form or a script of that page posting here is refused. Terraform,
	// curl and the console (same origin) are not browsers' cross-origin
	// requests.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, api.CodeForbidden, "cross-origin request refused: a page of another site may not change this service")
	}))
	return s.logged(csrf.Handler(mux))
}

type server struct {
	cfg       Config
	lastFlush atomic.Int64 // unix nanoseconds of the last Logins.Flush
}

type role int

const (
	roleNone role = iota
	roleAdmin
	roleViewer
)

type roleKey struct{}

// IsViewer reports whether the request behind ctx was made by the read-only
// viewer user.
func IsViewer(ctx context.Context) bool { r, _ := ctx.Value(roleKey{}).(role); return r == roleViewer }

// roleOf checks the basic auth credentials of r. Both pairs are always
// compared, so the time taken says nothing about which user name exists.
func (s *server) roleOf(r *http.Request) role {
	user, pw, ok := r.BasicAuth()
	if !ok {
		return roleNone
	}
	admin := equal(user, s.cfg.Username) & equal(pw, s.cfg.Password)
	viewer := 0
	if s.cfg.ViewerUsername != "" && s.cfg.ViewerPassword != "" {
		viewer = equal(user, s.cfg.ViewerUsername) & equal(pw, s.cfg.ViewerPassword)
	}
	switch {
	case admin == 1:
		return roleAdmin
	case viewer == 1:
		return roleViewer
	}
	return roleNone
}

func equal(a, b string) int { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) }

// login checks r's credentials, after the turn the throttle gives the
// client's address when it has been guessing (package throttle): the
// answer of a turn too far ahead is 429 with Retry-After, which Terraform's
// client retries. ok is false when an answer was written.
func (s *server) login(w http.ResponseWriter, r *http.Request) (role, bool) {
	if _, _, given := r.BasicAuth(); !given {
		return roleNone, true // no guess: a 401 with its challenge
	}
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if now := time.Now().UnixNano(); now-s.lastFlush.Load() > int64(throttle.LogWindow/4) {
		s.lastFlush.Store(now)
		s.cfg.Logins.Flush()
	}
	if err := s.cfg.Logins.Wait(r.Context(), peer); err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, api.CodeTooManyRequests, "too many failed logins from this address: try again in a few seconds")
		return roleNone, false
	}
	who := s.roleOf(r)
	if who == roleNone {
		s.cfg.Logins.Failed(peer, "peer", peer)
	} else {
		s.cfg.Logins.Succeeded(peer)
	}
	return who, true
}

// reader lets the admin and the viewer in.
func (s *server) reader(next http.HandlerFunc) http.Handler { return s.authenticated(next, false) }

// admin lets the admin in; the viewer gets 403.
func (s *server) admin(next http.HandlerFunc) http.Handler { return s.authenticated(next, true) }

func (s *server) authenticated(next http.HandlerFunc, adminOnly bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.login(w, r)
		if !ok {
			return
		}
		switch {
		case who == roleNone:
			// The console logs in with its own form: a challenge would make
			// the browser open its login dialog over the page.
			if r.Header.Get("X-Requested-With") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="redis-replicad"`)
			}
			writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, "valid basic auth credentials are required")
			return
		case who == roleViewer && adminOnly:
			writeError(w, http.StatusForbidden, api.CodeForbidden, "the viewer user may read the status but not change anything or read secrets")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, who)))
	})
}

// ForViewer is db as the viewer user sees it: WithoutSecrets, and without
// the source's data: the key names, members and values that a last_error
// or sync_note quotes are replaced (see RedactData). The viewer reads the
// status, not what the databases hold.
func ForViewer(db api.Database) api.Database {
	db = WithoutSecrets(db)
	db.LastError = RedactData(db.LastError)
	for i := range db.ReplicaSources {
		src := &db.ReplicaSources[i]
		src.LastError = RedactData(src.LastError)
		src.SyncNote = RedactData(src.SyncNote)
		src.CompressionNote = RedactData(src.CompressionNote)
		if len(src.Shards) > 0 {
			shards := make([]api.ReplicaShardStatus, len(src.Shards))
			for j, sh := range src.Shards {
				sh.LastError = RedactData(sh.LastError)
				shards[j] = sh
			}
			src.Shards = shards
		}
	}
	return db
}

// WithoutSecrets is db without the application password, and with each
// source's address instead of its URL (which may hold a password).
func WithoutSecrets(db api.Database) api.Database {
	db.AuthenticationRedisPass = ""
	sources := make([]api.ReplicaSourceStatus, len(db.ReplicaSources))
	for i, src := range db.ReplicaSources {
		if u, err := redisurl.Parse(src.URI); err == nil {
			// Errors are written without secrets; this makes sure.
			if u.Password != "" {
				src.LastError = strings.ReplaceAll(src.LastError, u.Password, "xxxxx")
				src.CompressionNote = strings.ReplaceAll(src.CompressionNote, u.Password, "xxxxx")
			}
			src.URI = u.Addr()
		} else {
			src.URI = ""
		}
		sources[i] = src
	}
	db.ReplicaSources = sources
	return db
}

// Quoted data in status messages: the service quotes every key name,
// member or value it writes into a message Go's way ("..."), cut long
// ones with "..." after the quote.
var goQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"(?:\.\.\.)?`)

// RedactData replaces what a status message quotes of the data (key names,
// members, values, a command's arguments) with "…", keeping the sentence:
// what is wrong, and where, without what the database holds.
func RedactData(msg string) string {
	if msg == "" {
		return msg
	}
	msg = goQuoted.ReplaceAllLiteralString(msg, `"…"`)
	return redactRedisQuoted(msg)
}

// redactRedisQuoted replaces what Redis quotes in its error replies:
// single quotes after a space, a colon, a comma, '=' or a parenthesis.
// Redis does not escape a quote inside ("'customer's ledger'" is one key):
// the data ends at a quote followed by a space, punctuation or the end of
// the line, else at the line's last quote.
func redactRedisQuoted(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if msg[i] != '\'' || (i > 0 && !strings.ContainsRune(" \t(:,=", rune(msg[i-1]))) {
			b.WriteByte(msg[i])
			continue
		}
		end, last := -1, -1
		for j := i + 1; j < len(msg) && msg[j] != '\n'; j++ {
			if msg[j] != '\'' {
				continue
			}
			last = j
			if j+1 == len(msg) || strings.ContainsRune(" \t\n),.:;", rune(msg[j+1])) {
				end = j
				break
			}
		}
		if end < 0 {
			end = last
		}
		if end < 0 {
			b.WriteByte(msg[i]) // an apostrophe, not a quote
			continue
		}
		b.WriteString("'…'")
		i = end
	}
	return b.String()
}

// logged logs each request's method, path, status and duration; never bodies,
// which carry passwords.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No answer is to be read as another type than it says: a JSON
		// error quotes the path it was asked, which a browser sniffing
		// for HTML might run.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		began := time.Now()
		defer func() {
			// A panic is a bug: logged at error, with its stack, and
			// answered 500. net/http would log it through the server's
			// ErrorLog, which is at debug (TLS handshake noise), unseen.
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Logger.Error("api request failed: internal error", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rec.written {
				// Part of an answer is out: the connection is cut, so
				// that the client does not take it for a whole one.
				panic(http.ErrAbortHandler)
			}
			writeError(rec, http.StatusInternalServerError, api.CodeInternal, "internal error: the service's log says more")
		}()
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			return
		}
		// Debug, not info: requests are half of all lines, and a poll
		// (the console's, Terraform's) repeats them every few seconds.
		s.cfg.Logger.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(began).Round(time.Microsecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool // a header or body was sent
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status, r.written = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets a handler behind the recorder stream (the metrics'
// compression writer flushes).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		r.written = true
		f.Flush()
	}
}

func (s *server) cluster(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Backend.Cluster(r.Context())
	s.reply(w, r, c, err)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	dbs, err := s.cfg.Backend.ListDatabases(r.Context())
	if dbs == nil {
		dbs = []api.Database{}
	}
	if IsViewer(r.Context()) {
		for i := range dbs {
			dbs[i] = ForViewer(dbs[i])
		}
	}
	s.reply(w, r, dbs, err)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateDatabaseRequest
	body, ok := readBody(w, r)
	if !ok || !decodeBody(w, body, &req) {
		return
	}
	// An absent port is one the service chooses; "port": 0 given is no
	// port at all, and taking it for "choose one" would hide a caller's
	// mistake (an unset variable rendered as 0).
	if req.Port == 0 && hasField(body, "port") {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, fmt.Sprintf("port 0 is out of range %d-65535: leave port out for the service to choose one", api.MinPort))
		return
	}
	db, err := s.cfg.Backend.CreateDatabase(r.Context(), req)
	s.reply(w, r, db, err)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	db, err := s.cfg.Backend.GetDatabase(r.Context(), uid)
	if IsViewer(r.Context()) {
		db = ForViewer(db)
	}
	s.reply(w, r, db, err)
}

func (s *server) update(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	var req api.UpdateDatabaseRequest
	if !decode(w, r, &req) {
		return
	}
	db, err := s.cfg.Backend.UpdateDatabase(r.Context(), uid, req)
	s.reply(w, r, db, err)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Backend.DeleteDatabase(r.Context(), uid); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) sourceURL(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	u, err := s.cfg.Backend.SourceURL(r.Context(), uid)
	s.reply(w, r, u, err)
}

func (s *server) regenerate(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	// The body is optional: an empty one regenerates without keepers.
	var req api.RegenerateAdminPasswordRequest
	if !decodeOptional(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, err.Error())
		return
	}
	p, err := s.cfg.Backend.RegenerateAdminPassword(r.Context(), uid, req)
	s.reply(w, r, p, err)
}

func (s *server) recordKeepers(w http.ResponseWriter, r *http.Request) {
	uid, ok := pathUID(w, r)
	if !ok {
		return
	}
	var req api.AdminPasswordKeepersRequest
	if !decode(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, err.Error())
		return
	}
	u, err := s.cfg.Backend.RecordAdminPasswordKeepers(r.Context(), uid, req)
	s.reply(w, r, u, err)
}

// reply writes v, or the error with the status its code calls for.
func (s *server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, v)
		return
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		writeError(w, statusOf(apiErr.Code), apiErr.Code, apiErr.Description)
		return
	}
	// Which request, and which database: the line alone says what failed.
	attrs := []any{"method", r.Method, "path", r.URL.Path}
	if uid, convErr := strconv.Atoi(r.PathValue("uid")); convErr == nil {
		attrs = append(attrs, "uid", uid)
	}
	s.cfg.Logger.Error("request failed", append(attrs, "err", err)...)
	// The service cannot keep changes now (its state file): not a bug,
	// and nothing of the request was made, which 500 did not say.
	var unavailable interface{ Unavailable() bool }
	if errors.As(err, &unavailable) && unavailable.Unavailable() {
		writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
}

func statusOf(code string) int {
	switch code {
	case api.CodeInvalidRequest:
		return http.StatusBadRequest
	case api.CodeUnauthorized:
		return http.StatusUnauthorized
	case api.CodeForbidden:
		return http.StatusForbidden
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeConflict, api.CodeWouldFlush:
		return http.StatusConflict
	case api.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func pathUID(w http.ResponseWriter, r *http.Request) (int, bool) {
	// Canonical decimal only: "+1" and "01" are not database 1, so that one
	// database has one URL.
	raw := r.PathValue("uid")
	uid, err := strconv.Atoi(raw)
	if err != nil || uid < 1 || strconv.Itoa(uid) != raw {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("database %q does not exist: ids are positive integers", r.PathValue("uid")))
		return 0, false
	}
	return uid, true
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// malformed JSON are a 400 before anything is done.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r)
	return ok && decodeBody(w, body, v)
}

// decodeOptional is decode for a body that may be empty (v left as it is).
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	return decodeBody(w, body, v)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeInvalidRequest,
			fmt.Sprintf("the request body is larger than the API takes (%d bytes, 4 MiB)", tooLarge.Limit))
		return nil, false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "cannot read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

func decodeBody(w http.ResponseWriter, body []byte, v any) bool {
	if err := unicodeText(body); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "the request needs a JSON object as its body, and it has none")
		return false
	} else if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: data after the JSON object")
		return false
	}
	if err := uniqueKeys(body); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+err.Error())
		return false
	}
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+err.Error())
		return false
	}
	if err := exactFieldNames(reflect.TypeOf(v), raw); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// unicodeText refuses a body that is not UTF-8, or whose strings escape
// half of a UTF-16 surrogate pair: encoding/json decodes both to U+FFFD in
// silence, so a password (or a certificate, a keeper) would be stored as
// another than the one sent.
func unicodeText(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("the body is not UTF-8 text")
	}
	inString, pendingHigh := false, false
	for i := 0; i < len(body); i++ {
		ch := body[i]
		if !inString {
			inString = ch == '"'
			continue
		}
		var r rune = -1 // not a \u escape
		switch {
		case ch == '"':
			inString = false
		case ch == '\\' && i+1 < len(body):
			i++
			if body[i] == 'u' && i+4 < len(body) {
				if n, err := strconv.ParseUint(string(body[i+1:i+5]), 16, 32); err == nil {
					r = rune(n)
					i += 4
				}
			}
		}
		switch {
		case pendingHigh && (r < 0xDC00 || r > 0xDFFF):
			return errors.New("a string escapes half of a UTF-16 surrogate pair (\\uD800-\\uDBFF not followed by \\uDC00-\\uDFFF), which is no UTF-8 text")
		case pendingHigh:
			pendingHigh = false
		case r >= 0xD800 && r <= 0xDBFF:
			pendingHigh = true
		case r >= 0xDC00 && r <= 0xDFFF:
			return errors.New("a string escapes half of a UTF-16 surrogate pair (\\uDC00-\\uDFFF alone), which is no UTF-8 text")
		}
	}
	return nil
}

// hasField says whether the JSON object body gives the field name (null
// included).
func hasField(body []byte, name string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m[name]
	return ok
}

// uniqueKeys refuses a body whose top level is not an object, or in which
// an object names a key twice: encoding/json keeps the last value and
// drops the first in silence, so {"name":"a","name":"b"} created "b"
// where a reader of the request (or a proxy that checked it) saw "a".
func uniqueKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// One frame per open container; keys is nil for an array.
	type frame struct {
		keys    map[string]bool
		wantKey bool
	}
	var open []*frame
	for n := 0; ; n++ {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); n == 0 && (!ok || d != '{') {
			return errors.New("the body must be a JSON object")
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			open = open[:len(open)-1]
			continue
		}
		if len(open) > 0 {
			top := open[len(open)-1]
			if top.wantKey {
				k, _ := tok.(string)
				if top.keys[k] {
					return fmt.Errorf("json: field %q is given twice", k)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
			// A value: in an object, a key comes after it.
			top.wantKey = top.keys != nil
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			open = append(open, &frame{})
		}
	}
}

// exactFieldNames checks that every object key of raw (a decoded body) is
// spelled exactly as a field of t: encoding/json matches names regardless
// of case, so "NAME" would set name, where the API (as Redis Enterprise's)
// has one spelling and refuses any other as an unknown field.
func exactFieldNames(t reflect.Type, raw any) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := raw.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for _, e := range x {
				if err := exactFieldNames(t.Elem(), e); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			jsonFields(t, fields)
			for k, e := range x {
				ft, ok := fields[k]
				if !ok {
					return fmt.Errorf("json: unknown field %q", k)
				}
				if err := exactFieldNames(ft, e); err != nil {
					return err
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, e := range x {
				if err := exactFieldNames(t.Elem(), e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// jsonFields adds the JSON names of struct t's fields (and of its embedded
// structs') to fields.
func jsonFields(t reflect.Type, fields map[string]reflect.Type) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, fields)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// Answers carry passwords (a database's, a source URL's): no cache
	// along the way, or in a browser, may keep them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, api.Error{Code: code, Description: description})
}
