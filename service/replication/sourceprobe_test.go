package replication_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// infoStat reads one field of INFO section on c.
func infoStat(t *testing.T, c *redis.Client, section, field string) int64 {
	t.Helper()
	m, err := c.InfoMap(context.Background(), section).Result()
	require.NoError(t, err)
	for _, fields := range m {
		if v, ok := fields[field]; ok {
			if field == "cmdstat_info" {
				v, _, _ = strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			}
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err, "%s: %q", field, v)
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// clientIDs are the ids of the clients of c's server named name (by CLIENT
// LIST), or of type typ when name is empty.
func clientIDs(t *testing.T, c *redis.Client, name, typ string) []string {
	t.Helper()
	args := []any{"CLIENT", "LIST"}
	if typ != "" {
		args = append(args, "TYPE", typ)
	}
	list, err := c.Do(context.Background(), args...).Text()
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if name == "" || f["name"] == name {
			ids = append(ids, f["id"])
		}
	}
	return ids
}

// waitQuestions polls until the server of c has run n more INFO commands
// than it had, besides c's own.
func waitQuestions(t *testing.T, c *redis.Client, n int64, timeout time.Duration) {
	t.Helper()
	from := infoStat(t, c, "commandstats", "cmdstat_info")
	own := int64(1)
	redistest.Eventually(t, timeout, fmt.Sprintf("%d probe periods", n), func() error {
		own++
		if got := infoStat(t, c, "commandstats", "cmdstat_info") - from - own; got < n {
			return fmt.Errorf("%d questions", got)
		}
		return nil
	})
}

// The source probe keeps one connection per session: the source sees no
// new connection over many probe periods (it saw one every 2 s); a probe
// connection killed by the source (CLIENT KILL) is replaced without
// touching the stream; a source frozen (SIGSTOP) while the probe holds its
// connection is out of sync within the documented bound (a question
// unanswered for 5 s, asked every 2 s).
func TestTheSourceProbeKeepsOneConnectionPerSession(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	// One connection of the test's own, so that the source's count of
	// connections is the service's.
	sc := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: src.Password, PoolSize: 1, MaxRetries: -1})
	t.Cleanup(func() { sc.Close() })
	ctx := context.Background()

	var probe []string
	redistest.Eventually(t, 30*time.Second, "a probe connection", func() error {
		if probe = clientIDs(t, sc, "replicad-probe", ""); len(probe) != 1 {
			return fmt.Errorf("probe connections %v", probe)
		}
		return nil
	})
	conns := infoStat(t, sc, "stats", "total_connections_received")
	const periods = 8
	waitQuestions(t, sc, periods, time.Minute)
	assert.Equal(t, probe, clientIDs(t, sc, "replicad-probe", ""), "the same probe connection")
	assert.Zero(t, infoStat(t, sc, "stats", "total_connections_received")-conns, "connections over %d probe periods", periods)

	// A killed probe connection is dialled again; the stream goes on.
	replica := clientIDs(t, sc, "", "replica")
	require.Len(t, replica, 1)
	fullSyncs, partialSyncs := infoStat(t, sc, "stats", "sync_full"), infoStat(t, sc, "stats", "sync_partial_ok")
	require.NoError(t, sc.Do(ctx, "CLIENT", "KILL", "ID", probe[0]).Err())
	redistest.Eventually(t, 30*time.Second, "a new probe connection", func() error {
		now := clientIDs(t, sc, "replicad-probe", "")
		if len(now) != 1 || now[0] == probe[0] {
			return fmt.Errorf("probe connections %v (killed %s)", now, probe[0])
		}
		return nil
	})
	require.NoError(t, sc.Set(ctx, "after-kill", "1", 0).Err())
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, replica, clientIDs(t, sc, "", "replica"), "the same replication link")
	assert.Equal(t, fullSyncs, infoStat(t, sc, "stats", "sync_full"))
	assert.Equal(t, partialSyncs, infoStat(t, sc, "stats", "sync_partial_ok"))
	db := a.get(dst.UID)
	assert.Equal(t, api.SourceInSync, db.ReplicaSources[0].Status)
	assert.Empty(t, db.ReplicaSources[0].LastError)

	// Frozen while the probe holds its connection.
	waitQuestions(t, sc, 2, time.Minute)
	thaw := freeze(t, src.PID())
	frozen := time.Now()
	redistest.Eventually(t, 40*time.Second, "the frozen source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	took := time.Since(frozen)
	t.Logf("out of sync %s after the source froze", took.Round(100*time.Millisecond))
	assert.Less(t, took, 10*time.Second, "within a probe period and a question's time (2 s + 5 s), well before the silence limit (15 s)")
	assert.Contains(t, db.ReplicaSources[0].LastError, "INFO replication")
	thaw()
	require.NoError(t, sc.Set(ctx, "after-thaw", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, sc)
	a.waitInSync(dst.UID, time.Minute)

	// The session ends with the sync: its probe connection too.
	paused := api.SyncPaused
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	redistest.Eventually(t, 30*time.Second, "no probe connection once paused", func() error {
		if ids := clientIDs(t, sc, "replicad-probe", ""); len(ids) != 0 {
			return fmt.Errorf("probe connections %v", ids)
		}
		return nil
	})
}

// syncBuffer is a log the test reads while the service writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// questionProxy forwards connections to a replication endpoint, and
// counts them and the INFO questions sent through them.
type questionProxy struct {
	addr               string
	accepted, question atomic.Int64
}

func startQuestionProxy(t *testing.T, target string) *questionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t))))
	require.NoError(t, err)
	p := &questionProxy{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go func() {
				defer u.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					// A question is one small write: counted whole.
					p.question.Add(int64(bytes.Count(buf[:n], []byte("$4\r\nINFO\r\n"))))
					if _, werr := u.Write(buf[:n]); werr != nil || err != nil {
						return
					}
				}
			}()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// Through a replication endpoint of the service, the probe keeps its one
