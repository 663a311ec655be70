package app_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// clusterClient is what an application uses for a sharded database.
func clusterClient(t *testing.T, db api.Database, password string) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: password, MaxRedirects: 16})
	t.Cleanup(func() { c.Close() })
	return c
}

func nodeClient(t *testing.T, ep api.NodeEndpoint, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), Password: password, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// checkLayout asserts the endpoints of a healthy 3-shard database with
// replication: the slots split evenly between 3 masters, each with a replica.
func checkLayout(t *testing.T, db api.Database) {
	t.Helper()
	require.Len(t, db.Endpoints, 6, "endpoints: %+v", db.Endpoints)
	var slots []string
	masters := map[string]bool{}
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			slots = append(slots, ep.Slots)
			masters[net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))] = true
		}
	}
	slices.Sort(slots)
	assert.Equal(t, []string{"0-5461", "10923-16383", "5462-10922"}, slots, "slots of the masters: %+v", db.Endpoints)
	for _, ep := range db.Endpoints {
		if ep.Role != "master" {
			assert.Equal(t, "replica", ep.Role, "%+v", ep)
			assert.True(t, masters[ep.Master], "replica %d follows %q, not one of the masters", ep.Port, ep.Master)
		}
	}
}

func getDB(t *testing.T, i *servicetest.Instance, uid int) api.Database {
	t.Helper()
	var db api.Database
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", uid), nil, &db)
	require.Equal(t, 200, code, "%v", e)
	return db
}

