package app_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// sourceEndpoint returns the replication endpoint and password of db.
func sourceEndpoint(t *testing.T, i *servicetest.Instance, db api.Database) (addr, password string) {
	t.Helper()
	var su api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", db.UID), nil, &su)
	require.Equal(t, 200, code, "source_url: %v", e)
	u, err := url.Parse(su.URI)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	return u.Host, pw
}

// rawConn is a connection speaking RESP by hand, for what clients never send.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	rd *resp.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return &rawConn{t: t, c: c, rd: resp.NewReader(bufio.NewReader(c))}
}

func (r *rawConn) send(raw string) (resp.Value, error) {
	if _, err := io.WriteString(r.c, raw); err != nil {
		return resp.Value{}, err
	}
	return r.rd.ReadValue()
}

func (r *rawConn) do(args ...string) resp.Value {
	r.t.Helper()
	v, err := r.send(string(resp.AppendCommandStrings(nil, args...)))
	require.NoError(r.t, err, "%v", args)
	return v
}

func healthy(t *testing.T, i *servicetest.Instance) {
	t.Helper()
	r, err := i.HTTPClient().Get(i.URL + "/healthz")
	require.NoError(t, err, "the service must still answer")
	r.Body.Close()
	require.Equal(t, 200, r.StatusCode)
}

// Four bytes used to stop the whole service. No input on a replication
// endpoint, before or after AUTH, may do more than close its own session.
func TestReplicationEndpointSurvivesMalformedInput(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	app := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, app.Set(ctx(t), "k", "v", 0).Err())
	addr, pw := sourceEndpoint(t, i, db)

	garbage := []string{"*0\r\n", "*-1\r\n", "*-2\r\n", "*1\r\n$-1\r\n", "*2\r\n$3\r\n", "*9999999999\r\n",
		"*1\r\n$999999999\r\n", "$5\r\nhello\r\n", ":1\r\n", "PING\r\n", "\x00\x01\xff\xfe\r\n", "\x16\x03\x01\x00\x05hello", "\r\n\r\n"}
	// Input that is not RESP at all: an error reply says so before the end.
	malformed := map[string]bool{"*-2\r\n": true, "*9999999999\r\n": true, "*1\r\n$999999999\r\n": true, "$5\r\nhello\r\n": true,
		":1\r\n": true, "\x00\x01\xff\xfe\r\n": true}
	for _, g := range garbage {
		for _, authenticated := range []bool{false, true} {
			c := dialRaw(t, addr)
			if authenticated {
				require.Equal(t, "OK", string(c.do("AUTH", pw).Str))
			}
			c.c.Write([]byte(g))
			c.c.(*net.TCPConn).CloseWrite()
			out, _ := io.ReadAll(c.c) // an error reply or nothing, then the end
			if malformed[g] {
				assert.True(t, strings.HasPrefix(string(out), "-ERR"), "%q (authenticated %v) is answered %q, not with an error", g, authenticated, out)
			}
			healthy(t, i)
		}
	}
	// Empty commands are answered, and the session goes on.
	c := dialRaw(t, addr)
	v, err := c.send("*0\r\n")
	require.NoError(t, err)
	assert.Equal(t, "ERR empty command", string(v.Str))
	require.Equal(t, "OK", string(c.do("AUTH", pw).Str))
	v, err = c.send("*-1\r\n")
	require.NoError(t, err)
	assert.Equal(t, "ERR empty command", string(v.Str))
	assert.Equal(t, "PONG", string(c.do("PING").Str))

	// The database, its endpoint and the API all still serve.
	assert.Equal(t, "v", app.Get(ctx(t), "k").Val())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: fmt.Sprintf("redis://admin:%s@%s", url.QueryEscape(pw), addr)}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination has the source's key", func() error {
		if got, err := dc.Get(ctx(t), "k").Result(); err != nil || got != "v" {
			return fmt.Errorf("GET k = %q, %v", got, err)
		}
		return nil
	})
}

