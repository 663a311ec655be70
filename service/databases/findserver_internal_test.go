package databases

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedisMajor(t *testing.T) {
	for in, want := range map[string]int{
		"Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n": 7,
		"Redis server v=6.2.14 sha=00000000:0":                                                       6,
		"Redis server v=255.255.255":                                                                 255,
	} {
		got, ok := redisMajor(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "redis-server 7.0", "Valkey server v=8.0.1", "Redis server v=x.0"} {
		_, ok := redisMajor(in)
		assert.False(t, ok, in)
	}
}

// A --redis-server that is not one, or too old, is refused at start with
// what to do; before, the service started and every database failed.
func TestFindRedisServerRefusesWhatIsNotRedis7(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
		return p
	}
	_, err := FindRedisServer(script("false", "exit 1"))
	assert.ErrorContains(t, err, "must name a redis-server of Redis 7 or later")
	_, err = FindRedisServer(script("echo", "echo hello"))
	assert.ErrorContains(t, err, `is not a redis-server (its --version said "hello")`)
	_, err = FindRedisServer(script("old", "echo 'Redis server v=6.2.14 sha=00000000:0'"))
	assert.ErrorContains(t, err, "is Redis 6: the service needs Redis 7 or later")
	p, err := FindRedisServer(script("new", "echo 'Redis server v=7.2.4 sha=00000000:0'"))
	assert.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "new"), p)
	_, err = FindRedisServer(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "apt-get install -y redis-server")
}

// A relative --redis-server (`--redis-server ./bin/redis-server`) is
// resolved at start: each redis-server is started in its database's own
// directory, where a relative path names nothing (every database failed to
// start, as with a relative --data-dir).
func TestFindRedisServerResolvesARelativePath(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "redis-server"),
		[]byte("#!/bin/sh\necho 'Redis server v=7.2.4 sha=00000000:0'\n"), 0o755))
	t.Chdir(dir)
	p, err := FindRedisServer("./bin/redis-server")
	require.NoError(t, err)
	assert.True(t, filepath.IsAbs(p), "%q is relative: a redis-server started in its database's directory would not find it", p)
	assert.Equal(t, filepath.Join(dir, "bin", "redis-server"), p)
}

// A redis-server built without TLS stops at the first tls-* directive of
// its configuration: the cluster bus then stays plain (a TLS bus would keep
// every sharded database from starting).
func TestTLSBuiltTellsABuildWithoutTLS(t *testing.T) {
	dir := t.TempDir()
	script := func(name, said string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\ncat >/dev/null\nprintf '%s\\n' \""+said+"\"\nexit 1\n"), 0o755))
		return p
	}
	assert.False(t, tlsBuilt(script("plain", "Reading the configuration file, at line 1\n>>> 'tls-cluster no'\nBad directive or wrong number of arguments")))
	assert.True(t, tlsBuilt(script("tls", "Reading the configuration file, at line 2\n>>> 'no-such-directive-of-redis-replicad 1'\nBad directive or wrong number of arguments")))
	if bin, err := exec.LookPath("redis-server"); err == nil {
		assert.True(t, tlsBuilt(bin), "Debian's redis-server is built with TLS")
	}
}
