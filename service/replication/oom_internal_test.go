package replication

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// An OOM stops the sync only when the data itself leaves less than a
// sixteenth of maxmemory free; clients' buffers do not count.
func TestDataFitsLeavesOutClientBuffers(t *testing.T) {
	const mib = 1 << 20
	assert.True(t, memoryUse{used: 120 * mib, clients: 100 * mib, limit: 100 * mib}.dataFits(), "a flood of clients")
	assert.False(t, memoryUse{used: 99 * mib, clients: 1 * mib, limit: 100 * mib}.dataFits(), "the data")
	assert.True(t, memoryUse{used: 500 * mib}.dataFits(), "no maxmemory")
}
