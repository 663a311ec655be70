package replication

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of every syncer, labelled by destination
// uid and source address (never the URL: it may hold a password).
type metrics struct {
	bytesIn, commandsIn, commandsApplied *prometheus.CounterVec
	bytesApplied, wireIn                 *prometheus.CounterVec
	fullSyncs, partialSyncs, errors      *prometheus.CounterVec
	batches, stalls                      *prometheus.CounterVec
	appliedOffset, lag, stalled          *prometheus.GaugeVec
	shardInfo                            *prometheus.GaugeVec // cluster.go

	// sources are the source labels of each destination's series, so that
	// those of a removed source can be deleted (a Vec cannot list them).
	mu      sync.Mutex
	sources map[int]map[string]bool
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"destination", "source"}
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "replica", Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "replicad", Subsystem: "replica", Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	return &metrics{
		bytesIn:         counter("bytes_received_total", "Bytes received from the source: RDB payload and command stream."),
		commandsIn:      counter("commands_received_total", "Commands received on the source's command stream (a full load's keys are not commands: see load_bytes)."),
		commandsApplied: counter("commands_applied_total", "Commands applied to the destination."),
		bytesApplied:    counter("bytes_applied_total", "Bytes of commands (RESP) applied to the destination."),
		wireIn:          counter("wire_bytes_received_total", "Bytes received from the source as they crossed the network: compressed, with TLS framing."),
		fullSyncs:       counter("full_syncs_total", "Full synchronisations (RDB transfers) from the source."),
		partialSyncs:    counter("partial_syncs_total", "Partial resynchronisations (PSYNC continue) with the source."),
		errors:          counter("errors_total", "Errors of the replication link or of applying to the destination."),
		batches:         counter("batches_total", "Batches sent to the destination (on the stream, one MULTI/EXEC with its checkpoint each)."),
		appliedOffset:   gauge("applied_offset", "Replication offset of the source applied to the destination."),
		lag:             gauge("batch_lag_seconds", "Time from receiving the commands of the last applied batch to applying them."),
		stalls:          counter("stalls_total", "Times the watchdog found the syncer stuck (commands pending, nothing applied) and restarted it from its checkpoint."),
		stalled:         gauge("stalled", "1 while the watchdog holds the source out of sync (its last_error says why): the syncer is stuck, the source sends nothing, not even pings, the destination takes none of a full load, or a transaction of another source holds the writes back."),
		shardInfo:       newShardInfo(reg),
		sources:         map[int]map[string]bool{},
	}
}

// sourceMetrics are the series of one syncer.
type sourceMetrics struct {
	bytesIn, commandsIn, commandsApplied prometheus.Counter
	bytesApplied, wireIn                 prometheus.Counter
	fullSyncs, partialSyncs, errors      prometheus.Counter
	batches, stalls                      prometheus.Counter
	appliedOffset, lag, stalled          prometheus.Gauge
}

func (m *metrics) forSource(uid int, addr string) *sourceMetrics {
	l := prometheus.Labels{"destination": strconv.Itoa(uid), "source": addr}
	m.mu.Lock()
	if m.sources[uid] == nil {
		m.sources[uid] = map[string]bool{}
	}
	m.sources[uid][addr] = true
	m.mu.Unlock()
	return &sourceMetrics{
		bytesIn: m.bytesIn.With(l), commandsIn: m.commandsIn.With(l), commandsApplied: m.commandsApplied.With(l),
		bytesApplied: m.bytesApplied.With(l), wireIn: m.wireIn.With(l),
		fullSyncs: m.fullSyncs.With(l), partialSyncs: m.partialSyncs.With(l), errors: m.errors.With(l), batches: m.batches.With(l),
		appliedOffset: m.appliedOffset.With(l), lag: m.lag.With(l),
		stalls: m.stalls.With(l), stalled: m.stalled.With(l),
	}
}

func (m *metrics) removeDestination(uid int) {
	m.mu.Lock()
	delete(m.sources, uid)
	m.mu.Unlock()
	m.deleteSeries(prometheus.Labels{"destination": strconv.Itoa(uid)})
}

// keepSources deletes the series of destination uid's sources whose
// address is not in addrs: a source removed from a destination would
// otherwise be scraped until the destination is deleted, its last values
// frozen (a stalled source stalled for ever). A clustered source's series
// are per shard ("addr#slots") and go with its address.
func (m *metrics) keepSources(uid int, addrs map[string]bool) {
	m.mu.Lock()
	var gone []string
	for key := range m.sources[uid] {
		addr, _, _ := strings.Cut(key, "#")
		if !addrs[addr] {
			gone = append(gone, key)
			delete(m.sources[uid], key)
		}
	}
	m.mu.Unlock()
	for _, key := range gone {
		m.deleteSeries(prometheus.Labels{"destination": strconv.Itoa(uid), "source": key})
	}
}

// keepUnits deletes the series of destination uid's syncers whose key is
// not in keys, the syncers of a round (plan): a clustered source that
// resharded has shards of other slots ("addr#slots"), and the series of
// the shards that are gone would be scraped until the destination is
// deleted, frozen at their last values (a lag, a stall, a node).
func (m *metrics) keepUnits(uid int, keys map[string]bool) {
	m.mu.Lock()
	var gone []string
	for key := range m.sources[uid] {
		if !keys[key] {
			gone = append(gone, key)
			delete(m.sources[uid], key)
		}
	}
	m.mu.Unlock()
	for _, key := range gone {
		m.deleteSeries(prometheus.Labels{"destination": strconv.Itoa(uid), "source": key})
	}
}

// deleteSeries deletes every syncer series whose labels include l.
func (m *metrics) deleteSeries(l prometheus.Labels) {
	for _, v := range []*prometheus.CounterVec{m.bytesIn, m.commandsIn, m.commandsApplied, m.bytesApplied, m.wireIn, m.fullSyncs, m.partialSyncs, m.errors, m.batches, m.stalls} {
		v.DeletePartialMatch(l)
	}
	m.appliedOffset.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
	m.stalled.DeletePartialMatch(l)
	m.shardInfo.DeletePartialMatch(l)
}
