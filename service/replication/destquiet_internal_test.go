package replication

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A session whose destination does not answer says so, with how long it
// has waited, replacing what the session before ended with; once the
// destination answers, the note is taken back, unless something else was
// told meanwhile.
func TestASessionWaitingForItsDestinationSaysSo(t *testing.T) {
	s := &syncer{status: newSourceStatus(), stallTimeout: 50 * time.Millisecond}
	s.status.set(func(st *sourceStatus) { st.lastError = "the syncer is stuck: applied nothing for 5s" })
	answered := s.tellDestinationQuiet()
	lastError := func() string {
		s.status.mu.Lock()
		defer s.status.mu.Unlock()
		return s.status.lastError
	}
	require.Eventually(t, func() bool { return strings.Contains(lastError(), "has not answered for") }, 10*time.Second, 10*time.Millisecond)
	answered()
	assert.Empty(t, lastError())
	answered() // once only

	answered = s.tellDestinationQuiet()
	require.Eventually(t, func() bool { return strings.Contains(lastError(), "has not answered for") }, 10*time.Second, 10*time.Millisecond)
	s.status.set(func(st *sourceStatus) { st.lastError = "something else" })
	answered()
	assert.Equal(t, "something else", lastError())
}