// A source URL lets its holder replicate, and nothing more.
func TestSourceURLGivesReplicationOnly(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	require.NoError(t, dbClient(t, db, db.AuthenticationRedisPass).Set(ctx(t), "secret-key", "v", 0).Err())
	addr, pw := sourceEndpoint(t, i, db)
	c := dialRaw(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", "admin", pw).Str))

	info := string(c.do("INFO").Str) + string(c.do("INFO", "everything").Str) + string(c.do("INFO", "server", "keyspace").Str)
	assert.Contains(t, info, "role:master", "INFO replication is what replicas need")
	for _, leak := range []string{"config_file", "process_id", "executable", "db0:", "used_memory", "connected_clients:"} {
		assert.NotContains(t, info, leak, "INFO through a source URL shows the replication section only")
	}
	for _, cmd := range [][]string{
		{"GET", "secret-key"}, {"KEYS", "*"}, {"SCAN", "0"}, {"CONFIG", "GET", "*"}, {"CONFIG", "SET", "maxmemory", "1"},
		{"ACL", "SETUSER", "default", "+@all"}, {"ACL", "LIST"}, {"FLUSHALL"}, {"SET", "x", "y"}, {"DEBUG", "SLEEP", "0"},
		{"CLIENT", "LIST"}, {"CLIENT", "KILL", "TYPE", "normal"}, {"REPLICAOF", "127.0.0.1", "1"}, {"SHUTDOWN"},
		{"MONITOR"}, {"AUTH", "default", db.AuthenticationRedisPass}, {"HELLO", "3", "AUTH", "default", db.AuthenticationRedisPass},
		{"EVAL", "return redis.call('get','secret-key')", "0"}, {"SELECT", "0"},
	} {
		v := c.do(cmd...)
		if cmd[0] == "SELECT" {
			continue // harmless, and some replication tools send it
		}
		assert.True(t, v.IsError(), "%s through a source URL must be refused, got %s", cmd[0], v.String())
	}
	// And still a replica may connect.
	assert.Equal(t, "PONG", string(c.do("PING").Str))
	assert.Equal(t, "OK", string(c.do("REPLCONF", "capa", "eof", "capa", "psync2").Str))
	_, err := c.c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1"))
	require.NoError(t, err)
	line, err := c.rd.Buffered().ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "+FULLRESYNC"), line)
	healthy(t, i)
}