func TestShardedDatabase(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "shop", MemorySize: 96 << 20, ShardsCount: 3, Replication: true,
		AuthenticationRedisPass: "shop-password-1"})
	assert.Equal(t, api.StatusActive, db.Status)
	assert.Equal(t, 3, db.ShardsCount)
	assert.True(t, db.Replication)
	checkLayout(t, db)

	c := clusterClient(t, db, db.AuthenticationRedisPass)
	const n = 300
	for k := range n {
		require.NoError(t, c.Set(ctx(t), "key:"+strconv.Itoa(k), k, 0).Err())
	}
	// Every master holds a part: the keys are spread across the shards.
	for _, ep := range db.Endpoints {
		nc := nodeClient(t, ep, db.AuthenticationRedisPass)
		if ep.Role == "master" {
			size, err := nc.DBSize(ctx(t)).Result()
			require.NoError(t, err)
			assert.Greater(t, size, int64(n/6), "master %d holds %d keys", ep.Port, size)
		}
		// Each node gets a third of the memory limit.
		assert.Equal(t, fmt.Sprint(32<<20), infoField(t, nc, "memory", "maxmemory"), "node %d", ep.Port)
		// The application user administers nothing.
		assert.ErrorContains(t, nc.ConfigGet(ctx(t), "maxmemory").Err(), "NOPERM", "node %d", ep.Port)
		assert.ErrorContains(t, nc.Do(ctx(t), "CLUSTER", "FORGET", "0000000000000000000000000000000000000000").Err(), "NOPERM", "node %d", ep.Port)
	}
	assert.Error(t, clusterClient(t, db, "wrong-password").Ping(ctx(t)).Err(), "a wrong password was accepted")

	// The memory metric sums the masters: the data memory_size bounds.
	var mastersUsed, oneMaster int64
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			n, err := strconv.ParseInt(infoField(t, nodeClient(t, ep, db.AuthenticationRedisPass), "memory", "used_memory"), 10, 64)
			require.NoError(t, err)
			mastersUsed += n
			oneMaster = n
		}
	}
	metric := scrapeMetric(t, i, "replicad_database_memory_used_bytes", `name="shop"`)
	assert.InEpsilon(t, float64(mastersUsed), metric, 0.2, "metric %v, masters' used_memory %d", metric, mastersUsed)
	assert.Greater(t, metric, 2.5*float64(oneMaster), "the metric counts every master")
	readAll := func() error {
		// One deadline for the pass: a cluster that answers slowly fails
		// the poll's deadline instead of holding it key after key.
		pass, cancel := context.WithTimeout(ctx(t), 15*time.Second)
		defer cancel()
		for k := range n {
			v, err := c.Get(pass, "key:"+strconv.Itoa(k)).Result()
			if err != nil {
				return fmt.Errorf("key:%d: %w", k, err)
			}
			if v != strconv.Itoa(k) {
				return fmt.Errorf("key:%d = %q", k, v)
			}
		}
		return nil
	}

	// kill -9 of a master: the cluster promotes its replica (or the
	// service restarts it first); either way every key is served again
	// and the killed node is back.
	var victim api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			victim = ep
			break
		}
	}
	vc := nodeClient(t, victim, db.AuthenticationRedisPass)
	pid, err := strconv.Atoi(infoField(t, vc, "server", "process_id"))
	require.NoError(t, err)
	// Replication in a Redis Cluster is asynchronous: a replica promoted
	// before it received the last writes loses them, whoever runs the
	// cluster. The writes are on the replica before the kill.
	acked, err := vc.Do(ctx(t), "WAIT", 1, 10000).Int()
	require.NoError(t, err)
	require.Equal(t, 1, acked, "the victim's replica has its writes")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, 90*time.Second, "every key served after a master was killed, every node back", func() error {
		if err := readAll(); err != nil {
			return err
		}
		now := getDB(t, i, db.UID)
		if now.Status != api.StatusActive {
			return fmt.Errorf("status %s", now.Status)
		}
		for _, ep := range now.Endpoints {
			if ep.Role == "unknown" {
				return fmt.Errorf("node %d unknown", ep.Port)
			}
		}
		return nil
	})

	// A restarted service brings the cluster back with its data.
	i.Restart(t)
	eventually(t, 90*time.Second, "the cluster serves every key after a restart of the service", func() error {
		if st := getDB(t, i, db.UID).Status; st != api.StatusActive {
			return fmt.Errorf("status %s", st)
		}
		return readAll()
	})
	after := getDB(t, i, db.UID)
	assert.Equal(t, db.Port, after.Port)
	assert.Len(t, after.Endpoints, 6)

	// Resharding is refused, and changes nothing.
	four := 4
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{ShardsCount: &four}, nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, e.Description, "shards_count cannot change")
	assert.Equal(t, 3, getDB(t, i, db.UID).ShardsCount)
	// A new memory limit is split across the shards, live.
	mem := int64(192 << 20)
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &mem}, nil)
	require.Equal(t, 200, code, "%v", e)
	for _, ep := range after.Endpoints {
		assert.Equal(t, fmt.Sprint(64<<20), infoField(t, nodeClient(t, ep, db.AuthenticationRedisPass), "memory", "maxmemory"), "node %d", ep.Port)
	}
	require.NoError(t, readAll())

	// Delete stops every node and removes every file.
	code, e = call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, nil)
	require.Equal(t, http.StatusNoContent, code, "%v", e)
	_, err = os.Stat(filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID)))
	assert.True(t, errors.Is(err, os.ErrNotExist), "files of the deleted database remain: %v", err)
	for _, ep := range after.Endpoints {
		require.NotZero(t, ep.ReplicationPort, "node %d has no replication endpoint", ep.Port)
		for _, port := range []int{ep.Port, ep.ReplicationPort} {
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(port)), time.Second); err == nil {
				conn.Close()
				t.Errorf("port %d of node %d of the deleted database still listens", port, ep.Port)
			}
		}
	}
}

func TestShardedDatabaseRefusals(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "plain", MemorySize: 32 << 20})
	sharded := mustCreate(t, i, api.CreateDatabaseRequest{Name: "one-shard", MemorySize: 32 << 20, OSSCluster: true})
	require.Len(t, sharded.Endpoints, 1)
	assert.Equal(t, "0-16383", sharded.Endpoints[0].Slots, "%+v", sharded.Endpoints)
	var url api.SourceURL
	code, _ := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &url)
	require.Equal(t, 200, code)
	var shardedURL api.SourceURL
	code, _ = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", sharded.UID), nil, &shardedURL)
	require.Equal(t, 200, code)

	cases := []struct {
		name string
		req  api.CreateDatabaseRequest
		want string
	}{
		{"replication without a cluster", api.CreateDatabaseRequest{Name: "x", MemorySize: 32 << 20, Replication: true}, "replication"},
		{"too many shards", api.CreateDatabaseRequest{Name: "x", MemorySize: 1 << 30, ShardsCount: 65}, "shards_count"},
		{"too little memory per shard", api.CreateDatabaseRequest{Name: "x", MemorySize: 8 << 20, ShardsCount: 3}, "per shard"},
	}
	for _, tc := range cases {
		code, e := call(t, i, "POST", "/v1/bdbs", tc.req, nil)
		assert.Equal(t, http.StatusBadRequest, code, tc.name)
		assert.Contains(t, e.Description, tc.want, tc.name)
		assert.NotContains(t, e.Description, "password", tc.name)
	}
	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	assert.Len(t, list, 2, "a refused create left something behind")
	// The database's own replication endpoint refuses to stream a part of
	// it (its first node) to a destination that does not know clusters:
	// its shards are streamed by the endpoints CLUSTER SHARDS names.
	u, err := neturl.Parse(shardedURL.URI)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	user := u.User.Username()
	_, err = fmt.Fprintf(conn, "*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n",
		len(user), user, len(pw), pw)
	require.NoError(t, err)
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "+OK\r\n", line)
	line, err = rd.ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "-ERR this database is sharded"), "answer to PSYNC: %q", line)
}

