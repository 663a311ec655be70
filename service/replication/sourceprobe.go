package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// A question to the source on a second connection (INFO replication)
// tells a frozen source or link from a source with nothing to say: both
// leave the stream's reader waiting, and a source sends a ping only every
// repl-ping-replica-period (10 s by default), so without it the status
// said in-sync, with a lag of 0, for the whole silence limit (15 s) while
// the source may have taken writes that never arrived.
const (
	// probeEvery is how often the source is asked.
	probeEvery = 2 * time.Second
	// probeTimeout bounds one question: a source that does not answer it,
	// over a link that brings nothing of its stream either, is frozen, or
	// the link is (the same path holds both back).
	probeTimeout = 5 * time.Second
)

// errUnanswered: the source did not answer within probeTimeout.
var errUnanswered = errors.New("no answer in time")

// sourceProber asks a source a question every probeEvery until its
// context ends or the source will not answer it (a user that may not run
// INFO): the session then goes on with the silence limit alone.
type sourceProber struct {
	mu sync.Mutex
	// unanswered is when the question that timed out, with none answered
	// since, was asked; zero while the source answers.
	unanswered time.Time
}

func (p *sourceProber) unansweredSince() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unanswered
}

func (p *sourceProber) run(ctx context.Context, u redisurl.Source, tlsCfg *tls.Config, log func(msg string, args ...any)) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := time.Now()
		refused, err := askSource(ctx, u, tlsCfg)
		if refused {
			log("the source does not answer INFO replication; its status relies on its pings", "reason", err)
			return
		}
		var ne net.Error
		switch {
		case err == nil:
			p.mu.Lock()
			p.unanswered = time.Time{}
			p.mu.Unlock()
		case (errors.Is(err, errUnanswered) || errors.As(err, &ne) && ne.Timeout()) && ctx.Err() == nil:
			p.mu.Lock()
			if p.unanswered.IsZero() {
				p.unanswered = asked
			}
			p.mu.Unlock()
		}
		// Other failures (refused, reset) end the session's stream too,
		// whose error says what happened.
	}
}

// askSource logs in to the source and asks INFO replication, which a
// replication endpoint of this service answers too. refused says the source
// answered with an error (no permission, wrong password): asking again
// would get the same answer.
func askSource(ctx context.Context, u redisurl.Source, tlsCfg *tls.Config) (refused bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	defer func() {
		// However the wait ended (the deadline, or the close at it).
		if err != nil && !refused && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", errUnanswered, err)
		}
	}()
	v, err := askSourceOnce(ctx, u, tlsCfg, "INFO", "replication")
	if errors.Is(err, errAuthRefused) {
		// The session's own AUTH says so in its status.
		return true, err
	}
	if err != nil {
		return false, err
	}
	if v.IsError() {
		return true, fmt.Errorf("INFO replication: %s", v.Str)
	}
	return false, nil
}
