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

// An EXEC that Redis refuses itself out of memory (the queued commands'
// arguments took the server over maxmemory after the last was queued) is
// an OOM, not a slot move or a failed command: Redis 7 answers it
// "EXECABORT Transaction discarded because of: OOM ...".
func TestOOMReplyTakesAnEXECRefusedOutOfMemory(t *testing.T) {
	oom := "OOM command not allowed when used memory > 'maxmemory'."
	for msg, want := range map[string]string{
		oom: oom,
		"EXECABORT Transaction discarded because of: " + oom: oom,
	} {
		got, ok := oomReply([]byte(msg))
		assert.True(t, ok, msg)
		assert.Equal(t, want, string(got), msg)
	}
	for _, msg := range []string{
		"EXECABORT Transaction discarded because of previous errors.",
		"EXECABORT Transaction discarded because of: MASTERDOWN Link with MASTER is down",
		"MOVED 3999 127.0.0.1:6381",
		"ERR something about OOM",
	} {
		_, ok := oomReply([]byte(msg))
		assert.False(t, ok, msg)
	}
}