func TestShardedDatabaseWithTLS(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "secure-shop", MemorySize: 64 << 20, ShardsCount: 2, Replication: true, TLSMode: api.TLSEnabled})
	require.Len(t, db.Endpoints, 4, "%+v", db.Endpoints)
	masters := 0
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			masters++
		}
	}
	assert.Equal(t, 2, masters, "%+v", db.Endpoints)
	var cl api.Cluster
	code, e := call(t, i, "GET", "/v1/cluster", nil, &cl)
	require.Equal(t, 200, code, "%v", e)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(cl.CACert)))
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: db.Endpoints[0].Host}})
	defer c.Close()
	for k := range 100 {
		require.NoError(t, c.Set(ctx(t), "k"+strconv.Itoa(k), k, 0).Err())
	}
	for k := range 100 {
		v, err := c.Get(ctx(t), "k"+strconv.Itoa(k)).Result()
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(k), v)
	}
	// The replicas replicate over TLS too: each holds its master's keys.
	replicasHoldTheirMastersKeys(t, c)
	// A plain-text client is refused.
	plain := redis.NewClient(&redis.Options{Addr: addrs[0], Password: db.AuthenticationRedisPass, MaxRetries: -1})
	defer plain.Close()
	assert.Error(t, plain.Ping(ctx(t)).Err())
	off := api.TLSDisabled
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{TLSMode: &off}, nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, e.Description, "tls_mode cannot change")
}

// TestShardedDatabaseFailover stops a master (SIGSTOP: the service sees no
// exit to restart) until the cluster promotes its replica; the API then
// shows the new roles, every key is still served and writable, and the old
// master comes back as the replica of the new one.
func TestShardedDatabaseFailover(t *testing.T) {
	i := servicetest.Start(t)
	// Three masters: a failover needs a majority of them to agree.
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "fo", MemorySize: 96 << 20, ShardsCount: 3, Replication: true})
	c := clusterClient(t, db, db.AuthenticationRedisPass)
	for k := range 200 {
		require.NoError(t, c.Set(ctx(t), "key:"+strconv.Itoa(k), k, 0).Err())
	}
	var old, standby api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" && ep.Slots == "0-5461" {
			old = ep
		}
	}
	for _, ep := range db.Endpoints {
		if ep.Role == "replica" && ep.Master == net.JoinHostPort(old.Host, strconv.Itoa(old.Port)) {
			standby = ep
		}
	}
	require.NotZero(t, old.Port, "%+v", db.Endpoints)
	require.NotZero(t, standby.Port, "%+v", db.Endpoints)
	// The replica holds every key of its master before the master goes.
	eventually(t, 30*time.Second, "the replica caught up", func() error {
		r := nodeClient(t, standby, db.AuthenticationRedisPass)
		m := nodeClient(t, old, db.AuthenticationRedisPass)
		rn, err := r.DBSize(ctx(t)).Result()
		if err != nil {
			return err
		}
		mn, err := m.DBSize(ctx(t)).Result()
		if err != nil {
			return err
		}
		if rn != mn {
			return fmt.Errorf("replica %d keys, master %d", rn, mn)
		}
		return nil
	})
	pid, err := strconv.Atoi(infoField(t, nodeClient(t, old, db.AuthenticationRedisPass), "server", "process_id"))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	eventually(t, 60*time.Second, "the replica is promoted and the API says so", func() error {
		for _, ep := range getDB(t, i, db.UID).Endpoints {
			if ep.Port == standby.Port {
				if ep.Role != "master" || ep.Slots != "0-5461" {
					return fmt.Errorf("node %d: %+v", ep.Port, ep)
				}
				return nil
			}
		}
		return fmt.Errorf("node %d not listed", standby.Port)
	})
	eventually(t, 60*time.Second, "every key served and writable on the promoted replica", func() error {
		for k := range 200 {
			if v, err := c.Get(ctx(t), "key:"+strconv.Itoa(k)).Result(); err != nil || v != strconv.Itoa(k) {
				return fmt.Errorf("key:%d = %q %v", k, v, err)
			}
		}
		return c.Set(ctx(t), "after-failover", "yes", 0).Err()
	})
	resume()
	eventually(t, 60*time.Second, "the old master is back as the replica of the new one", func() error {
		for _, ep := range getDB(t, i, db.UID).Endpoints {
			if ep.Port == old.Port {
				if ep.Role != "replica" || ep.Master != net.JoinHostPort(standby.Host, strconv.Itoa(standby.Port)) {
					return fmt.Errorf("node %d: %+v", ep.Port, ep)
				}
				return nil
			}
		}
		return fmt.Errorf("node %d not listed", old.Port)
	})
	assert.Equal(t, "yes", c.Get(ctx(t), "after-failover").Val())
}

