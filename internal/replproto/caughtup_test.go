package replproto

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A reader waiting for the rest of a command (a value of 1 MiB arriving in
// two halves, the second late) has not caught up with its source: the
// command is not received, and "in-sync with lag 0" would be a lie. Once
// the command is whole and the reader waits for the next one, it has.
func TestCaughtUpOnlyBetweenCommands(t *testing.T) {
	f, c := newFakePair(t, Options{})
	whole := cmd("SET", "big", strings.Repeat("v", 1<<20))
	half := len(whole) / 2
	halfSent, rest := make(chan struct{}), make(chan struct{})
	letRest := sync.OnceFunc(func() { close(rest) })
	t.Cleanup(letRest) // runs before newFakePair's, which waits for the script
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "501"}, "+CONTINUE\r\n")
		f.send(cmd("SET", "a", "1"))
		f.send(whole[:half])
		close(halfSent)
		<-rest
		f.send(whole[half:])
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	since := time.Now()
	first, err := c.ReadCommand(ctx)
	require.NoError(t, err)
	require.Equal(t, "SET a 1", argsString(first.Args))

	read := make(chan Command, 1)
	go func() {
		got, err := c.ReadCommand(ctx)
		if !assert.NoError(t, err) {
			read <- Command{Args: [][]byte{nil}}
			return
		}
		read <- Command{Args: [][]byte{append([]byte(nil), got.Args[0]...)}, Offset: got.Offset}
	}()
	<-halfSent
	// The reader now waits for the second half: soon (a wait counts once
	// it lasts a millisecond), and for a while, it has not caught up.
	waitFor(t, "not caught up while the command is half received", func() bool { return !c.CaughtUp(since, time.Now()) })
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		require.False(t, c.CaughtUp(since, time.Now()), "caught up in the middle of a command")
		time.Sleep(time.Millisecond)
	}
	letRest()
	got := <-read
	assert.Equal(t, "SET", string(got.Args[0]))

	go func() { _, _ = c.ReadCommand(ctx) }() // waits for the next command
	deadline := time.Now().Add(10 * time.Second)
	for !c.CaughtUp(since, time.Now()) {
		require.True(t, time.Now().Before(deadline), "never caught up while waiting between commands")
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		require.True(t, time.Now().Before(deadline), what)
	}
}
