package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
)

// Compression is row 6 for one dataset: the full sync of a database of one
// instance of the service (A, the source) into a database of another (B,
// the destination), through A's replication gateway, once per compression
// level. Level 0 is the baseline.
type Compression struct {
	Dataset    string             `json:"dataset"`
	Keys       int64              `json:"keys"`
	UsedMemory int64              `json:"source_used_memory_bytes"`
	RDBBytes   int64              `json:"rdb_bytes"` // the RDB payload as the destination reports it (rdb_size)
	Levels     []CompressionLevel `json:"levels"`
	// Link is the same full sync, uncompressed then at linkLevel, through
	// a proxy that carries at most linkBandwidth (first dataset only).
	Link    []CompressionLevel `json:"link_100mbit,omitempty"`
	Checked string             `json:"checked"`
}

// The simulated WAN link of the compression rows: 100 Mbit/s each way.
const (
	linkBandwidth = 100e6 / 8 // bytes per second
	linkLevel     = 3
)

// CompressionLevel is the full sync at one level: the median time of the
// runs, and the bytes of the last run.
type CompressionLevel struct {
	Level   int       `json:"level"`
	Active  bool      `json:"compression_active"` // what the destination reported
	Codec   string    `json:"compression_codec,omitempty"`
	Note    string    `json:"compression_note,omitempty"`
	Seconds []float64 `json:"seconds"`
	Rate    Rate      `json:"rate"` // MB/s of the RDB payload, as in row 1
	// The source instance's gateway: bytes it relayed to the destination
	// before and after compression (replicad_gateway_sent_bytes_total and
	// replicad_gateway_sent_wire_bytes_total of the source database).
	GatewaySent     int64 `json:"gateway_sent_bytes"`
	GatewaySentWire int64 `json:"gateway_sent_wire_bytes"`
	// The destination instance's syncer: bytes received after
	// decompression and as they crossed the network
	// (replicad_replica_bytes_received_total and
	// replicad_replica_wire_bytes_received_total).
	Received     int64   `json:"replica_bytes_received"`
	ReceivedWire int64   `json:"replica_wire_bytes_received"`
	Ratio        float64 `json:"compression_ratio"` // gateway sent / sent on the wire
	WireMBPerSec float64 `json:"wire_mb_per_sec"`   // bytes on the wire over the time
	Throughput   float64 `json:"throughput_vs_off"` // level 0's time / this level's time
	// The two instances' processes during the last run (CPU time, RSS).
	SourceInstance      usage `json:"source_instance"`
	DestinationInstance usage `json:"destination_instance"`
}

// compressionLevels are the levels measured; 0 first, the baseline.
var compressionLevels = []int{0, 3, 6}

func (b *runner) compression(ctx context.Context) error {
	if b.cfg.CompressKeys == 0 {
		return nil
	}
	b.logf("compression: starting a second instance of redis-replicad, the destination")
	dst, err := b.startInstance(ctx, "service-b", 1, false)
	if err != nil {
		return err
	}
	defer b.procs.stop(dst.proc, 30*time.Second)
	n := b.cfg.CompressKeys
	datasets := []struct {
		name string
		keys int
		est  int64 // bytes of memory per key, for the source's memory limit
		mk   func(from, to int) gen
	}{
		{fmt.Sprintf("JSON-like order records, %s keys", human(n)), n, 4 << 10, jsonGen},
		{fmt.Sprintf("mixed types, %s keys", human(n/2)), n / 2, 8 << 10, mixedGen},
	}
	for i, d := range datasets {
		if d.keys == 0 {
			continue
		}
		r, err := b.compressedSync(ctx, dst, d.name, d.keys, d.est, d.mk, i == 0)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		b.res.Compression = append(b.res.Compression, r)
	}
	return nil
}

