package replication

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// Commands that waited in their batch for the end of a big command
// arriving slowly (41 s, here) are handed to the writer together with it:
// the lag counts from their receipt, but the watchdog's clock, which says
// whether the writer is stuck, starts when the writer gets them. It used
// to start at their receipt, so the watchdog restarted the syncer as soon
// as the big command arrived.
func TestTheStallClockStartsWhenTheWriterIsGivenCommands(t *testing.T) {
	now := time.Now()
	st := sourceStatus{applied: 100, received: 100, lastProgress: now.Add(-time.Minute)}
	st.handOverLocked(now.Add(-41*time.Second), 200, now)
	assert.Equal(t, now, st.stallSinceLocked())
	assert.Equal(t, 41*time.Second, st.lagLocked(now), "the lag counts from receipt")
	assert.Equal(t, int64(200), st.received)

	// More commands handed over while some are pending do not restart the
	// clock: the writer has had work since then.
	later := now.Add(10 * time.Second)
	st.handOverLocked(later, 300, later)
	assert.Equal(t, now, st.stallSinceLocked())

	// A send answered restarts it.
	st.lastProgress = later.Add(time.Second)
	assert.Equal(t, later.Add(time.Second), st.stallSinceLocked())
}

// A writer that waited for the master link behind another source's
// transaction, then got it: its stall clock starts then, plus the
// allowance of the holder's EXEC, which the destination runs before the
// writer's batch (the holder lets go once the EXEC is written). It was left
// at the wait's start, so the watchdog restarted the writer as stuck as
// soon as it had the link.
func TestTheStallClockStartsWhenTheLinkIsFree(t *testing.T) {
	began := time.Now().Add(-time.Minute)
	s := &syncer{status: &sourceStatus{applied: 100, received: 200, pendingSince: began, handedAt: began}}
	s.linkWait(func() (string, time.Time) { return "a:6379", began })
	assert.Equal(t, writerWaitingLink, s.status.writerAt)
	before := time.Now()
	s.linkGot(600000)
	assert.Equal(t, writerSending, s.status.writerAt)
	assert.Nil(t, s.status.linkHeldBy)
	since := s.status.stallSinceLocked()
	assert.False(t, since.Before(before.Add(600000*execAllowance)), "the clock starts after the holder's EXEC: %s", since)
}

// A shard's errors name the node it is read from beside its source's URL,
// which names any node of the cluster; the URL's password stays hidden.
func TestErrorsNameTheNodeReadFrom(t *testing.T) {
	u, err := redisurl.Parse("redis://:secret-pw@10.0.0.1:7000")
	require.NoError(t, err)
	s := &syncer{url: u}
	assert.Equal(t, "redis://:xxxxx@10.0.0.1:7000", s.from())
	s.node = "10.0.0.1:7000"
	assert.Equal(t, "redis://:xxxxx@10.0.0.1:7000", s.from())
	s.node = "10.0.0.2:7001"
	assert.Equal(t, "redis://:xxxxx@10.0.0.1:7000 (node 10.0.0.2:7001)", s.from())
	assert.NotContains(t, s.from(), "secret-pw")
}

func TestRetryLogWarnsOfTheSameFailureOnceAMinute(t *testing.T) {
	var r retryLog
	at := time.Unix(1000, 0)
	warn := func(err string, after time.Duration) (int, bool) { at = at.Add(after); return r.warn(err, at) }
	n, ok := warn("refused", 0)
	assert.True(t, ok, "a new failure is a warning")
	assert.Zero(t, n)
	for range 5 {
		_, ok = warn("refused", 10*time.Second)
		assert.False(t, ok, "the same failure within a minute is not")
	}
	n, ok = warn("refused", 10*time.Second)
	assert.True(t, ok, "the same failure a minute after its warning is")
	assert.Equal(t, 5, n, "with the retries it stands for")
	n, ok = warn("timeout", time.Second)
	assert.True(t, ok, "another failure is a warning at once")
	assert.Zero(t, n)
}

func TestRetryLogTakesCutsOfTwoConnectionsForTheSameFailure(t *testing.T) {
	var r retryLog
	at := time.Unix(1000, 0)
	_, ok := r.warn("read tcp 127.0.0.1:41392->127.0.0.1:6379: read: connection reset by peer", at)
	assert.True(t, ok)
	_, ok = r.warn("read tcp 127.0.0.1:41408->127.0.0.1:6379: read: connection reset by peer", at.Add(time.Second))
	assert.False(t, ok, "the same cut of the next connection, from another local port, is the same failure")
	_, ok = r.warn("read tcp [::1]:41410->[::1]:6379: read: connection reset by peer", at.Add(2*time.Second))
	assert.True(t, ok, "a cut of a link to another address is another failure")
	_, ok = r.warn("read tcp 127.0.0.1:41500->127.0.0.1:6380: read: connection reset by peer", at.Add(3*time.Second))
	assert.True(t, ok, "a cut of a link to another node is another failure")
	assert.Equal(t, "read tcp ->[::1]:6379: x", withoutLocalPorts("read tcp [::1]:41410->[::1]:6379: x"))
}