// A destination that stops reading is disconnected before the source has
// buffered more than its limit for one replica.
func TestStalledReplicaIsDisconnected(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	app := dbClient(t, db, db.AuthenticationRedisPass)
	addr, pw := sourceEndpoint(t, i, db)
	c := dialRaw(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", pw).Str))
	_, err := c.c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1"))
	require.NoError(t, err)
	eventually(t, time.Minute, "the replica is connected", func() error {
		if n := infoField(t, app, "replication", "connected_slaves"); n != "1" {
			return fmt.Errorf("connected_slaves = %s", n)
		}
		return nil
	})
	// Read nothing more. Write far more than the limit (32 MiB for this
	// size) by overwriting a few keys: the dataset stays small.
	value := strings.Repeat("x", 512<<10)
	eventually(t, 2*time.Minute, "the source disconnects the stalled replica", func() error {
		for k := range 16 {
			if err := app.Set(ctx(t), "big:"+strconv.Itoa(k), value, 0).Err(); err != nil {
				return err
			}
		}
		if n := infoField(t, app, "replication", "connected_slaves"); n != "0" {
			return fmt.Errorf("connected_slaves = %s", n)
		}
		return nil
	})
	peak, err := strconv.ParseInt(infoField(t, app, "memory", "used_memory_peak"), 10, 64)
	require.NoError(t, err)
	assert.Less(t, peak, int64(64<<20), "the source's memory stays within its limit")
	_, err = io.ReadAll(c.c)
	assert.NoError(t, err, "the gateway closed the session once the source dropped it")
	healthy(t, i)
}

// What the application user of a database may do: data commands; on a
// destination, read-only ones. Never administration.
func TestApplicationUserMayUseDataCommandsOnly(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := dbClient(t, src, src.AuthenticationRedisPass)
	require.NoError(t, sc.Set(ctx(t), "k", "v", 0).Err())
	require.NoError(t, sc.RPush(ctx(t), "list", "a", "b").Err())
	addr, pw := sourceEndpoint(t, i, src)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: fmt.Sprintf("redis://admin:%s@%s", url.QueryEscape(pw), addr)}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination is loaded", func() error {
		if n, err := dc.LLen(ctx(t), "list").Result(); err != nil || n != 2 {
			return fmt.Errorf("LLEN list = %d, %v", n, err)
		}
		return nil
	})

	// What the issue found an application could do, and must not.
	admin := [][]any{
		{"ACL", "SETUSER", "default", "+@all"}, {"ACL", "SETUSER", "replicad", "resetpass", "off"}, {"ACL", "LIST"},
		{"CONFIG", "SET", "maxmemory", "1"}, {"CONFIG", "SET", "maxmemory-policy", "allkeys-random"}, {"CONFIG", "GET", "*"},
		{"CONFIG", "REWRITE"}, {"REPLICAOF", "127.0.0.1", "1"}, {"SLAVEOF", "127.0.0.1", "1"}, {"SHUTDOWN", "NOSAVE"},
		{"FAILOVER"}, {"DEBUG", "SLEEP", "0"}, {"MODULE", "LIST"}, {"CLIENT", "KILL", "TYPE", "normal"},
		{"CLIENT", "PAUSE", "1000"}, {"CLIENT", "LIST"}, {"BGSAVE"}, {"BGREWRITEAOF"}, {"SAVE"}, {"SWAPDB", "0", "1"},
		{"MIGRATE", "127.0.0.1", "1", "k", "0", "1000"}, {"MONITOR"}, {"SLOWLOG", "RESET"},
		{"LATENCY", "RESET"}, {"PSYNC", "?", "-1"}, {"SYNC"}, {"LASTSAVE"}, {"ROLE"},
	}
	for _, c := range []*redis.Client{sc, dc} {
		for _, cmd := range admin {
			assertDenied(t, c.Do(ctx(t), cmd...).Err(), "%v", cmd)
		}
	}
	// On a destination, reads work and writes get NOPERM...
	reads := [][]any{{"GET", "k"}, {"LRANGE", "list", "0", "-1"}, {"KEYS", "*"}, {"SCAN", "0"}, {"TTL", "k"}, {"DUMP", "k"},
		{"SORT_RO", "list", "ALPHA"}, {"EVAL", "return redis.call('get', KEYS[1])", "1", "k"}, {"INFO", "keyspace"}}
	for _, cmd := range reads {
		assert.NoError(t, dc.Do(ctx(t), cmd...).Err(), "%v on a destination", cmd)
	}
	writes := [][]any{{"SET", "k", "x"}, {"DEL", "k"}, {"EXPIRE", "k", "1"}, {"PERSIST", "k"}, {"RPUSH", "list", "c"},
		{"FLUSHALL"}, {"FLUSHDB"}, {"SORT", "list", "ALPHA", "STORE", "o"}, {"RESTORE", "n", "0", "x"}, {"COPY", "k", "k2"},
		{"MOVE", "k", "1"}, {"FUNCTION", "FLUSH"}, {"EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "k"}}
	for _, cmd := range writes {
		assertDenied(t, dc.Do(ctx(t), cmd...).Err(), "%v on a destination", cmd)
	}
	assert.Equal(t, "v", dc.Get(ctx(t), "k").Val(), "nothing the application tried changed the destination")

	// ... and data commands of every family work on a normal database
	// (last: they change what the destination replicates).
	data := [][]any{
		{"SET", "s", "1"}, {"INCR", "s"}, {"GET", "s"}, {"APPEND", "s", "x"}, {"LPUSH", "l", "a"}, {"LRANGE", "l", "0", "-1"},
		{"HSET", "h", "f", "v"}, {"HGETALL", "h"}, {"SADD", "set", "m"}, {"SMEMBERS", "set"}, {"ZADD", "z", "1", "m"},
		{"ZRANGE", "z", "0", "-1"}, {"XADD", "x", "*", "f", "v"}, {"XRANGE", "x", "-", "+"}, {"SETBIT", "b", "1", "1"},
		{"GETBIT", "b", "1"}, {"PFADD", "p", "a"}, {"PFCOUNT", "p"}, {"GEOADD", "g", "1", "1", "m"}, {"GEOPOS", "g", "m"},
		{"EXPIRE", "s", "100"}, {"TTL", "s"}, {"PERSIST", "s"}, {"KEYS", "*"}, {"SCAN", "0"}, {"TYPE", "s"}, {"EXISTS", "s"},
		{"DUMP", "s"}, {"SORT", "l", "ALPHA"}, {"SORT_RO", "l", "ALPHA"}, {"PUBLISH", "ch", "m"}, {"EVAL", "return 1", "0"},
		{"EVAL", "return redis.call('set', KEYS[1], 'v')", "1", "e"}, {"INFO", "keyspace"},
		{"DBSIZE"}, {"MEMORY", "USAGE", "s"}, {"OBJECT", "ENCODING", "s"}, {"CLIENT", "SETNAME", "app"}, {"CLIENT", "ID"},
		{"ACL", "WHOAMI"}, {"PING"}, {"ECHO", "x"}, {"COPY", "s", "s2"}, {"RENAME", "s2", "s3"}, {"DEL", "s3"}, {"FLUSHDB"},
		{"FLUSHALL"},
	}
	for _, cmd := range data {
		assert.NoError(t, sc.Do(ctx(t), cmd...).Err(), "%v on a normal database", cmd)
	}
	// Every command Redis knows, by category: none of @admin is allowed, and
	// @dangerous only where it touches the user's own data.
	sweepCommands(t, i, src, false)
	sweepCommands(t, i, dst, true)
}

// assertDenied checks that err is a refusal by the ACL (NOPERM, or its
// wording inside a script), or of a command redis-server disables outright.
func assertDenied(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if !assert.Error(t, err, fmt.Sprintf(format, args...)) {
		return
	}
	msg := err.Error()
	ok := strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "can't run this command") || strings.Contains(msg, "command not allowed")
	assert.True(t, ok, "not refused for lack of permission: %s (%s)", msg, fmt.Sprintf(format, args...))
}