func (b *runner) compressedSync(ctx context.Context, dst *service, name string, keys int, est int64, mk func(from, to int) gen, link bool) (Compression, error) {
	res := Compression{Dataset: name}
	src := b.svc
	b.logf("compression: %s: loading a database of instance A", name)
	db, err := src.create(ctx, api.CreateDatabaseRequest{Name: fmt.Sprintf("compress-src-%d", len(b.res.Compression)), MemorySize: max(int64(keys)*est, 256<<20)})
	if err != nil {
		return res, err
	}
	defer src.delete(context.Background(), db.UID)
	began := time.Now()
	parts := 2
	step := (keys + parts - 1) / parts
	if _, err := load(ctx, fmt.Sprintf("127.0.0.1:%d", db.Port), db.AuthenticationRedisPass, parts, func(i int) gen {
		return mk(i*step, min((i+1)*step, keys))
	}); err != nil {
		return res, err
	}
	sc := dbClient(db)
	defer sc.Close()
	res.Keys, _ = sc.DBSize(ctx).Result()
	mem, _ := info(ctx, sc, "memory")
	res.UsedMemory = infoInt(mem, "used_memory")
	b.logf("compression: %s: source holds %d keys, %s, built in %s", name, res.Keys, mib(res.UsedMemory), time.Since(began).Round(time.Millisecond))
	var su api.SourceURL
	if err := src.do(ctx, "GET", "/v1/bdbs/"+strconv.Itoa(db.UID)+"/source_url", nil, &su); err != nil {
		return res, err
	}

	memLimit := max(res.UsedMemory*3, 256<<20)
	levels := make([]CompressionLevel, len(compressionLevels))
	var checked []string
	for run := range b.cfg.Repeat {
		for i, lvl := range compressionLevels {
			l, rdb, check, err := b.compressedRun(ctx, dst, db.UID, su.URI, lvl, res.Keys, memLimit, run, sc)
			if err != nil {
				return res, fmt.Errorf("compression %d: %w", lvl, err)
			}
			l.Seconds = append(levels[i].Seconds, l.Seconds...)
			levels[i] = l
			res.RDBBytes = rdb
			b.logf("compression: %s: level %d in sync in %.2fs, %s sent, %s on the wire (%.2fx), CPU source %.1fs destination %.1fs (%s)",
				name, lvl, l.Seconds[len(l.Seconds)-1], mib(l.GatewaySent), mib(l.GatewaySentWire), l.Ratio,
				l.SourceInstance.CPUSeconds, l.DestinationInstance.CPUSeconds, check)
			if run == 0 {
				checked = append(checked, fmt.Sprintf("level %d: %s", lvl, check))
			}
		}
	}
	for i := range levels {
		l := &levels[i]
		s := median(l.Seconds)
		l.Rate = Rate{Seconds: s, ItemsPerSec: float64(res.Keys) / s, MBPerSec: float64(res.RDBBytes) / s / 1e6}
		l.WireMBPerSec = float64(l.GatewaySentWire) / s / 1e6
	}
	for i := range levels {
		levels[i].Throughput = levels[0].Rate.Seconds / levels[i].Rate.Seconds
	}
	res.Levels = levels
	if link {
		for _, lvl := range []int{0, linkLevel} {
			l, err := b.linkRun(ctx, dst, db.UID, su.URI, lvl, res, memLimit, sc)
			if err != nil {
				return res, fmt.Errorf("compression %d over a %.0f Mbit/s link: %w", lvl, linkBandwidth*8/1e6, err)
			}
			res.Link = append(res.Link, l)
		}
		res.Link[1].Throughput = res.Link[0].Rate.Seconds / res.Link[1].Rate.Seconds
		res.Link[0].Throughput = 1
	}
	res.Checked = fmt.Sprint(checked)
	return res, nil
}