func TestShardedDatabaseSurvivesKilledService(t *testing.T) {
	p := servicetest.StartProcess(t)
	i := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "durable-shards", MemorySize: 96 << 20, ShardsCount: 3, Replication: true})
	checkLayout(t, db)
	c := clusterClient(t, db, db.AuthenticationRedisPass)
	for k := range 300 {
		require.NoError(t, c.Set(ctx(t), "key:"+strconv.Itoa(k), k, 0).Err())
	}
	p.Kill(t)
	eventually(t, 30*time.Second, "every node stops with the service", func() error {
		for _, ep := range db.Endpoints {
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), time.Second); err == nil {
				conn.Close()
				return fmt.Errorf("node %d still listening", ep.Port)
			}
		}
		return nil
	})
	p.Start(t)
	eventually(t, 90*time.Second, "the cluster is back with every key", func() error {
		var after api.Database
		if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &after); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if after.Status != api.StatusActive {
			return fmt.Errorf("status %s", after.Status)
		}
		for k := range 300 {
			if v, err := c.Get(ctx(t), "key:"+strconv.Itoa(k)).Result(); err != nil || v != strconv.Itoa(k) {
				return fmt.Errorf("key:%d = %q %v", k, v, err)
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "every node known to the cluster again", func() error {
		for _, ep := range getDB(t, i, db.UID).Endpoints {
			if ep.Role == "unknown" {
				return fmt.Errorf("node %d unknown", ep.Port)
			}
		}
		return nil
	})
	checkLayout(t, getDB(t, i, db.UID))
}

// scrapeMetric reads one sample of /metrics whose labels hold label.
func scrapeMetric(t *testing.T, i *servicetest.Instance, name, label string) float64 {
	t.Helper()
	req, err := http.NewRequest("GET", i.URL+"/metrics", nil)
	require.NoError(t, err)
	req.SetBasicAuth(i.Username, i.Password)
	resp, err := i.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("no %s{%s} in /metrics", name, label)
	return 0
}

// TestShardedDatabaseAdvertisesItsHostName: clients follow the instance's
// advertised host name in the cluster's redirections, not an address the
// nodes learnt from each other.
func TestShardedDatabaseAdvertisesItsHostName(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.AdvertiseHost = "localhost" })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "named", MemorySize: 32 << 20, ShardsCount: 2})
	require.Len(t, db.Endpoints, 2)
	assert.Equal(t, "localhost", db.Endpoints[0].Host)
	// A key of the second shard, asked of the first: MOVED names the host.
	first := nodeClient(t, db.Endpoints[0], db.AuthenticationRedisPass)
	key := ""
	for k := 0; key == ""; k++ {
		if s := redisKeySlot(t, first, "k"+strconv.Itoa(k)); s > 8191 {
			key = "k" + strconv.Itoa(k)
		}
	}
	err := first.Get(ctx(t), key).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MOVED")
	assert.Contains(t, err.Error(), "localhost:"+strconv.Itoa(db.Endpoints[1].Port))
	c := clusterClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), key, "v", 0).Err())
	assert.Equal(t, "v", c.Get(ctx(t), key).Val())
}

