package replication

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// probedSource is a source for the prober: it answers AUTH, CLIENT SETNAME
// and INFO, counts its connections and questions, and can be told how to
// answer INFO next.
type probedSource struct {
	ln net.Listener
	mu sync.Mutex
	// accepted counts connections; asked, INFO questions.
	accepted, asked int
	// answer is the next reply to INFO, raw; "" answers with a
	// replication section. hold keeps INFO unanswered while set.
	answer string
	hold   bool
	conns  []net.Conn
	// open counts the connections not closed yet by the prober.
	open int
}

func startProbedSource(t *testing.T) *probedSource {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &probedSource{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		s.kill()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *probedSource) serve(c net.Conn) {
	s.set(func(s *probedSource) { s.open++ })
	defer s.set(func(s *probedSource) { s.open-- })
	defer c.Close()
	rd := resp.NewReader(bufio.NewReader(c))
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return
		}
		switch strings.ToUpper(string(args[0])) {
		case "INFO":
			s.mu.Lock()
			s.asked++
			hold, answer := s.hold, s.answer
			s.mu.Unlock()
			if hold {
				continue // never answered: the next read of the prober times out
			}
			if answer == "" {
				body := "# Replication\r\nrole:master\r\nmaster_repl_offset:1\r\n"
				answer = fmt.Sprintf("$%d\r\n%s\r\n", len(body), body)
			}
			c.Write([]byte(answer))
		default:
			c.Write([]byte("+OK\r\n"))
		}
	}
}

