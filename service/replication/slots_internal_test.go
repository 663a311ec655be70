package replication

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A shard's slots as cluster.Shard.Key writes them, and nothing else.
func TestParseSlots(t *testing.T) {
	s, err := parseSlots("0-99,200-300,7000,16383")
	require.NoError(t, err)
	for slot, want := range map[int]bool{0: true, 99: true, 100: false, 199: false, 200: true, 300: true, 301: false, 6999: false, 7000: true, 7001: false, 16383: true} {
		assert.Equal(t, want, s.has(slot), "slot %d", slot)
	}
	for _, bad := range []string{"", "a-b", "5-1", "-1", "0-16384", "1,,2", "1-2-3"} {
		_, err := parseSlots(bad)
		assert.Error(t, err, "%q", bad)
	}
}
