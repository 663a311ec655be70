package replication_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// apiClient is a minimal client of the REST API for these tests.
type apiClient struct {
	t    *testing.T
	base string
	user string
	pass string
	http *http.Client
}

func newAPI(t *testing.T, i *servicetest.Instance) *apiClient {
	return &apiClient{t: t, base: i.URL, user: i.Username, pass: i.Password, http: i.HTTPClient()}
}

func (a *apiClient) do(method, path string, body, out any) (int, string) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.SetBasicAuth(a.user, a.pass)
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 300 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("decode %s: %v", data, err)
		}
	}
	return resp.StatusCode, string(data)
}

func (a *apiClient) create(req api.CreateDatabaseRequest) api.Database {
	a.t.Helper()
	var db api.Database
	if code, body := a.do("POST", "/v1/bdbs", req, &db); code != 200 {
		a.t.Fatalf("create %s: %d %s", req.Name, code, body)
	}
	return db
}

func (a *apiClient) get(uid int) api.Database {
	a.t.Helper()
	var db api.Database
	if code, body := a.do("GET", fmt.Sprintf("/v1/bdbs/%d", uid), nil, &db); code != 200 {
		a.t.Fatalf("get %d: %d %s", uid, code, body)
	}
	return db
}

func (a *apiClient) update(uid int, req api.UpdateDatabaseRequest) api.Database {
	a.t.Helper()
	var db api.Database
	if code, body := a.do("PUT", fmt.Sprintf("/v1/bdbs/%d", uid), req, &db); code != 200 {
		a.t.Fatalf("update %d: %d %s", uid, code, body)
	}
	return db
}

func (a *apiClient) sourceURL(uid int) string {
	a.t.Helper()
	var u api.SourceURL
	if code, body := a.do("GET", fmt.Sprintf("/v1/bdbs/%d/source_url", uid), nil, &u); code != 200 {
		a.t.Fatalf("source url %d: %d %s", uid, code, body)
	}
	return u.URI
}

func (a *apiClient) metrics() string {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+"/metrics", nil)
	req.SetBasicAuth(a.user, a.pass)
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of the first series named name whose labels
// contain every string of match.
func metric(text, name string, match ...string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if ok {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			return v
		}
	}
	return -1
}

// waitInSync polls until every source of uid is in sync.
func (a *apiClient) waitInSync(uid int, timeout time.Duration) api.Database {
	a.t.Helper()
	var db api.Database
	redistest.Eventually(a.t, timeout, fmt.Sprintf("database %d in sync", uid), func() error {
		db = a.get(uid)
		if db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		return nil
	})
	return db
}

func destClient(t *testing.T, db api.Database, n int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", db.Endpoint.Host, db.Endpoint.Port), Password: db.AuthenticationRedisPass, DB: n, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// eventuallyEqual polls until dst equals the union of sources.
func eventuallyEqual(t *testing.T, timeout time.Duration, dst *redis.Client, sources ...*redis.Client) {
	t.Helper()
	redistest.Eventually(t, timeout, "destination equals the sources", func() error {
		return redistest.Diff(context.Background(), dst, sources...)
	})
}

// incrWriter writes INCRs to counter:0..39 on c as fast as it can, in
// pipelines of batch and every fifth one as a transaction, until stopped.
type incrWriter struct {
	written atomic.Int64
	stop    func()
}

func startIncrWriter(t *testing.T, c *redis.Client, batch int) *incrWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &incrWriter{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			var pipe redis.Pipeliner
			if n%5 == 0 {
				pipe = c.TxPipeline()
			} else {
				pipe = c.Pipeline()
			}
			for k := range batch {
				pipe.Incr(ctx, fmt.Sprint("counter:", (n+k)%40))
			}
			if _, err := pipe.Exec(ctx); err == nil {
				w.written.Add(int64(batch))
			}
		}
	}()
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(w.stop)
	return w
}