func (s *probedSource) set(f func(s *probedSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *probedSource) counts() (accepted, asked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.asked
}

// kill closes every connection the source accepted (CLIENT KILL).
func (s *probedSource) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// startProber runs a prober against s, fast, until the test ends; it
// returns the prober and a channel closed when run returns, with what was
// logged.
func startProber(t *testing.T, s *probedSource) (*sourceProber, chan struct{}, *[]string) {
	p, done, logged, _ := startProberCancel(t, s)
	return p, done, logged
}

// startProberCancel is startProber that returns the end of the session too.
func startProberCancel(t *testing.T, s *probedSource) (*sourceProber, chan struct{}, *[]string, func()) {
	t.Helper()
	u, err := redisurl.Parse("redis://:pw@" + s.ln.Addr().String())
	require.NoError(t, err)
	p := &sourceProber{period: 20 * time.Millisecond, timeout: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var mu sync.Mutex
	var logged []string
	go func() {
		defer close(done)
		p.run(ctx, u, nil, func(msg string, args ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprint(append([]any{msg}, args...)...))
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p, done, &logged, func() { cancel(); <-done }
}

func waitAsked(t *testing.T, s *probedSource, n int) {
	t.Helper()
	_, from := s.counts()
	redistest.Eventually(t, 10*time.Second, fmt.Sprintf("%d more questions", n), func() error {
		if _, asked := s.counts(); asked < from+n {
			return fmt.Errorf("%d asked", asked-from)
		}
		return nil
	})
}

// The prober keeps one connection for as many questions as it asks; one
// that the source closes is replaced at the next question without a
// question going unanswered; a source that stops answering is unanswered
// since the question it held, and answered again once it answers. The
// connection is closed when the session ends.
func TestTheSourceProbeKeepsOneConnection(t *testing.T) {
	s := startProbedSource(t)
	p, _, _, end := startProberCancel(t, s)
	waitAsked(t, s, 50)
	accepted, _ := s.counts()
	assert.Equal(t, 1, accepted, "one connection for 50 questions")
	assert.Equal(t, 1, p.dialCount())
	assert.True(t, p.unansweredSince().IsZero())

	s.kill()
	waitAsked(t, s, 10)
	accepted, _ = s.counts()
	assert.Equal(t, 2, accepted, "a killed connection is dialled again, once")
	assert.True(t, p.unansweredSince().IsZero(), "a killed connection is no unanswered question")

	s.set(func(s *probedSource) { s.hold = true })
	held := time.Now()
	redistest.Eventually(t, 10*time.Second, "unanswered", func() error {
		if p.unansweredSince().IsZero() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	since := p.unansweredSince()
	assert.WithinDuration(t, held, since, 100*time.Millisecond, "since the first question held")
	s.set(func(s *probedSource) { s.hold = false })
	redistest.Eventually(t, 10*time.Second, "answered again", func() error {
		if !p.unansweredSince().IsZero() {
			return fmt.Errorf("unanswered since %s", since)
		}
		return nil
	})

	end()
	redistest.Eventually(t, 10*time.Second, "the connection closed with the session", func() error {
		open := 0
		s.set(func(s *probedSource) { open = s.open })
		if open != 0 {
			return fmt.Errorf("%d open", open)
		}
		return nil
	})
}

// Answers that are not a replication section count as answers: a proxy
// may lack the section, and a source busy with a script past
// busy-reply-threshold (BUSY) or loading its dataset (LOADING) answers,
// so it is not frozen. Before, BUSY ended the probe for the rest of the
// session, as if the user could not run INFO.
func TestTheSourceProbeTakesAnyAnswerButARefusal(t *testing.T) {
	s := startProbedSource(t)
	p, done, logged := startProber(t, s)
	for _, answer := range []string{"+OK\r\n", "$0\r\n\r\n", "$-1\r\n", ":1\r\n", "*0\r\n",
		"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
		"-LOADING Redis is loading the dataset in memory\r\n"} {
		s.set(func(s *probedSource) { s.answer = answer })
		waitAsked(t, s, 3)
		assert.True(t, p.unansweredSince().IsZero(), "%q", answer)
		select {
		case <-done:
			t.Fatalf("the probe ended on %q: %v", answer, *logged)
		default:
		}
	}
	accepted, _ := s.counts()
	assert.Equal(t, 1, accepted)
}

// A refusal (a user that may not run INFO, an unknown command, a reply that
// is not RESP) ends the probe for the session, logged once, and leaves no
// connection behind.
func TestTheSourceProbeStopsAtARefusal(t *testing.T) {
	for _, answer := range []string{
		"-NOPERM this user has no permissions to run the 'info' command\r\n",
		"-ERR unknown command 'INFO'\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
	} {
		s := startProbedSource(t)
		s.set(func(s *probedSource) { s.answer = answer })
		p, done, logged := startProber(t, s)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the probe goes on after %q", answer)
		}
		assert.Len(t, *logged, 1, "%q", answer)
		assert.True(t, p.unansweredSince().IsZero())
		accepted, asked := s.counts()
		assert.Equal(t, 1, accepted, "%q", answer)
		assert.Equal(t, 1, asked, "%q", answer)
	}
}

// The probe's answer makes a silence quiet only when it is fresh, in the
// stream's offset space (the same replication id) and not ahead of what
// the session received; anything unknown (a replica whose own master link
// is down: its offset stands still) falls back on the pings.
func TestTheProbesAnswerIsQuietOnlyInTheStreamsOffsetSpace(t *testing.T) {
	id := strings.Repeat("a", 40)
	rid, off := replicationPosition("# Replication\r\nrole:master\r\nmaster_replid:" + id + "\r\nmaster_repl_offset:140\r\n")
	require.Equal(t, id, rid)
	require.EqualValues(t, 140, off)
	_, off = replicationPosition("role:slave\r\nmaster_link_status:up\r\nmaster_replid:" + id + "\r\nmaster_repl_offset:140\r\n")
	require.EqualValues(t, 140, off, "a replica whose master link is up")
	for _, info := range []string{"", "# Replication\r\nrole:master\r\n", "master_replid:" + id + "\r\nmaster_repl_offset:x\r\n", "master_repl_offset:5\r\n",
		"role:slave\r\nmaster_link_status:down\r\nmaster_replid:" + id + "\r\nmaster_repl_offset:140\r\n"} {
		_, off := replicationPosition(info)
		require.EqualValues(t, -1, off, "%q", info)
	}
	now := time.Now()
	p := &sourceProber{}
	require.False(t, p.quietAt(now, 7*time.Second, id, 140), "no answer yet")
	p.answer = probeAnswer{at: now.Add(-time.Second), replID: id, offset: 140}
	require.True(t, p.quietAt(now, 7*time.Second, id, 140))
	require.True(t, p.quietAt(now, 7*time.Second, id, 154))
	require.False(t, p.quietAt(now, 7*time.Second, id, 126), "the source pinged past what arrived")
	require.False(t, p.quietAt(now, 7*time.Second, strings.Repeat("b", 40), 140), "another replication id")
	require.False(t, p.quietAt(now, 7*time.Second, "", 140))
	require.False(t, p.quietAt(now.Add(10*time.Second), 7*time.Second, id, 140), "stale")
	p.answer = probeAnswer{at: now, offset: -1}
	require.False(t, p.quietAt(now, 7*time.Second, "", 140), "no offset in the answer")
}
