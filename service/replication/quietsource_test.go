package replication_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// replOffset is the master_repl_offset of c's server.
func replOffset(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_repl_offset:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO replication has no master_repl_offset")
}

// waitPing polls until c's server has moved its offset past from: with no
// writes, that is its replication ping.
func waitPing(t *testing.T, c *redis.Client, from int64) int64 {
	t.Helper()
	var off int64
	redistest.Eventually(t, time.Minute, "the source's ping", func() (err error) {
		if off, err = replOffset(context.Background(), c); err == nil && off <= from {
			err = fmt.Errorf("offset %d", off)
		}
		return err
	})
	return off
}

// A quiet source blocked for seconds (DEBUG SLEEP, in naps shorter than the
// probe's deadline) sends its next replication ping late: more than the
// silence limit (15 s) after the last. It answers the probe before and
// after each nap, at the offset the destination has received: nothing is
// pending and it is not frozen, so it reads in sync throughout. It read
// out of sync "frozen" for the seconds past the limit. A freeze (SIGSTOP)
// afterwards is still out of sync within the probe's bound.
func TestASourceBlockedForSecondsStaysInSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-quiet", "--enable-debug-command", "yes")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	sc := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: src.Password, ReadTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { sc.Close() })
	ctx := context.Background()
	require.NoError(t, sc.Set(ctx, "before", "1", 0).Err())
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	off, err := replOffset(ctx, sc)
	require.NoError(t, err)
	off = waitPing(t, sc, off)
	pinged := time.Now()

	// Three naps of 4 s (the probe waits 5 s for an answer), each after a
	// question of the probe was answered: the source's cron, which sends
	// the ping, loses about 12 s.
	naps := make(chan error, 1)
	go func() {
		naps <- func() error {
			nc := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: src.Password, ReadTimeout: time.Minute, MaxRetries: -1})
			defer nc.Close()
			for n := 0; n < 3; n++ {
				from, err := nc.Info(ctx, "commandstats").Result()
				if err != nil {
					return err
				}
				for own := 1; ; own++ {
					now, err := nc.Info(ctx, "commandstats").Result()
					if err != nil {
						return err
					}
					if infoCalls(now)-infoCalls(from)-own >= 1 {
						break
					}
					time.Sleep(20 * time.Millisecond) // polling the probe's next question
				}
				if err := nc.Do(ctx, "DEBUG", "SLEEP", "4").Err(); err != nil {
					return fmt.Errorf("DEBUG SLEEP: %w", err)
				}
			}
			return nil
		}()
	}()
	var (
		napsDone  bool
		nextPing  time.Time
		violation string
	)
	deadline := time.Now().Add(90 * time.Second)
	for nextPing.IsZero() {
		require.True(t, time.Now().Before(deadline), "the source's next ping never came")
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceInSync && violation == "" {
			violation = fmt.Sprintf("%s after the ping: %+v", time.Since(pinged).Round(100*time.Millisecond), s)
		}
		if !napsDone {
			select {
			case err := <-naps:
				require.NoError(t, err)
				napsDone = true
			default:
			}
		} else if o, err := replOffset(ctx, sc); err == nil && o > off {
			nextPing = time.Now()
		}
		time.Sleep(100 * time.Millisecond) // the status's polling period
	}
	gap := nextPing.Sub(pinged)
	t.Logf("the source's pings came %s apart", gap.Round(100*time.Millisecond))
	require.Greater(t, gap, 16*time.Second, "the naps pushed the ping past the silence limit (15 s): the case this test is about")
	assert.Empty(t, violation, "a quiet source blocked for a while is in sync throughout")

	require.NoError(t, sc.Set(ctx, "after", "1", 0).Err())
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	waitQuestions(t, sc, 1, time.Minute)
	thaw := freeze(t, src.PID())
	frozen := time.Now()
	redistest.Eventually(t, time.Minute, "the frozen source is out of sync", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	took := time.Since(frozen)
	t.Logf("out of sync %s after the source froze", took.Round(100*time.Millisecond))
	assert.Less(t, took, 10*time.Second, "a frozen source is noticed by the probe (a question unanswered for 5 s, asked every 2 s)")
	thaw()
	a.waitInSync(dst.UID, time.Minute)
}

// infoCalls is cmdstat_info's calls in an INFO commandstats answer.
func infoCalls(info string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_info:calls="); ok {
			v, _, _ = strings.Cut(v, ",")
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// A link that holds the replication stream while the source answers the
// probe (the probe's connection passes) is out of sync within the silence
// limit and a ping period: the source's pings go into its stream, so its
// offset moves past what the destination received, and the answered probe
// does not make the silence look quiet. It recovers once the link does.
func TestAHeldStreamIsOutOfSyncWhileTheProbeAnswers(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-held")
	proxy := redistest.StartProxy(t, src.Addr())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-held@" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)
	sc := src.Client()
	ctx := context.Background()
	require.NoError(t, sc.Set(ctx, "before", "1", 0).Err())
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	proxy.StallStreams()
	held := time.Now()
	var s api.ReplicaSourceStatus
	redistest.Eventually(t, time.Minute, "the held stream is out of sync", func() error {
		s = a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	took := time.Since(held)
	t.Logf("out of sync %s after the stream was held: %s", took.Round(100*time.Millisecond), s.LastError)
	assert.Less(t, took, 20*time.Second, "the silence limit (15 s), or a ping (10 s) and a probe period (2 s), with margin")
	assert.Contains(t, s.LastError, "nothing received from the source")
	// The probe was answered meanwhile: this is the held link, not a
	// frozen source.
	waitQuestions(t, sc, 2, time.Minute)
	assert.Equal(t, api.SourceOutOfSync, a.get(dst.UID).ReplicaSources[0].Status, "still held")

	proxy.Unstall()
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, sc.Set(ctx, "after", "1", 0).Err())
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	assert.Empty(t, a.get(dst.UID).ReplicaSources[0].LastError)
}
