// Package monotime turns instants into int64 stamps that keep Go's
// monotonic clock, for atomics that record when something began.
//
// A stamp from time.Time.UnixNano is wall-clock time: when the host's clock
// is stepped (NTP correcting a virtual machine's clock, an operator's date
// command), the age computed from it jumps by the step, and a watchdog that
// cuts a link silent for longer than its timeout cuts one that is not.
// Stamps here count from an instant taken when the process started, on the
// monotonic clock, which steps do not move.
package monotime

import "time"

// epoch is read, never written, after the package's initialisation.
var epoch = time.Now()

// Stamp is t as an int64, never 0 (which callers keep for "none"). t should
// come from time.Now (it then carries a monotonic reading); a time without
// one falls back to the wall clock, as time.Time.Sub does.
func Stamp(t time.Time) int64 {
	return int64(t.Sub(epoch)) + 1
}

// Time is the instant of a stamp, with its monotonic reading, so that
// time.Since and Sub with another time.Now compare monotonic clocks. A zero
// stamp is the zero Time.
func Time(stamp int64) time.Time {
	if stamp == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(stamp - 1))
}
