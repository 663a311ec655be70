package databases

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func TestStatusFollowsWhatTheWatcherSaw(t *testing.T) {
	now := time.Now()
	p := &process{}
	st := func() string { s, _ := p.status(now); return s }
	assert.Equal(t, api.StatusPending, st(), "no child")

	p.running, p.pid = true, 42
	assert.Equal(t, api.StatusPending, st(), "a child that has not answered")

	p.health = health{pid: 42, answered: now, loading: true, loadedPerc: 37.5}
	s, perc := p.status(now)
	assert.Equal(t, api.StatusLoading, s)
	assert.InDelta(t, 37.5, perc, 0.001)

	p.health = health{pid: 42, answered: now}
	assert.Equal(t, api.StatusPending, st(), "loaded, settings not applied yet")

	p.markReady(42)
	assert.Equal(t, api.StatusActive, st())

	p.health.answered = now.Add(-unresponsiveAfter - time.Second)
	assert.Equal(t, api.StatusPending, st(), "silent for too long: not active")

	p.health = health{pid: 41, answered: now, ready: true}
	assert.Equal(t, api.StatusPending, st(), "what a previous child said is not about this one")

	p.running, p.pid, p.restarts = false, 0, 6
	assert.Equal(t, api.StatusFailed, st(), "restarted again and again")
}

func TestInfoFields(t *testing.T) {
	f := infoFields("# Server\r\nprocess_id:42\r\n# Persistence\r\nloading:1\r\nloading_loaded_perc:12.50\r\n")
	assert.Equal(t, "42", f["process_id"])
	assert.Equal(t, "1", f["loading"])
	assert.Equal(t, "12.50", f["loading_loaded_perc"])
}
