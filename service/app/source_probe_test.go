package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// silentSource accepts connections and never answers, as a source behind
// a black hole does: each probe of it waits for its whole timeout.
type silentSource struct {
	ln net.Listener
	*connCount
}

// connCount counts the connections to one or more silentSources: how many
// were accepted, and the most open at once.
type connCount struct {
	mu                   sync.Mutex
	accepted, open, most int
}

func newSilentSource(t *testing.T) *silentSource { return newSilentSourceCounted(t, &connCount{}) }

func newSilentSourceCounted(t *testing.T, count *connCount) *silentSource {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &silentSource{ln: ln, connCount: count}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.open++
			s.most = max(s.most, s.open)
			s.mu.Unlock()
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn) // until the prober hangs up
				s.mu.Lock()
				s.open--
				s.mu.Unlock()
			}()
		}
	}()
	return s
}

func (s *silentSource) uri() string { return "redis://" + s.ln.Addr().String() }

func (s *connCount) counts() (accepted, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.most
}

// Replica sources that are refused whatever they answer (too many, a
// compression level out of range, one listed twice, encryption without a
// certificate) are refused before any source is asked whether it can
// compress: each question to a source that does not answer takes seconds,
// and a body of thousands of sources held the request for hours.
func TestInvalidReplicaSourcesAreRefusedWithoutAskingAnySource(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dest", MemorySize: 16 << 20})
	silent := newSilentSource(t)
	other := newSilentSource(t)

	many := make([]api.ReplicaSource, api.MaxReplicaSources+1)
	for k := range many {
		many[k] = api.ReplicaSource{URI: silent.uri(), Compression: 1}
	}
	for _, c := range []struct {
		what    string
		sources []api.ReplicaSource
		says    string
	}{
		{"too many", many, fmt.Sprintf("at most %d replica sources", api.MaxReplicaSources)},
		{"a level out of range", []api.ReplicaSource{{URI: silent.uri(), Compression: 99}}, "compression 99 is out of range"},
		{"a negative level", []api.ReplicaSource{{URI: silent.uri(), Compression: -1}}, "compression -1 is out of range"},
		{"one listed twice", []api.ReplicaSource{{URI: silent.uri(), Compression: 1}, {URI: silent.uri(), Compression: 2}}, "is listed twice"},
		{"encryption without server_cert", []api.ReplicaSource{{URI: silent.uri(), Compression: 1, Encryption: true}}, "encryption needs server_cert"},
		{"a bad read_from", []api.ReplicaSource{{URI: silent.uri(), Compression: 1, ReadFrom: "nearest"}, {URI: other.uri(), Compression: 1}}, "read_from \"nearest\" is invalid"},
	} {
		code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "refused", MemorySize: 16 << 20, ReplicaSources: c.sources}, nil)
		assert.Equal(t, http.StatusBadRequest, code, "create, %s: %v", c.what, e)
		assert.Contains(t, e.Description, c.says, "create, %s", c.what)
		sources := c.sources
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
		assert.Equal(t, http.StatusBadRequest, code, "update, %s: %v", c.what, e)
		assert.Contains(t, e.Description, c.says, "update, %s", c.what)
	}
	accepted, _ := silent.counts()
	assert.Zero(t, accepted, "a source was asked about compression for a request refused anyway")
	accepted, _ = other.counts()
	assert.Zero(t, accepted, "a source was asked about compression for a request refused anyway")
}

// The sources of one request are asked whether they can compress side by
// side, not one after the other: with 32 sources that do not answer, the
// request took 32 times the question's timeout (over a minute and a half),
// past the timeouts of clients and proxies.
func TestSourcesAreAskedAboutCompressionSideBySide(t *testing.T) {
	i := servicetest.Start(t)
	count := &connCount{}
	var sources []api.ReplicaSource
	for range 4 {
		sources = append(sources, api.ReplicaSource{URI: newSilentSourceCounted(t, count).uri(), Compression: 1})
	}
	// Paused: no syncer connects to the sources, only the questions.
	var db api.Database
	code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "dest", MemorySize: 16 << 20,
		ReplicaSources: sources, ReplicaSync: api.SyncPaused}, &db)
	require.Equal(t, http.StatusOK, code, "sources that cannot be asked now are accepted: %v", e)
	accepted, most := count.counts()
	require.Equal(t, len(sources), accepted, "each source was asked once")
	assert.Equal(t, len(sources), most, "the sources were asked one after the other, not side by side")
}

// An update whose client stops waiting while a new source is asked
// whether it can compress ends as it would have with the client there:
// the source says it cannot (an open-source Redis), and the update is
// refused, not made. The question ended with the request, and the update,
// taking the source for one that could not be asked, was recorded with a
// compression the source refuses.
func TestAnUpdateWhoseClientLeavesDuringTheCompressionQuestionEndsTheSame(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dest", MemorySize: 16 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	asked, hungUp, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		if _, err := conn.Read(buf); err != nil {
			return
		}
		close(asked)
		go func() {
			// The prober hanging up before the answer ends this read.
			if _, err := conn.Read(buf); err != nil {
				close(hungUp)
			}
		}()
		<-release
		_, _ = conn.Write([]byte("-ERR unknown command 'REPLICAD.COMPRESS', with args beginning with: '3' \r\n"))
	}()

	sources := []api.ReplicaSource{{URI: "redis://" + ln.Addr().String(), Compression: 3}}
	body, err := json.Marshal(api.UpdateDatabaseRequest{ReplicaSources: &sources})
	require.NoError(t, err)
	reqCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, "PUT", fmt.Sprintf("%s/v1/bdbs/%d", i.URL, db.UID), bytes.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(i.Username, i.Password)
	mark := i.LogMark()
	answered := make(chan error, 1)
	go func() {
		resp, err := i.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case <-asked:
	case <-time.After(time.Minute):
		t.Fatal("the source was never asked whether it can compress")
	}
	cancel()
	select {
	case err := <-answered:
		require.Error(t, err, "the client gave up before the answer")
	case <-time.After(time.Minute):
		t.Fatal("the client's request did not end when it was cancelled")
	}
	// The service has seen the client go: it carries the update through,
	// or (before) hung up on the source.
	eventually(t, time.Minute, "the service sees the client gone", func() error {
		select {
		case <-hungUp:
			return nil
		default:
		}
		if strings.Contains(i.LogsSince(mark), "stopped waiting") {
			return nil
		}
		return fmt.Errorf("not yet")
	})
	close(release)
	eventually(t, time.Minute, "the update ends", func() error {
		logs := i.LogsSince(mark)
		if strings.Contains(logs, "database updated") || strings.Contains(logs, "ended with an error") {
			return nil
		}
		return fmt.Errorf("not yet")
	})
	got := getDB(t, i, db.UID)
	assert.Empty(t, got.ReplicaSources, "the update the source refuses was made")
	assert.Contains(t, i.LogsSince(mark), "this source cannot compress", "the log says why the update was refused")
}