// session past the gateway's handshake time (30 s): one connection for
// the stream and one for the probe over 18 probe periods, and the gateway
// logs nothing about the probe, even at debug level. Each question was a
// session of its own (a dial, TLS when enabled, AUTH, a connection to the
// source's redis-server), and a debug line as it ended.
func TestTheSourceProbeKeepsItsGatewaySession(t *testing.T) {
	logs := &syncBuffer{}
	i := servicetest.StartWith(t, func(c *app.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a := newAPI(t, i)
	srcDB := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 32 << 20})
	require.NoError(t, destClient(t, srcDB, 0).Set(context.Background(), "k", "v", 0).Err())
	u, err := url.Parse(a.sourceURL(srcDB.UID))
	require.NoError(t, err)
	proxy := startQuestionProxy(t, u.Host)
	u.Host = proxy.addr
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: u.String()}}})
	a.waitInSync(dst.UID, time.Minute)
	waitProxied := func(n int64) {
		from := proxy.question.Load()
		redistest.Eventually(t, 2*time.Minute, fmt.Sprintf("%d probe periods", n), func() error {
			if got := proxy.question.Load() - from; got < n {
				return fmt.Errorf("%d questions", got)
			}
			return nil
		})
	}
	waitProxied(1)
	conns := proxy.accepted.Load()
	ended := logs.count("replication session ended during the handshake")
	// Past the gateway's handshake time.
	waitProxied(18)
	assert.Zero(t, proxy.accepted.Load()-conns, "connections to the source's endpoint over 18 probe periods (%d in all)", conns)
	assert.Zero(t, logs.count("replication session ended during the handshake")-ended, "gateway lines about the probe's sessions")
	db := a.get(dst.UID)
	assert.Equal(t, api.SourceInSync, db.ReplicaSources[0].Status)
}

// A script that runs past the source's busy-reply-threshold makes the
// source answer the probe's question with BUSY: an answer, from a source
// that is not frozen. The probe took it for a user that may not run INFO
// and stopped for the rest of the session, so a freeze after the script
// went unnoticed until the silence limit (15 s).
func TestAScriptPastTheBusyThresholdKeepsTheProbe(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--busy-reply-threshold", "500")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	sc := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: src.Password, ReadTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { sc.Close() })
	ctx := context.Background()
	waitQuestions(t, sc, 1, time.Minute)

	// Busy for 3 s, longer than a probe period: a question lands in it.
	const script = `local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + 3000000
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
redis.call('SET', 'after-script', '1')
return 1`
	require.NoError(t, sc.Eval(ctx, script, nil).Err())
	errs, err := sc.Info(ctx, "errorstats").Result()
	require.NoError(t, err)
	require.Contains(t, errs, "errorstat_BUSY", "the probe's question was answered BUSY")
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, sc)

	waitQuestions(t, sc, 2, time.Minute)
	thaw := freeze(t, src.PID())
	frozen := time.Now()
	var db api.Database
	redistest.Eventually(t, 40*time.Second, "the frozen source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	took := time.Since(frozen)
	t.Logf("out of sync %s after the source froze", took.Round(100*time.Millisecond))
	assert.Less(t, took, 10*time.Second, "noticed by the probe, before the silence limit (15 s)")
	assert.Contains(t, db.ReplicaSources[0].LastError, "INFO replication")
	thaw()
	a.waitInSync(dst.UID, time.Minute)
}