// linkRun is one full sync at level lvl through a proxy that simulates a
// 100 Mbit/s link between the two instances: the destination is given the
// source URL with the proxy's address.
func (b *runner) linkRun(ctx context.Context, dst *service, srcUID int, srcURL string, lvl int, res Compression, memLimit int64, sc *redis.Client) (CompressionLevel, error) {
	u, err := url.Parse(srcURL)
	if err != nil {
		return CompressionLevel{}, err
	}
	p, err := startLinkProxy(u.Host, linkBandwidth)
	if err != nil {
		return CompressionLevel{}, err
	}
	defer p.close()
	u.Host = p.addr()
	b.logf("compression: %s: level %d through a %.0f Mbit/s link", res.Dataset, lvl, linkBandwidth*8/1e6)
	l, _, check, err := b.compressedRun(ctx, dst, srcUID, u.String(), lvl, res.Keys, memLimit, 0, sc)
	if err != nil {
		return l, err
	}
	s := l.Seconds[0]
	l.Rate = Rate{Seconds: s, ItemsPerSec: float64(res.Keys) / s, MBPerSec: float64(res.RDBBytes) / s / 1e6}
	l.WireMBPerSec = float64(l.GatewaySentWire) / s / 1e6
	b.logf("compression: %s: level %d through the link in sync in %.2fs, %s on the wire (%s)", res.Dataset, lvl, s, mib(l.GatewaySentWire), check)
	return l, nil
}

// compressedRun makes a fresh database of dst a Replica Of the source URL
// at level lvl and measures its full sync.
func (b *runner) compressedRun(ctx context.Context, dst *service, srcUID int, srcURL string, lvl int, keys, memLimit int64, run int, srcClient *redis.Client) (CompressionLevel, int64, string, error) {
	l := CompressionLevel{Level: lvl}
	db, err := dst.create(ctx, api.CreateDatabaseRequest{Name: fmt.Sprintf("compress-%d-%d-%d", len(b.res.Compression), lvl, run), MemorySize: memLimit})
	if err != nil {
		return l, 0, "", err
	}
	defer dst.delete(context.Background(), db.UID)
	gw := func() (sent, wire int64, err error) {
		text, err := b.svc.metrics(ctx)
		lb := `database="` + strconv.Itoa(srcUID) + `"`
		return int64(max(metric(text, "replicad_gateway_sent_bytes_total", lb), 0)),
			int64(max(metric(text, "replicad_gateway_sent_wire_bytes_total", lb), 0)), err
	}
	sent0, wire0, err := gw()
	if err != nil {
		return l, 0, "", err
	}
	sm, dm := startMeter(b.svc.pid()), startMeter(dst.pid())
	began := time.Now()
	sources := []api.ReplicaSource{{URI: srcURL, Compression: lvl}}
	if _, err := dst.update(ctx, db.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources}); err != nil {
		sm.stop()
		dm.stop()
		return l, 0, "", err
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	db, err = dst.waitInSync(sctx, db.UID, 10*time.Millisecond)
	d := time.Since(began)
	l.SourceInstance, l.DestinationInstance = sm.stop(), dm.stop()
	if err != nil {
		return l, 0, "", err
	}
	l.Seconds = []float64{d.Seconds()}
	sent1, wire1, err := gw()
	if err != nil {
		return l, 0, "", err
	}
	l.GatewaySent, l.GatewaySentWire = sent1-sent0, wire1-wire0
	if lvl == 0 {
		// Uncompressed, the gateway adds to sent_bytes_total only when the
		// session ends (it still runs); what it sent is what went on the
		// wire.
		l.GatewaySent = l.GatewaySentWire
	}
	if l.GatewaySentWire > 0 {
		l.Ratio = float64(l.GatewaySent) / float64(l.GatewaySentWire)
	}
	text, err := dst.metrics(ctx)
	if err != nil {
		return l, 0, "", err
	}
	lb := `destination="` + strconv.Itoa(db.UID) + `"`
	l.Received = int64(metric(text, "replicad_replica_bytes_received_total", lb))
	l.ReceivedWire = int64(metric(text, "replicad_replica_wire_bytes_received_total", lb))
	st := db.ReplicaSources[0]
	l.Active, l.Note, l.Codec = st.CompressionActive, st.CompressionNote, st.CompressionCodec
	if (lvl > 0) != l.Active {
		return l, 0, "", fmt.Errorf("compression_active is %v at level %d (%s)", l.Active, lvl, l.Note)
	}
	c := dbClient(db)
	defer c.Close()
	verdict, err := compare(ctx, c, srcClient, keys, run == 0)
	return l, st.RDBSize, verdict, err
}
