package monotime

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAStampReadBackKeepsTheMonotonicClock(t *testing.T) {
	now := time.Now()
	s := Stamp(now)
	assert.NotZero(t, s)
	back := Time(s)
	assert.Equal(t, time.Duration(0), back.Sub(now))
	// time.Time's String shows its monotonic reading as "m=±…": a time
	// without one compares wall clocks, which a step of the host's clock
	// moves.
	assert.True(t, strings.Contains(back.String(), " m="), "monotonic reading kept: %s", back)
	later := time.Now()
	assert.GreaterOrEqual(t, Stamp(later), s)
	assert.Equal(t, later.Sub(now), Time(Stamp(later)).Sub(back))
}

func TestTheZeroStampIsTheZeroTime(t *testing.T) {
	assert.True(t, Time(0).IsZero())
}
