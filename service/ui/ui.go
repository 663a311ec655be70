// Package ui is the status console of redis-replicad: a page served from
// files embedded in the binary (no external asset), the read calls it makes
// (/ui/api/overview) and the in-memory ring of lag samples behind its graphs.
// Its actions are calls to the REST API itself, with the API's rules.
package ui

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	apiserver "github.com/replicad/terraform-provider-redis/service/api"
)

//go:embed static
var static embed.FS

// Config of the console.
type Config struct {
	Name, Version string
	// Certificates of the instance by role (api, ca, proxy, syncer), PEM.
	Certificates map[string][]byte
	Databases    func(ctx context.Context) ([]api.Database, error)
	MemoryUsed   func(ctx context.Context, uid int) (int64, bool)
	// Gatherer gives the syncers' byte counters (bytes saved by compression).
	Gatherer prometheus.Gatherer
	// SampleEvery is the period of the lag samples (default 5s); Window how
	// long they are kept (default 15 minutes).
	SampleEvery, Window time.Duration
	Logger              *slog.Logger
}

// Console serves the page and its data, and samples the lag of every source.
type Console struct {
	cfg    Config
	certs  []certificate
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	history map[sourceKey]*ring
}

type sourceKey struct {
	uid  int
	addr string
}

type certificate struct {
	Role     string    `json:"role"`
	Subject  string    `json:"subject"`
	SHA256   string    `json:"sha256"`
	NotAfter time.Time `json:"not_after"`
}

// Start returns a console whose sampler runs until Close.
func Start(cfg Config) *Console {
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 5 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	c := &Console{cfg: cfg, history: map[sourceKey]*ring{}, done: make(chan struct{})}
	for role, p := range cfg.Certificates {
		if cert, ok := parseCert(role, p); ok {
			c.certs = append(c.certs, cert)
		}
	}
	sort.Slice(c.certs, func(i, j int) bool { return c.certs[i].Role < c.certs[j].Role })
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.sample(ctx)
	return c
}

// Close stops the sampler.
func (c *Console) Close() {
	c.cancel()
	<-c.done
}

// Files serves the page: GET / and /ui/...
func (c *Console) Files() http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page holds the login of the API: no other site may frame it
		// (clickjacking; X-Frame-Options for browsers without CSP's
		// frame-ancestors), and no injected <base> or form may send
		// anything elsewhere.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Data serves /ui/api/overview; it expects to sit behind the API's
// authentication, which tells it whether the viewer is asking.
func (c *Console) Data() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/api/overview", c.overview)
	return mux
}

// overview is everything the page shows, in one answer.
type overview struct {
	Instance  instance   `json:"instance"`
	Databases []database `json:"databases"`
}

type instance struct {
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	Role         string        `json:"role"` // admin or viewer
	Certificates []certificate `json:"certificates"`
	SampleEvery  float64       `json:"sample_every_seconds"`
	Window       float64       `json:"window_seconds"`
	// Now is the service's time (unix seconds): the page places the lag
	// samples, which carry the service's time, and counts the days left
	// of the certificates from it, not from the browser's clock, which
	// may be minutes off.
	Now float64 `json:"now"`
}

type database struct {
	api.Database
	MemoryUsed int64    `json:"memory_used"`
	Sources    []source `json:"sources"`
}

