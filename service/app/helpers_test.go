package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/require"
)

// call does one API request and decodes the answer into out (when not nil).
func call(t *testing.T, i *servicetest.Instance, method, path string, body any, out any) (int, api.Error) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, i.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(i.Username, i.Password)
	resp, err := i.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var apiErr api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &apiErr); err != nil {
			t.Fatalf("%s %s: error body is not JSON: %s", method, path, data)
		}
		return resp.StatusCode, apiErr
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, apiErr
}

// tryCall is call for another goroutine than the test's: it reports a
// failed request instead of ending the test.
func tryCall(i *servicetest.Instance, method, path string, body any) (int, api.Error, error) {
	j, err := json.Marshal(body)
	if err != nil {
		return 0, api.Error{}, err
	}
	req, err := http.NewRequest(method, i.URL+path, bytes.NewReader(j))
	if err != nil {
		return 0, api.Error{}, err
	}
	req.SetBasicAuth(i.Username, i.Password)
	resp, err := i.HTTPClient().Do(req)
	if err != nil {
		return 0, api.Error{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, api.Error{}, err
	}
	var apiErr api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &apiErr); err != nil {
			return resp.StatusCode, apiErr, fmt.Errorf("error body is not JSON: %s", data)
		}
	}
	return resp.StatusCode, apiErr, nil
}

func mustCreate(t *testing.T, i *servicetest.Instance, req api.CreateDatabaseRequest) api.Database {
	t.Helper()
	var db api.Database
	if code, e := call(t, i, "POST", "/v1/bdbs", req, &db); code != 200 {
		t.Fatalf("create %s: %d %v", req.Name, code, e)
	}
	return db
}

func dbClient(t *testing.T, db api.Database, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", db.Endpoint.Host, db.Endpoint.Port), Password: password, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	redistest.Eventually(t, timeout, what, cond)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// infoField reads one field of an INFO section, as an application can.
func infoField(t *testing.T, c *redis.Client, section, field string) string {
	t.Helper()
	info, err := c.Info(ctx(t), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

// sourceURL is the source URL of database uid (GET .../source_url).
func sourceURL(t *testing.T, i *servicetest.Instance, uid int) string {
	t.Helper()
	var su api.SourceURL
	if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", uid), nil, &su); code != 200 {
		t.Fatalf("source_url of %d: %d %v", uid, code, e)
	}
	return su.URI
}

// holdMemory makes readers of the node at addr hold memory that counts
// toward its maxmemory, with the application's password: one announces a
// 100 MB argument and sends 40 MB of it (Redis makes room for the whole
// argument), and, with idle, a thousand connections send nothing.
// release closes them all (it is also called when the test ends).
func holdMemory(t *testing.T, addr, password string, idle bool) (release func()) {
	t.Helper()
	hog, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = fmt.Fprintf(hog, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n", len(password), password, 100<<20)
	require.NoError(t, err)
	chunk := []byte(strings.Repeat("x", 1<<20))
	for range 40 {
		if _, err := hog.Write(chunk); err != nil {
			break // closed by the server already
		}
	}
	conns := []net.Conn{hog}
	for range 1000 {
		if !idle {
			break
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(release)
	return release
}
