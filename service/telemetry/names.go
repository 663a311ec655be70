// Package telemetry makes the service's metrics and logs fit the Prometheus
// and structured-logging conventions operators use: status series read at
// scrape time, database names beside uids on every series and log line, and
// the instance's build and certificates.
package telemetry

import (
	"strconv"
	"sync"
)

// Names maps database uids to their current names, so that metrics and logs
// can carry the name of a database that code elsewhere knows by uid only.
// The app keeps it up to date from the API's answers; a uid it does not know
// yet (a database being created) is looked up with Load.
type Names struct {
	// Load reads the name of uid from where databases are stored; nil for
	// none. It must not log.
	Load func(uid int) (string, bool)

	mu    sync.RWMutex
	names map[int]string
}

// NewNames returns an empty map that loads what it misses with load.
func NewNames(load func(uid int) (string, bool)) *Names {
	return &Names{names: map[int]string{}, Load: load}
}

// Set records the name of uid.
func (n *Names) Set(uid int, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[uid] = name
}

// Delete forgets uid.
func (n *Names) Delete(uid int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.names, uid)
}

// Get returns the name of uid.
func (n *Names) Get(uid int) (string, bool) {
	n.mu.RLock()
	name, ok := n.names[uid]
	n.mu.RUnlock()
	if ok || n.Load == nil {
		return name, ok
	}
	if name, ok = n.Load(uid); ok {
		n.Set(uid, name)
	}
	return name, ok
}

// lookup reads a uid given as a label value or log attribute.
func (n *Names) lookup(s string) (string, bool) {
	uid, err := strconv.Atoi(s)
	if err != nil {
		return "", false
	}
	return n.Get(uid)
}
