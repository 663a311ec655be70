package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// watchKeys reports every change of a key under prefix at the server of c,
// the moment the server announces it: client-side-caching invalidations in
// broadcast mode (CLIENT TRACKING ... BCAST), redirected to a subscribed
// connection. Unlike keyspace notifications it needs no CONFIG SET, which
// the application user of a database may not run. It returns when ctx ends
// or the connection fails; ready is closed once tracking is on.
func watchKeys(ctx context.Context, c *redis.Client, prefix string, ready chan<- struct{}, changed func(key string, at time.Time)) error {
	o := c.Options()
	var d net.Dialer
	dial := func() (net.Conn, *resp.Reader, error) {
		conn, err := d.DialContext(ctx, "tcp", o.Addr)
		if err != nil {
			return nil, nil, err
		}
		rd := resp.NewReader(bufio.NewReader(conn))
		if o.Password != "" {
			args := []string{"AUTH", o.Password}
			if o.Username != "" {
				args = []string{"AUTH", o.Username, o.Password}
			}
			if _, err := conn.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
				conn.Close()
				return nil, nil, err
			}
			if v, err := rd.ReadValue(); err != nil || v.IsError() {
				conn.Close()
				return nil, nil, fmt.Errorf("authenticate: %v %v", err, v.Err())
			}
		}
		return conn, rd, nil
	}
	roundTrip := func(conn net.Conn, rd *resp.Reader, args ...string) (resp.Value, error) {
		if _, err := conn.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
			return resp.Value{}, err
		}
		v, err := rd.ReadValue()
		if err == nil && v.IsError() {
			err = fmt.Errorf("%s: %w", args[0], v.Err())
		}
		return v, err
	}

	sub, subRd, err := dial()
	if err != nil {
		return err
	}
	defer sub.Close()
	id, err := roundTrip(sub, subRd, "CLIENT", "ID")
	if err != nil {
		return err
	}
	if _, err := roundTrip(sub, subRd, "SUBSCRIBE", "__redis__:invalidate"); err != nil {
		return err
	}
	tracker, trRd, err := dial()
	if err != nil {
		return err
	}
	defer tracker.Close()
	if _, err := roundTrip(tracker, trRd, "CLIENT", "TRACKING", "ON", "REDIRECT", fmt.Sprint(id.Int), "BCAST", "PREFIX", prefix); err != nil {
		return err
	}
	close(ready)
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	for {
		v, err := subRd.ReadValue()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		// ["message", "__redis__:invalidate", [key, ...]]
		if v.Type != resp.Array || len(v.Elems) != 3 || !strings.EqualFold(string(v.Elems[0].Str), "message") {
			continue
		}
		for _, k := range v.Elems[2].Elems {
			changed(string(k.Str), now)
		}
	}
}

// probeWatch records when each key probe:<n> first changed at a server.
type probeWatch struct {
	stop context.CancelFunc

	mu      sync.Mutex
	arrived map[int]time.Time
}

const probePrefix = "probe:"

// watchProbes starts watching dst; it returns once the watch is on.
// Close stops it.
func watchProbes(ctx context.Context, dst *redis.Client) (*probeWatch, error) {
	ctx, stop := context.WithCancel(ctx)
	w := &probeWatch{stop: stop, arrived: map[int]time.Time{}}
	ready, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		failed <- watchKeys(ctx, dst, probePrefix, ready, func(key string, at time.Time) {
			if n, err := strconv.Atoi(strings.TrimPrefix(key, probePrefix)); err == nil {
				w.mu.Lock()
				if _, dup := w.arrived[n]; !dup {
					w.arrived[n] = at
				}
				w.mu.Unlock()
			}
		})
	}()
	select {
	case <-ready:
		return w, nil
	case err := <-failed:
		stop()
		return nil, fmt.Errorf("watch the probes at the destination: %w", err)
	}
}

func (w *probeWatch) Close() { w.stop() }

// waitFor polls until n probes arrived or the deadline passes, and returns
// the arrival times seen by then.
func (w *probeWatch) waitFor(n int, deadline time.Time) map[int]time.Time {
	for {
		w.mu.Lock()
		got := len(w.arrived)
		w.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int]time.Time, len(w.arrived))
	for k, v := range w.arrived {
		out[k] = v
	}
	return out
}
