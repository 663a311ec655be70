// Package client is the HTTP client of the redis-replicad REST API, used by the
// Terraform provider.
//
// Every call takes a context, retries transient failures (connection errors,
// HTTP 5xx and 429) with a bounded exponential backoff, never retries a 4xx,
// and turns a non-2xx answer into a *StatusError that wraps the *api.Error the
// service sent. Request and response bodies are never logged: they can carry
// database passwords.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// Defaults of Config.
const (
	DefaultUsername     = "admin"
	DefaultRetryMax     = 4
	DefaultRetryWaitMin = 500 * time.Millisecond
	DefaultRetryWaitMax = 10 * time.Second
	DefaultTimeout      = 60 * time.Second
)

// maxBodySize bounds what is read of a response body.
const maxBodySize = 16 << 20

// LogFunc receives one event about an HTTP exchange. The fields hold only the
// method, the path, the attempt number, the status and timings: never a body,
// a header or a credential.
type LogFunc func(ctx context.Context, msg string, fields map[string]any)

// Config configures a Client.
type Config struct {
	// Endpoint is the base URL of the service, for example https://host:9443.
	// It must not hold credentials.
	Endpoint string
	// Username and Password are the basic-auth credentials of the API.
	// Username defaults to "admin".
	Username string
	Password string
	// CACert is a PEM bundle of the certificate authorities trusted for the
	// API's certificate. When empty, the system's roots are used.
	CACert string
	// InsecureSkipVerify turns off the verification of the API's certificate.
	InsecureSkipVerify bool

	// RetryMax is the largest number of retries after the first attempt
	// (default 4; a negative value means no retry).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the backoff between attempts.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// Timeout bounds one attempt (default 60s). The context bounds the call.
	Timeout time.Duration

	// UserAgent is sent with every request.
	UserAgent string
	// Log, when set, is told about each attempt and response.
	Log LogFunc
}

// Client calls the REST API of one redis-replicad instance. It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	username  string
	password  string
	userAgent string
	log       LogFunc
	http      *retryablehttp.Client
}

// New checks cfg and returns a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Endpoint) == "" {
		return nil, errors.New("the endpoint is empty")
	}
	base, err := url.Parse(strings.TrimSpace(cfg.Endpoint))
	if err != nil {
		// The url package quotes the input; do not echo it, it may hold credentials.
		return nil, errors.New("the endpoint is not a valid URL")
	}
	if base.Scheme != "https" && base.Scheme != "http" {
		return nil, fmt.Errorf("the endpoint must be an https:// URL, got scheme %q", base.Scheme)
	}
	if base.Host == "" {
		return nil, errors.New("the endpoint has no host")
	}
	if base.User != nil {
		return nil, errors.New("the endpoint must not contain credentials: use the username and password settings")
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("the endpoint must not have a query or a fragment")
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, errors.New("the CA certificate holds no valid PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // asked for by the user
	}

	transport := cleanhttp.DefaultPooledTransport()
	transport.TLSClientConfig = tlsConfig
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var rt http.RoundTripper = transport
	if cfg.Log != nil {
		rt = loggingTransport{next: transport, log: cfg.Log}
	}
	httpClient := &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// The API never redirects; following one could send the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	c := &Client{
		base:      base,
		username:  cfg.Username,
		password:  cfg.Password,
		userAgent: cfg.UserAgent,
		log:       cfg.Log,
	}
	if c.username == "" {
		c.username = DefaultUsername
	}
	if c.userAgent == "" {
		c.userAgent = "terraform-provider-redis"
	}

	rc := retryablehttp.NewClient()
	rc.HTTPClient = httpClient
	rc.Logger = nil // replaced by loggingTransport and checkRetry, which know the context
	rc.RetryMax = cfg.RetryMax
	switch {
	case cfg.RetryMax < 0:
		rc.RetryMax = 0
	case cfg.RetryMax == 0:
		rc.RetryMax = DefaultRetryMax
	}
	rc.RetryWaitMin = cfg.RetryWaitMin
	if rc.RetryWaitMin <= 0 {
		rc.RetryWaitMin = DefaultRetryWaitMin
	}
	rc.RetryWaitMax = cfg.RetryWaitMax
	if rc.RetryWaitMax <= 0 {
		rc.RetryWaitMax = DefaultRetryWaitMax
	}
	if rc.RetryWaitMax < rc.RetryWaitMin {
		rc.RetryWaitMax = rc.RetryWaitMin
	}
	rc.Backoff = retryablehttp.DefaultBackoff
	rc.CheckRetry = c.checkRetry
	rc.ErrorHandler = giveUp
	c.http = rc
	return c, nil
}