func redisKeySlot(t *testing.T, c *redis.Client, key string) int64 {
	t.Helper()
	n, err := c.ClusterKeySlot(ctx(t), key).Result()
	require.NoError(t, err)
	return n
}

// busOf is the bus port of the node at ep, as its CLUSTER NODES
// says, and how many nodes it knows.
func busOf(t *testing.T, c *redis.Client) (bus int, known []string) {
	t.Helper()
	out, err := c.Do(ctx(t), "CLUSTER", "NODES").Text()
	require.NoError(t, err)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		require.GreaterOrEqual(t, len(f), 3, "CLUSTER NODES line %q", l)
		known = append(known, f[0])
		if strings.Contains(f[2], "myself") {
			at := strings.IndexByte(f[1], '@')
			require.Positive(t, at, "no bus port in %q", f[1])
			end := strings.IndexByte(f[1][at:], ',')
			if end < 0 {
				end = len(f[1]) - at
			}
			bus, err = strconv.Atoi(f[1][at+1 : at+end])
			require.NoError(t, err, "bus port in %q", f[1])
		}
	}
	require.NotZero(t, bus, "CLUSTER NODES names no node as myself:\n%s", out)
	return bus, known
}

// A cluster node believes what its bus is told: a stranger that meets a
// node joins the cluster, and can take its slots by claiming a higher
// epoch. The bus of a sharded database takes only the instance's nodes.
func TestShardedDatabaseBusRefusesStrangers(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "bus", MemorySize: 96 << 20, ShardsCount: 3,
		AuthenticationRedisPass: "bus-password-1"})
	node := nodeClient(t, db.Endpoints[0], db.AuthenticationRedisPass)
	bus, before := busOf(t, node)
	require.Len(t, before, 3)

	stranger := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
	sc := stranger.Client()
	strangerID, err := sc.Do(ctx(t), "CLUSTER", "MYID").Text()
	require.NoError(t, err)
	require.NoError(t, sc.Do(ctx(t), "CLUSTER", "MEET", db.Endpoints[0].Host, db.Endpoints[0].Port, bus).Err())
	// The stranger keeps the node as "handshake" until the node answers
	// on the bus (then it is a peer) or a node timeout passes (then it
	// forgets it).
	eventually(t, 30*time.Second, "the stranger's handshake with the node ends", func() error {
		out, err := sc.Do(ctx(t), "CLUSTER", "NODES").Text()
		if err != nil {
			return err
		}
		if strings.Contains(out, "handshake") {
			return fmt.Errorf("still in handshake:\n%s", out)
		}
		return nil
	})
	out, err := sc.Do(ctx(t), "CLUSTER", "NODES").Text()
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "the stranger met the database's nodes:\n%s", out)
	for _, ep := range db.Endpoints {
		_, known := busOf(t, nodeClient(t, ep, db.AuthenticationRedisPass))
		assert.NotContains(t, known, strangerID, "node %d knows the stranger", ep.Port)
		assert.Len(t, known, 3, "node %d", ep.Port)
	}
	// And the nodes still talk to each other: the cluster serves.
	c := clusterClient(t, db, db.AuthenticationRedisPass)
	for k := range 30 {
		require.NoError(t, c.Set(ctx(t), "k"+strconv.Itoa(k), k, 0).Err())
	}
	assert.Equal(t, "ok", infoClusterState(t, node))
}

func infoClusterState(t *testing.T, c *redis.Client) string {
	t.Helper()
	out, err := c.Do(ctx(t), "CLUSTER", "INFO").Text()
	require.NoError(t, err)
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "cluster_state:"); ok {
			return v
		}
	}
	t.Fatalf("no cluster_state in CLUSTER INFO:\n%s", out)
	return ""
}

// replicasHoldTheirMastersKeys waits until every replica of c holds 20 keys
// or more: those of its master, of the 100 that the tests write.
func replicasHoldTheirMastersKeys(t *testing.T, c *redis.ClusterClient) {
	t.Helper()
	eventually(t, 60*time.Second, "every replica holds its master's keys", func() error {
		return c.ForEachSlave(ctx(t), func(ctx context.Context, r *redis.Client) error {
			if err := r.ReadOnly(ctx).Err(); err != nil {
				return err
			}
			n, err := r.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			if n < 20 {
				return fmt.Errorf("a replica holds %d keys", n)
			}
			return nil
		})
	})
}