// dangerousDataCommands are the @dangerous commands an application keeps.
var dangerousDataCommands = map[string]bool{"flushall": true, "flushdb": true, "keys": true, "sort": true, "sort_ro": true, "restore": true, "info": true}

// sweepCommands runs every command of the server, with arguments of the
// right count, as the application user, and checks the ACL's verdict.
func sweepCommands(t *testing.T, i *servicetest.Instance, db api.Database, destination bool) {
	t.Helper()
	cmds, err := dbClient(t, db, db.AuthenticationRedisPass).Do(ctx(t), "COMMAND").Slice()
	require.NoError(t, err)
	type command struct {
		name  string
		arity int64
		cats  map[string]bool
	}
	var all []command
	var collect func(v any)
	collect = func(v any) {
		e := v.([]any)
		c := command{name: e[0].(string), arity: e[1].(int64), cats: map[string]bool{}}
		for _, cat := range e[6].([]any) {
			c.cats[cat.(string)] = true
		}
		subs, _ := e[9].([]any)
		if len(subs) == 0 {
			all = append(all, c)
		}
		for _, s := range subs {
			collect(s)
		}
	}
	for _, c := range cmds {
		collect(c)
	}
	require.Greater(t, len(all), 200, "COMMAND lists every command")
	addr := fmt.Sprintf("%s:%d", db.Endpoint.Host, db.Endpoint.Port)
	for _, c := range all {
		parts := strings.Split(c.name, "|")
		n := c.arity
		if n < 0 {
			n = -n
		}
		args := append([]string(nil), parts...)
		for int64(len(args)) < n {
			args = append(args, "x")
		}
		base := parts[0]
		switch base {
		case "select":
			args = []string{"select", "1"}
		case "quit", "reset", "subscribe", "psubscribe", "ssubscribe", "auth", "hello":
			continue // connection state, not permissions
		}
		wantDenied := c.cats["@admin"] || (c.cats["@dangerous"] && !dangerousDataCommands[base]) || (destination && c.cats["@write"])
		conn := dialRaw(t, addr)
		require.Equal(t, "OK", string(conn.do("AUTH", db.AuthenticationRedisPass).Str))
		v, err := conn.send(string(resp.AppendCommandStrings(nil, args...)))
		conn.c.Close()
		if err != nil {
			// A permitted command may close the connection (none should,
			// with these arguments); a denied one never does.
			assert.False(t, wantDenied, "%s: %v", c.name, err)
			continue
		}
		// MODULE and DEBUG are refused before the ACL is consulted.
		denied := v.IsError() && (strings.HasPrefix(string(v.Str), "NOPERM") || strings.Contains(string(v.Str), "command not allowed"))
		assert.Equal(t, wantDenied, denied, "%s (categories %v, destination %v): %s", c.name, keysOf(c.cats), destination, v.String())
	}
	healthy(t, i)
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The small rules: no privileged ports, one URL per database, one database
// per name whatever its case.
func TestAPIRefusesAmbiguousInput(t *testing.T) {
	i := servicetest.Start(t)
	code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "low", MemorySize: 64 << 20, Port: 80}, nil)
	assert.Equal(t, 400, code)
	assert.Contains(t, e.Description, "port 80")
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dup1", MemorySize: 64 << 20})
	for _, uid := range []string{"+1", "01", "1.0", " 1", "0x1"} {
		code, _ := call(t, i, "GET", "/v1/bdbs/"+url.PathEscape(uid), nil, nil)
		assert.Equal(t, 404, code, "uid %q", uid)
	}
	code, _ = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, nil)
	assert.Equal(t, 200, code)
	code, e = call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "DUP1", MemorySize: 64 << 20}, nil)
	assert.Equal(t, 409, code, "names differ only in case")
	assert.Contains(t, e.Description, "dup1")
	other := mustCreate(t, i, api.CreateDatabaseRequest{Name: "other", MemorySize: 64 << 20})
	rename := "Dup1"
	code, _ = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{Name: &rename}, nil)
	assert.Equal(t, 409, code, "a rename to a name that differs only in case")
	rename = "OTHER"
	code, _ = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{Name: &rename}, nil)
	assert.Equal(t, 200, code, "a database may change the case of its own name")
	// An update checks shards_count's range as a create does: a negative
	// count was read as 1, the count the database has, and answered 200.
	for _, n := range []int{-1, -100, api.MaxShards + 1} {
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{ShardsCount: &n}, nil)
		assert.Equal(t, 400, code, "shards_count %d", n)
		assert.Contains(t, e.Description, "out of range", "shards_count %d", n)
	}
	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	assert.Len(t, list, 2, "nothing left behind by the refused calls")
}