// source is what the page adds to each of a database's replica_sources, in
// the same order.
type source struct {
	Address string `json:"address"`
	// BytesReceived and WireBytesReceived: the source's stream before and
	// after compression; their difference is what compression saved.
	BytesReceived     float64 `json:"bytes_received"`
	WireBytesReceived float64 `json:"wire_bytes_received"`
	// Lag is [unix seconds, lag seconds] samples, oldest first.
	Lag [][2]float64 `json:"lag"`
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	viewer := apiserver.IsViewer(r.Context())
	dbs, err := c.cfg.Databases(r.Context())
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(api.Error{Code: api.CodeInternal, Description: "list databases: " + err.Error()})
		return
	}
	out := overview{
		Instance: instance{Name: c.cfg.Name, Version: c.cfg.Version, Role: "admin", Certificates: c.certs,
			SampleEvery: c.cfg.SampleEvery.Seconds(), Window: c.cfg.Window.Seconds(),
			Now: float64(time.Now().UnixMilli()) / 1000},
		Databases: []database{},
	}
	if viewer {
		out.Instance.Role = "viewer"
	}
	counters := c.counters()
	c.mu.Lock()
	for _, d := range dbs {
		// Without its secrets, for the admin too: the page shows none (its
		// source URL dialog asks the API when opened), and this answer goes
		// to the browser every few seconds. The viewer reads no data of
		// the databases either (key names in a last_error or sync_note).
		view := apiserver.WithoutSecrets
		if viewer {
			view = apiserver.ForViewer
		}
		v := database{Database: view(d), Sources: []source{}}
		for _, s := range d.ReplicaSources {
			addr := address(s.URI)
			sv := source{Address: addr, Lag: [][2]float64{}}
			key := counterKey{uid: strconv.Itoa(d.UID), addr: addr}
			sv.BytesReceived = counters[key].plain
			sv.WireBytesReceived = counters[key].wire
			if h := c.history[sourceKey{d.UID, addr}]; h != nil {
				sv.Lag = h.points()
			}
			v.Sources = append(v.Sources, sv)
		}
		out.Databases = append(out.Databases, v)
	}
	c.mu.Unlock()
	for i := range out.Databases {
		if c.cfg.MemoryUsed != nil {
			out.Databases[i].MemoryUsed, _ = c.cfg.MemoryUsed(r.Context(), out.Databases[i].UID)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// address is the source's host:port, never its URL (which may hold a password).
func address(uri string) string {
	if u, err := redisurl.Parse(uri); err == nil {
		return u.Addr()
	}
	return redisurl.Redact(uri)
}

type counterKey struct{ uid, addr string }

type byteCounts struct{ plain, wire float64 }

// counters reads the syncers' received bytes, before and after compression.
func (c *Console) counters() map[counterKey]byteCounts {
	out := map[counterKey]byteCounts{}
	if c.cfg.Gatherer == nil {
		return out
	}
	mfs, err := c.cfg.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return out
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if name != "replicad_replica_bytes_received_total" && name != "replicad_replica_wire_bytes_received_total" {
			continue
		}
		for _, m := range mf.Metric {
			var k counterKey
			for _, lp := range m.Label {
				switch lp.GetName() {
				case "destination":
					k.uid = lp.GetValue()
				case "source":
					// A clustered source counts per shard
					// ("host:port#slots"): its shards add up.
					k.addr, _, _ = strings.Cut(lp.GetValue(), "#")
				}
			}
			b := out[k]
			if strings.Contains(name, "wire") {
				b.wire += m.GetCounter().GetValue()
			} else {
				b.plain += m.GetCounter().GetValue()
			}
			out[k] = b
		}
	}
	return out
}

// sample records the lag of every source every SampleEvery.
func (c *Console) sample(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.SampleEvery)
	defer t.Stop()
	for {
		c.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Console) sampleOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.SampleEvery+5*time.Second)
	defer cancel()
	dbs, err := c.cfg.Databases(ctx)
	if err != nil {
		if ctx.Err() == nil && c.cfg.Logger != nil {
			c.cfg.Logger.Warn("console: sample the lag of the sources", "err", err)
		}
		return
	}
	now := time.Now()
	size := int(c.cfg.Window/c.cfg.SampleEvery) + 1
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[sourceKey]bool{}
	for _, d := range dbs {
		for _, s := range d.ReplicaSources {
			k := sourceKey{d.UID, address(s.URI)}
			seen[k] = true
			h := c.history[k]
			if h == nil {
				h = &ring{buf: make([]sample, size)}
				c.history[k] = h
			}
			h.add(sample{at: now, lag: float64(s.Lag) / 1000})
		}
	}
	// A source that is gone takes its history with it: memory follows the
	// sources that exist.
	for k := range c.history {
		if !seen[k] {
			delete(c.history, k)
		}
	}
}

type sample struct {
	at  time.Time
	lag float64
}

// ring holds the last len(buf) samples.
type ring struct {
	buf  []sample
	next int
	full bool
}

func (r *ring) add(s sample) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) points() [][2]float64 {
	var ordered []sample
	if r.full {
		ordered = append(append(ordered, r.buf[r.next:]...), r.buf[:r.next]...)
	} else {
		ordered = r.buf[:r.next]
	}
	out := make([][2]float64, len(ordered))
	for i, s := range ordered {
		out[i] = [2]float64{float64(s.at.UnixMilli()) / 1000, s.lag}
	}
	return out
}

func parseCert(role string, p []byte) (certificate, bool) {
	block, _ := pem.Decode(p)
	if block == nil {
		return certificate{}, false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return certificate{}, false
	}
	sum := sha256.Sum256(c.Raw)
	hexed := strings.ToUpper(hex.EncodeToString(sum[:]))
	var pairs []string
	for i := 0; i < len(hexed); i += 2 {
		pairs = append(pairs, hexed[i:i+2])
	}
	return certificate{Role: role, Subject: c.Subject.CommonName, SHA256: strings.Join(pairs, ":"), NotAfter: c.NotAfter.UTC()}, true
}
