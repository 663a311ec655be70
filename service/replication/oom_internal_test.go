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

// The wait after an OOM blamed on the clients ends once their buffers are
// back within the sixteenth the data left free, even if the whole is not
// that far under maxmemory.
func TestClientsFreedOnceTheirBuffersFitTheRoomLeft(t *testing.T) {
	const mib = 1 << 20
	assert.False(t, memoryUse{used: 120 * mib, clients: 100 * mib, limit: 100 * mib}.clientsFreed())
	assert.True(t, memoryUse{used: 96 * mib, clients: 2 * mib, limit: 100 * mib}.clientsFreed(), "data at the edge, clients small")
	assert.True(t, memoryUse{used: 50 * mib, clients: 20 * mib, limit: 100 * mib}.clientsFreed())
}

func TestKeyspaceDBsListsTheDatabasesWithKeys(t *testing.T) {
	info := "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb9:keys=0,expires=0,avg_ttl=0\r\ndb16:keys=1,expires=0,avg_ttl=0\r\n"
	assert.Equal(t, map[int]bool{0: true, 16: true}, keyspaceDBs(info))
	assert.True(t, holdsData(info))
	assert.False(t, holdsData("# Keyspace\r\ndb16:keys=1,expires=0,avg_ttl=0\r\n"), "checkpoints only")
}