// The application user's RESTORE is checked deeply: a crafted payload (a
// listpack whose first entry claims 63 bytes) used to be stored, and the
// redis-server crashed when an application read it, again after each
// restart.
func TestACraftedRestoreOfTheApplicationUserIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "plain", MemorySize: 64 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.HSet(ctx(t), "model", "a", "1").Err())
	dump, err := c.Dump(ctx(t), "model").Result()
	require.NoError(t, err)
	p := []byte(dump)
	require.Equal(t, byte(0x81), p[8], "the first entry of the listpack")
	p[8] = 0xbf
	p = p[:len(p)-8]
	tab := crc64.MakeTable(0x95ac9329ac4bc9b5)
	p = binary.LittleEndian.AppendUint64(p, ^crc64.Update(^uint64(0), tab, p))

	err = c.Do(ctx(t), "RESTORE", "poison", "0", string(p)).Err()
	require.Error(t, err, "the crafted payload is accepted")
	assert.Contains(t, err.Error(), "Bad data format")
	// A valid payload still restores.
	require.NoError(t, c.Do(ctx(t), "RESTORE", "copy", "0", dump).Err())
	assert.Equal(t, map[string]string{"a": "1"}, c.HGetAll(ctx(t), "copy").Val())
	assert.Zero(t, c.Exists(ctx(t), "poison").Val())
}

// A flood of connections to the API (idle, never authenticated) holds at
// most MaxAPIConnections of the service's file descriptors: past it, a new
// connection displaces an idle one. They used to take one each, until the process had
// none left for anything else (a database's restart failed with "too many
// open files"). The API answers during the flood and after it.
func TestAFloodOfAPIConnectionsHoldsABoundedNumberOfFiles(t *testing.T) {
	const limit = 8
	i := servicetest.StartWith(t, func(cfg *app.Config) { cfg.MaxAPIConnections = limit })
	openFiles := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(entries)
	}
	before := openFiles()
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 100 {
		c, err := net.Dial("tcp", i.App.Addr())
		require.NoError(t, err)
		flood = append(flood, c)
	}
	// The test's own 100 ends count too; the service's side may hold at
	// most limit of the others.
	eventually(t, 10*time.Second, "the service accepted what it may", func() error {
		if n := openFiles() - before - len(flood); n < limit {
			return fmt.Errorf("%d accepted", n)
		}
		return nil
	})
	assert.LessOrEqual(t, openFiles()-before-len(flood), limit+4, "files held by the service for the flood")

	// While the flood stays open, the API still answers at once: a new
	// connection displaces an idle one of the flood. It used to wait in
	// the kernel's queue behind the whole flood, each connection held
	// until the TLS handshake timed out (10 s): a client that kept its
	// connections coming locked everybody out of the API.
	start := time.Now()
	code, apiErr := call(t, i, "GET", "/v1/bdbs", nil, nil)
	assert.Equal(t, 200, code, "%v", apiErr)
	assert.Less(t, time.Since(start), 5*time.Second, "the API's answer during a flood")
	assert.LessOrEqual(t, openFiles()-before-len(flood), limit+4, "files held by the service for the flood")

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	code, apiErr = call(t, i, "GET", "/v1/bdbs", nil, nil)
	assert.Equal(t, 200, code, "%v", apiErr)
}

