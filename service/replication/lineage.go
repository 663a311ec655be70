package replication

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/replicad/terraform-provider-redis/internal/replproto"
)

// A database's lineage is itself and every database it replicates from,
// directly or through others, across instances: each syncer asks its
// source for the source's lineage (replproto.LineageCommand), and the
// instance's replication endpoint answers for a destination with its own
// identity and what its syncers learned. A destination found in its
// source's lineage would close a cycle (A in one instance a Replica Of B
// in another, B a Replica Of A): each load on one side makes the other's
// source resync in full, and the two reload each other for ever, with a
// status that blames the source's buffers. The API refuses cycles within
// an instance; this finds the ones through other instances, at the
// latest one round after both links exist.

// newInstanceID is an identity for a Manager whose Config names none.
func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// identity names database uid of this instance in lineages.
func (m *Manager) identity(uid int) string {
	return m.cfg.InstanceID + "/" + strconv.Itoa(uid)
}

// Lineage is the lineage of database uid, the answer of its replication
// endpoint to replproto.LineageCommand: its identity first, then what its
// syncers learned from their sources (at most replproto.MaxLineage in all).
func (m *Manager) Lineage(uid int) []string {
	self := m.identity(uid)
	out := []string{self}
	m.lineageMu.Lock()
	defer m.lineageMu.Unlock()
	learned := m.learned[uid]
	keys := make([]string, 0, len(learned))
	for k := range learned {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, id := range learned[k] {
			if len(out) == replproto.MaxLineage {
				return out
			}
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// learnLineage records the lineage that source (a checkpoint key) of
// destination uid answered.
func (m *Manager) learnLineage(uid int, source string, lineage []string) {
	m.lineageMu.Lock()
	defer m.lineageMu.Unlock()
	if m.learned == nil {
		m.learned = map[int]map[string][]string{}
	}
	if m.learned[uid] == nil {
		m.learned[uid] = map[string][]string{}
	}
	m.learned[uid][source] = lineage
}

// unlearnLineage drops what source (a checkpoint key) of destination uid
// answered.
func (m *Manager) unlearnLineage(uid int, source string) {
	m.lineageMu.Lock()
	defer m.lineageMu.Unlock()
	delete(m.learned[uid], source)
}

// forgetLineage drops what the syncers of destination uid learned: its
// sources changed, or it is no longer a destination.
func (m *Manager) forgetLineage(uid int) {
	m.lineageMu.Lock()
	defer m.lineageMu.Unlock()
	delete(m.learned, uid)
}

// checkLineage is told the lineage a source of d answered (nil: unknown,
// a plain redis-server) and refuses the source when d is in it.
func (d *destination) checkLineage(key string, s *syncer, lineage []string) error {
	if slices.Contains(lineage, d.m.identity(d.db.UID)) {
		// What an earlier session learned from this source no longer
		// holds: the other end of the cycle must not find itself in
		// this database's lineage through it, or both ends would refuse.
		d.m.unlearnLineage(d.db.UID, key)
		// Retried with backoff, not fatal: a handshake costs little, and
		// the lineage a source gave may be a moment old (a link of the
		// cycle just removed): the sync starts once the cycle is gone.
		return fmt.Errorf("replication cycle: source %s replicates from this database, directly or through other databases (in this instance or another); each full load here would make it load again, for ever: remove one of the links", s.url.String())
	}
	if lineage != nil {
		d.m.learnLineage(d.db.UID, key, lineage)
	}
	return nil
}