// Endpoint returns the base URL the client talks to.
func (c *Client) Endpoint() string { return c.base.String() }

// ListDatabases returns every database.
func (c *Client) ListDatabases(ctx context.Context) ([]api.Database, error) {
	var out []api.Database
	if err := c.do(ctx, http.MethodGet, "/v1/bdbs", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetDatabase returns the database uid. A missing one gives an error for
// which IsNotFound is true.
func (c *Client) GetDatabase(ctx context.Context, uid int) (*api.Database, error) {
	var out api.Database
	if err := c.do(ctx, http.MethodGet, bdbPath(uid), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateDatabase creates a database. The service answers at once; the new
// database is "pending" until its redis-server answers.
func (c *Client) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (*api.Database, error) {
	secrets := []string{req.AuthenticationRedisPass}
	for _, s := range req.ReplicaSources {
		secrets = append(secrets, uriSecrets(s.URI)...)
	}
	var out api.Database
	if err := c.do(ctx, http.MethodPost, "/v1/bdbs", &req, &out, secrets...); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateDatabase changes the fields of req that are not nil.
func (c *Client) UpdateDatabase(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (*api.Database, error) {
	var secrets []string
	if req.AuthenticationRedisPass != nil {
		secrets = append(secrets, *req.AuthenticationRedisPass)
	}
	if req.ReplicaSources != nil {
		for _, s := range *req.ReplicaSources {
			secrets = append(secrets, uriSecrets(s.URI)...)
		}
	}
	var out api.Database
	if err := c.do(ctx, http.MethodPut, bdbPath(uid), &req, &out, secrets...); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteDatabase deletes the database uid.
func (c *Client) DeleteDatabase(ctx context.Context, uid int) error {
	return c.do(ctx, http.MethodDelete, bdbPath(uid), nil, nil)
}

// GetSourceURL returns the URL other databases use to replicate from uid.
// It holds the admin password of the database.
func (c *Client) GetSourceURL(ctx context.Context, uid int) (*api.SourceURL, error) {
	var out api.SourceURL
	if err := c.do(ctx, http.MethodGet, bdbPath(uid)+"/source_url", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegenerateAdminPassword gives the database uid a new admin password, which
// disconnects the sessions that use the old one once its grace period ends.
// keepers (nil for none) are stored with the new password and read back by
// GetSourceURL as admin_password_keepers.
func (c *Client) RegenerateAdminPassword(ctx context.Context, uid int, keepers map[string]string) (*api.AdminPassword, error) {
	var out api.AdminPassword
	var body any
	if len(keepers) > 0 {
		body = api.RegenerateAdminPasswordRequest{Keepers: keepers}
	}
	if err := c.do(ctx, http.MethodPost, bdbPath(uid)+"/actions/regenerate_admin_password", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecordAdminPasswordKeepers tags the current admin password of uid, which
// has no keepers, with keepers, without regenerating it. The service
// answers a conflict when the password already has other keepers.
func (c *Client) RecordAdminPasswordKeepers(ctx context.Context, uid int, keepers map[string]string) (*api.SourceURL, error) {
	var out api.SourceURL
	if err := c.do(ctx, http.MethodPut, bdbPath(uid)+"/admin_password_keepers", api.AdminPasswordKeepersRequest{Keepers: keepers}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCluster describes the service instance.
func (c *Client) GetCluster(ctx context.Context) (*api.Cluster, error) {
	var out api.Cluster
	if err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func bdbPath(uid int) string { return "/v1/bdbs/" + strconv.Itoa(uid) }

// do sends one request, with retries, and decodes the answer into out (when
// not nil). secrets are values of the request that must never show in an
// error; the API password is always one of them.
func (c *Client) do(ctx context.Context, method, path string, in, out any, secrets ...string) error {
	if ctx == nil {
		return errors.New("nil context")
	}
	var body any
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
		}
		body = b
	}
	u := *c.base
	u.Path = c.base.Path + path
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.username, c.password)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		msg := method + " " + path + ": " + c.redact(err.Error(), secrets)
		if hint := tlsHint(err); hint != "" {
			msg += ": " + hint
		}
		return &redactedError{msg: msg, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize))
	if err != nil {
		return &redactedError{msg: method + " " + path + ": reading the response: " + c.redact(err.Error(), secrets), err: err}
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(method, path, resp.StatusCode, data, secrets)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		// The decoder's message never quotes the body's strings.
		return fmt.Errorf("%s %s: decoding the response (HTTP %d): %w", method, path, resp.StatusCode, err)
	}
	return nil
}

func (c *Client) statusError(method, path string, status int, data []byte, secrets []string) error {
	apiErr := &api.Error{}
	if err := json.Unmarshal(data, apiErr); err != nil || apiErr.Code == "" {
		apiErr = &api.Error{Code: fallbackCode(status), Description: summarize(data)}
	}
	apiErr.Description = c.redact(apiErr.Description, secrets)
	return &StatusError{Method: method, Path: path, StatusCode: status, Err: apiErr}
}

// fallbackCode maps a status to an api error code when the body is not an
// api.Error (for example an answer from a proxy).
func fallbackCode(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return api.CodeInvalidRequest
	case status == http.StatusUnauthorized:
		return api.CodeUnauthorized
	case status == http.StatusConflict:
		return api.CodeConflict
	case status >= 500:
		return api.CodeInternal
	default:
		return "http_" + strconv.Itoa(status)
	}
}

// summarize returns a short, printable excerpt of a body that is not JSON.
func summarize(data []byte) string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(data, []byte("?"))))
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "the service sent no description"
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// redact removes every known secret from s: the API password and the
// secrets of the request, as they are and URL-encoded.
func (c *Client) redact(s string, secrets []string) string {
	all := append([]string{c.password}, secrets...)
	for _, secret := range all {
		if len(secret) < 3 {
			// Replacing a one- or two-character string would shred the
			// message without protecting anything.
			continue
		}
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			s = strings.ReplaceAll(s, form, "(redacted)")
		}
	}
	return s
}

// redactedError is an error whose message had the secrets removed. It still
// unwraps to the original error, so errors.Is finds context.Canceled and the like.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// uriSecrets returns the password of a redis:// URI, decoded and as it is
// written in the URI (whose escaping may differ from the query and path
// escapings that redact also tries). A URI with a lone user-info part
// (redis://secret@host, a password for many tools) gives that part.
func uriSecrets(uri string) []string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return nil
	}
	raw := u.User.String() // escaped as in the URI: user[:password]
	if p, ok := u.User.Password(); ok {
		_, escaped, _ := strings.Cut(raw, ":")
		return []string{p, escaped}
	}
	return []string{u.User.Username(), raw}
}

type retryCountKey struct{}

// WithRetryCount returns a context whose requests count in n the attempts
// they retry, so that a caller can tell a conflict caused by its own
// earlier attempt (whose answer was lost) from another client's change.
func WithRetryCount(ctx context.Context, n *atomic.Int32) context.Context {
	return context.WithValue(ctx, retryCountKey{}, n)
}

// checkRetry decides whether an attempt is retried. Connection errors, 5xx
// (but 501) and 429 are retried, 4xx never. A POST creates something, so it is
// retried only when the service surely did not act on it: the connection was
// refused, or the answer was 429 or 503.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, checkErr := retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	if !retry || checkErr != nil {
		return retry, checkErr
	}
	var method string
	if resp != nil && resp.Request != nil {
		method = resp.Request.Method
	}
	if err == nil && method == http.MethodPost {
		retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
	}
	if err != nil && !isDialError(err) && isPOST(err) {
		retry = false
	}
	if n, ok := ctx.Value(retryCountKey{}).(*atomic.Int32); ok && retry {
		n.Add(1)
	}
	if retry && c.log != nil {
		fields := map[string]any{}
		if resp != nil {
			fields["status"] = resp.StatusCode
		} else {
			fields["error"] = err.Error()
		}
		c.log(ctx, "redis-replicad API attempt failed with a retryable error", fields)
	}
	return retry, nil
}

func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

func isPOST(err error) bool {
	var urlErr *url.Error
	return errors.As(err, &urlErr) && urlErr.Op == "Post"
}

// giveUp is called when retries are exhausted. With a response, the response
// is returned so that the caller decodes the service's error; without one,
// the last error is.
func giveUp(resp *http.Response, err error, tries int) (*http.Response, error) {
	ctxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	if resp != nil && !ctxErr {
		return resp, nil
	}
	if resp != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}
	if err == nil {
		err = errors.New("no response")
	}
	if tries <= 1 {
		return nil, err
	}
	return nil, fmt.Errorf("giving up after %d attempts: %w", tries, err)
}

// loggingTransport tells the LogFunc about every round trip: method, path,
// status or error, and duration. Never a header or a body.
type loggingTransport struct {
	next http.RoundTripper
	log  LogFunc
}

func (t loggingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	fields := map[string]any{
		"method":      req.Method,
		"path":        req.URL.Path,
		"duration_ms": time.Since(start).Milliseconds(),
	}
	if err != nil {
		fields["error"] = err.Error()
	} else {
		fields["status"] = resp.StatusCode
	}
	t.log(req.Context(), "redis-replicad API round trip", fields)
	return resp, err
}

// StatusError is the error of an answer whose status is not 2xx. It wraps the
// *api.Error that the service sent (errors.As finds it), with its description
// cleared of any secret of the request.
type StatusError struct {
	Method     string
	Path       string
	StatusCode int
	Err        *api.Error
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Err.Error())
	if e.StatusCode == http.StatusNotFound && e.Err.Code != api.CodeNotFound {
		msg += " (this is not a path of the redis-replicad API: check the provider's endpoint, " +
			"which is the URL of the API's root, such as https://replicad.example.com:9443)"
	}
	if e.StatusCode == http.StatusUnauthorized {
		// What a new user needs to know: which settings hold the credentials.
		msg += " (check the provider's username and password, or REDIS_REPLICAD_USERNAME and " +
			"REDIS_REPLICAD_PASSWORD: redis-replicad writes a generated password to DATA_DIR/admin-password)"
	}
	return msg
}