// Readers of a destination hold memory that counts toward its maxmemory:
// a reader that announces a huge argument and sends it slowly, or
// thousands of connections opened at once (its port is open to anyone),
// made the destination refuse its source's next writes out of memory, and
// the service stopped the sync for good, blaming the data. An OOM while
// the data fits now waits for the clients to free their memory, saying
// so, and then loads the destination again.
func TestReadersHoldingMemoryDoNotStopTheSync(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	sc := src.Client()
	for n := range 1000 {
		require.NoError(t, sc.Set(ctx(t), fmt.Sprintf("k%d", n), strings.Repeat("v", 100), 0).Err())
	}
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	get := func() api.Database {
		var got api.Database
		code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Equal(t, 200, code, "%v", e)
		return got
	}
	eventually(t, time.Minute, "in sync", func() error {
		if s := get().ReplicaSyncStatus; s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})

	// A reader (the application user) announces a 100 MB argument and
	// sends 40 MB of it, and a thousand connections send nothing.
	release := holdMemory(t, net.JoinHostPort(dst.Endpoint.Host, strconv.Itoa(dst.Endpoint.Port)), dst.AuthenticationRedisPass, true)

	// Meanwhile the source writes: the destination refuses them.
	for n := range 2000 {
		require.NoError(t, sc.Set(ctx(t), fmt.Sprintf("after%d", n), strings.Repeat("w", 100), 0).Err())
	}
	eventually(t, time.Minute, "the status says what the destination waits for", func() error {
		db := get()
		if db.ReplicaSync != api.SyncEnabled {
			t.Fatalf("the sync stopped: %+v", db.ReplicaSources)
		}
		if e := db.ReplicaSources[0].LastError; !strings.Contains(e, "waiting for its clients to free") {
			return fmt.Errorf("last_error %q", e)
		}
		return nil
	})
	// The readers go: the destination is loaded again, and ends equal.
	release()
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, 2*time.Minute, "the destination holds the source's data", func() error {
		if db := get(); db.ReplicaSync != api.SyncEnabled {
			t.Fatalf("the sync stopped: %+v", db.ReplicaSources)
		}
		return redistest.Diff(ctx(t), dc, sc)
	})
	eventually(t, time.Minute, "in sync", func() error {
		if s := get().ReplicaSyncStatus; s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
}

// A sharded database with TLS trusted its client_certificates on its
// cluster bus too (Redis has one list of trusted certificates for its port
// and its bus): whoever held one, typically a destination instance's
// syncer certificate, could join the cluster with a node of its own
// (CLUSTER MEET from it) and take its slots. Its nodes now trust the
// instance's CA alone; the pinned certificates still open its replication
// endpoints, which pin them exactly.
func TestPinnedClientCertificatesDoNotOpenTheClusterBus(t *testing.T) {
	i := servicetest.Start(t)
	certPEM, keyPEM, err := certs.LoadOrCreateSelfSigned(t.TempDir(), "pinned", "pinned client")
	require.NoError(t, err)
	pinned, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "pinned", MemorySize: 64 << 20, ShardsCount: 2,
		TLSMode: api.TLSEnabled, ClientCertificates: []string{string(certPEM)}})
	conf, err := os.ReadFile(filepath.Join(i.DataDir, "dbs", strconv.Itoa(db.UID), "redis.conf"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^cluster-port (\d+)$`).FindSubmatch(conf)
	require.NotNil(t, m, "the first node's cluster bus port")
	bus := net.JoinHostPort(db.Endpoints[0].Host, string(m[1]))

	// With TLS 1.3 the server checks the client's certificate once the
	// client's side of the handshake is done: a refusal is an alert on
	// the first read, an admission a read that waits for bus messages.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", bus,
		&tls.Config{Certificates: []tls.Certificate{pinned}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
	}
	require.Error(t, err)
	var netErr net.Error
	assert.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the cluster bus admitted a pinned client certificate")

	// The replication endpoint of that node admits the pinned certificate.
	addr, pw := sourceEndpoint(t, i, db)
	rc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{pinned}, InsecureSkipVerify: true})
	require.NoError(t, err)
	defer rc.Close()
	rc.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = fmt.Fprintf(rc, "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(pw), pw)
	require.NoError(t, err)
	rd := resp.NewReader(bufio.NewReader(rc))
	for _, want := range []string{"+OK", "+PONG"} {
		v, err := rd.ReadValue()
		require.NoError(t, err)
		assert.Equal(t, want, v.String())
	}
}

// The replicas of a sharded database log in to their masters over the
// network (the nodes' ports, in plain text without TLS). They did so as
// the service's own user, so that whoever saw that traffic held every
// right over every node (CONFIG, ACL, DEBUG, SHUTDOWN). They log in as
// the user that may only replicate now.
func TestShardReplicasLogInWithReplicationRightsOnly(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "replicated", MemorySize: 64 << 20, ShardsCount: 2, Replication: true})
	nodes := i.App.Databases().NodeClients(db.UID)
	require.Len(t, nodes, 4)
	conf, err := nodes[0].ConfigGet(ctx(t), "master*").Result()
	require.NoError(t, err)
	user, pw := conf["masteruser"], conf["masterauth"]
	require.NotEmpty(t, pw, "the replicas' credentials")
	for _, ep := range db.Endpoints {
		c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), Username: user, Password: pw, MaxRetries: -1})
		defer c.Close()
		require.NoError(t, c.Ping(ctx(t)).Err(), "the replicas' credentials log in to node %d", ep.Port)
		for _, cmd := range [][]any{{"CONFIG", "GET", "maxmemory"}, {"ACL", "LIST"}, {"GET", "k"}, {"CLUSTER", "RESET"}, {"FLUSHALL"}} {
			err := c.Do(ctx(t), cmd...).Err()
			require.Error(t, err, "%v with the replicas' credentials", cmd)
			assert.Contains(t, err.Error(), "NOPERM", "%v with the replicas' credentials", cmd)
		}
	}

	// The replicas still replicate their masters.
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass})
	defer cc.Close()
	for k := range 100 {
		require.NoError(t, cc.Set(ctx(t), "k"+strconv.Itoa(k), k, 0).Err())
	}
	replicasHoldTheirMastersKeys(t, cc)
}

// A client that pipelines reads and never reads the replies is
// disconnected once its unread replies reach the database's memory_size
// (64 MiB at least). Redis bounds no normal client by default: 400 GETs of
// a 1 MiB value left unread made a 32 MiB destination hold 400 MiB (one
// such client took 5.7 GiB), and its sync stalled meanwhile.
func TestAClientThatDoesNotReadItsRepliesIsDisconnected(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	sc := src.Client()
	require.NoError(t, sc.Set(ctx(t), "big", strings.Repeat("x", 1<<20), 0).Err())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination has the value", func() error {
		if n := dc.StrLen(ctx(t), "big").Val(); n != 1<<20 {
			return fmt.Errorf("strlen %d", n)
		}
		return nil
	})

	hog, err := net.Dial("tcp", net.JoinHostPort(dst.Endpoint.Host, strconv.Itoa(dst.Endpoint.Port)))
	require.NoError(t, err)
	defer hog.Close()
	const gets = 400
	pw := dst.AuthenticationRedisPass
	_, err = fmt.Fprintf(hog, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n%s", len(pw), pw, strings.Repeat("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", gets))
	require.NoError(t, err)
	// The hog reads at last: what it gets ends with the server closing
	// the connection, well before the 400 MiB it asked for.
	require.NoError(t, hog.SetReadDeadline(time.Now().Add(time.Minute)))
	n, err := io.Copy(io.Discard, hog)
	require.NoError(t, err, "the server kept the connection of a client that did not read %d bytes of replies", n)
	assert.Less(t, n, int64(gets<<20)/2, "bytes the server sent before it closed the connection")
	peak, err := dc.Info(ctx(t), "memory").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`used_memory_peak:(\d+)`).FindStringSubmatch(peak)
	require.NotNil(t, m)
	used, _ := strconv.ParseInt(m[1], 10, 64)
	assert.Less(t, used, int64(160<<20), "the destination's peak memory")

	// The sync goes on.
	require.NoError(t, sc.Set(ctx(t), "after", "1", 0).Err())
	eventually(t, time.Minute, "the write after arrives", func() error {
		return dc.Get(ctx(t), "after").Err()
	})
}
