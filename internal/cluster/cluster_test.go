package cluster

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Values from the Redis Cluster specification.
func TestKeySlot(t *testing.T) {
	assert.Equal(t, uint16(0x31C3), crc16([]byte("123456789")))
	assert.Equal(t, 12182, KeySlot([]byte("foo")))
	assert.Equal(t, 5061, KeySlot([]byte("bar")))
	assert.Equal(t, KeySlot([]byte("user1000")), KeySlot([]byte("{user1000}.following")))
	assert.Equal(t, KeySlot([]byte("{user1000}.following")), KeySlot([]byte("{user1000}.followers")))
	// An empty tag hashes the whole key; only the first tag counts.
	assert.Equal(t, int(crc16([]byte("foo{}{bar}"))%Slots), KeySlot([]byte("foo{}{bar}")))
	assert.Equal(t, KeySlot([]byte("{bar")), KeySlot([]byte("foo{{bar}}zap")))
	assert.Equal(t, KeySlot([]byte("bar")), KeySlot([]byte("foo{bar}{zap}")))
	assert.Equal(t, int(crc16([]byte("foo{"))%Slots), KeySlot([]byte("foo{")))
}

func TestParseEnabled(t *testing.T) {
	assert.True(t, ParseEnabled("# Cluster\r\ncluster_enabled:1\r\n"))
	assert.False(t, ParseEnabled("# Cluster\r\ncluster_enabled:0\r\n"))
	assert.False(t, ParseEnabled("# Replication\r\nrole:master\r\n"))
	assert.False(t, ParseEnabled(""))
}

func TestShardKeyAndPartition(t *testing.T) {
	a := Shard{Slots: []Range{{0, 99}, {200, 200}}, Nodes: []Node{
		{Addr: "r1", Role: RoleReplica, Health: "failed"}, {Addr: "m", Role: RoleMaster, Health: HealthOK}, {Addr: "r2", Role: RoleReplica, Health: HealthOK}}}
	b := Shard{Slots: []Range{{100, 199}}}
	assert.Equal(t, "0-99,200", a.Key())
	m, ok := a.Master()
	assert.True(t, ok)
	assert.Equal(t, "m", m.Addr)
	assert.Equal(t, []string{"r2", "r1"}, []string{a.Replicas()[0].Addr, a.Replicas()[1].Addr})
	top := Topology{Shards: []Shard{a, b}}
	assert.Equal(t, "0-99,200 100-199", top.Partition())
	got, ok := top.Shard("100-199")
	assert.True(t, ok)
	assert.Equal(t, b.Slots, got.Slots)
	_, ok = top.Shard("1-2")
	assert.False(t, ok)
}

func FuzzParseEnabled(f *testing.F) {
	f.Add("# Cluster\r\ncluster_enabled:1\r\n")
	f.Add("cluster_enabled:")
	f.Fuzz(func(t *testing.T, s string) { _ = ParseEnabled(s) })
}

func FuzzKeySlot(f *testing.F) {
	f.Add([]byte("{user1000}.following"))
	f.Add([]byte("{}"))
	f.Add([]byte("a{b"))
	f.Fuzz(func(t *testing.T, k []byte) {
		if s := KeySlot(k); s < 0 || s >= Slots {
			t.Fatalf("slot %d out of range", s)
		}
	})
}