// tlsHint says what to do about a TLS verification error of the API's
// certificate, "" for other errors: Go's messages name the problem, not the
// settings that solve it.
func tlsHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return "the API's certificate is not signed by a trusted authority: set the provider's ca_cert (or " +
			"REDIS_REPLICAD_CA_CERT) to the PEM certificate of its CA (redis-replicad writes its own to DATA_DIR/ca.pem)"
	case errors.As(err, &hostname):
		return "the API's certificate does not name the endpoint's host: use a host name or address that it names"
	case errors.As(err, &invalid):
		return "the API's certificate is not valid (expired, or not for a server): give redis-replicad a valid one"
	}
	return ""
}

// Unwrap returns the service's *api.Error.
func (e *StatusError) Unwrap() error { return e.Err }

// StatusCode returns the HTTP status of err when it is (or wraps) a
// *StatusError, and 0 otherwise.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is the service's answer that the object
// asked for does not exist. Another 404 (a path that is none of the API's,
// a proxy's page) is not: an endpoint with a wrong path must not make every
// resource look deleted, and their re-creation planned.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound && se.Err.Code == api.CodeNotFound
}

// IsWouldFlush reports whether err is the service's refusal of an update
// that asked for no flush (replica_no_flush) and would have flushed.
func IsWouldFlush(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Err != nil && se.Err.Code == api.CodeWouldFlush
}

// IsUnknownField reports whether err is the service's refusal of a request
// that names a field it does not know (a service older than the client).
func IsUnknownField(err error, field string) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusBadRequest && se.Err != nil &&
		se.Err.Code == api.CodeInvalidRequest && strings.Contains(se.Err.Description, `unknown field "`+field+`"`)
}

// IsConflict reports whether err is an HTTP 409 answer.
func IsConflict(err error) bool { return StatusCode(err) == http.StatusConflict }

// IsUnreachable reports whether err means that the API could not be reached
// or could not answer: no HTTP answer at all (connection refused or reset, a
// timeout, a TLS failure), or a 502, 503 or 504. A caller that waits for
// something may retry such an error for as long as it waits; the service
// may be restarting.
func IsUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch StatusCode(err) {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case 0:
		var re *redactedError
		return errors.As(err, &re)
	}
	return false
}
