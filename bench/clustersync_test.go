package bench

import (
	"testing"

	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/stretchr/testify/assert"
)

func TestSlotFilter(t *testing.T) {
	// Every key of the dataset goes to exactly one of three filters.
	const keys = 2000
	seen := map[string]int{}
	for shard := range 3 {
		g := slotFilter(mixedGen(0, keys), func(slot int) bool { return slot*3/cluster.Slots == shard })
		var buf []byte
		for {
			var n int
			before := len(buf)
			buf, n = g(buf)
			if n == 0 {
				break
			}
			k, ok := firstKey(buf[before:])
			assert.True(t, ok)
			assert.Equal(t, shard, cluster.KeySlot(k)*3/cluster.Slots)
			seen[string(k)]++
		}
	}
	assert.Len(t, seen, keys)
	for k, n := range seen {
		assert.Equal(t, 1, n, k)
	}
}

func TestFirstKey(t *testing.T) {
	k, ok := firstKey(appendCmd(nil, []byte("SET"), []byte("user:{1}"), []byte("v")))
	assert.True(t, ok)
	assert.Equal(t, "user:{1}", string(k))
	for _, bad := range []string{"", "*1\r\n$3\r\nGET\r\n", "*2\r\n$3\r\nGET\r\n$9\r\nshort\r\n", "+OK\r\n"} {
		_, ok := firstKey([]byte(bad))
		assert.False(t, ok, "%q", bad)
	}
}
