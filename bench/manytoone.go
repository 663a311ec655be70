package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
)

// manySources is the number of sources of the many-to-one rows: the most a
// destination may have.
const manySources = 32

// ManyToOne is rows 7 and 8: 32 sources replicating into one destination.
// First the API's latency while they all load at once (row 7), then the lag
// of each source with the 32 of them at a combined half load (row 8).
type ManyToOne struct {
	Sources     int     `json:"sources"`
	Keys        int64   `json:"keys"` // all sources together
	LoadSeconds float64 `json:"load_seconds"`
	// API is each endpoint's latency, sampled every 20 ms from the PUT
	// until every source is in sync.
	API []EndpointLatency `json:"api_latency"`

	Rate    float64   `json:"cmds_per_sec"` // all sources together
	Lag     LagSide   `json:"lag"`          // every probe of every source
	PerP99  []float64 `json:"per_source_p99_ms"`
	PerMax  []float64 `json:"per_source_max_ms"`
	Applied float64   `json:"achieved_cmds_per_sec"`
}

// EndpointLatency is the latency of one API request, in milliseconds.
type EndpointLatency struct {
	Endpoint string  `json:"endpoint"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func (b *runner) manyToOne(ctx context.Context) error {
	res := ManyToOne{Sources: manySources}
	per := max(b.cfg.MixedKeys/manySources, 1)
	b.logf("many-to-one: %d sources of %d mixed keys each", manySources, per)
	srcs := make([]*server, manySources)
	for i := range srcs {
		s, err := b.startServer(ctx, fmt.Sprintf("many-source-%d", i), sourceArgs...)
		if err != nil {
			return err
		}
		defer b.stopServer(s)
		srcs[i] = s
		from := i * per
		if _, err := load(ctx, s.addr(), s.password, 1, func(int) gen { return mixedGen(from, from+per) }); err != nil {
			return err
		}
		n, _ := s.c.DBSize(ctx).Result()
		res.Keys += n
	}
	db, err := b.svc.create(ctx, api.CreateDatabaseRequest{Name: "many-to-one", MemorySize: 4 << 30})
	if err != nil {
		return err
	}
	defer b.svc.delete(context.Background(), db.UID)

	// Row 7: the API while 32 sources load.
	sources := make([]api.ReplicaSource, len(srcs))
	for i, s := range srcs {
		sources[i] = api.ReplicaSource{URI: s.url()}
	}
	sctx, stopSampling := context.WithCancel(ctx)
	endpoints := []string{"/v1/bdbs/" + strconv.Itoa(db.UID), "/v1/bdbs", "/healthz"}
	lat := make([][]float64, len(endpoints))
	errs := make([]int, len(endpoints))
	var wg sync.WaitGroup
	for i, path := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], errs[i] = b.sampleAPI(sctx, path)
		}()
	}
	b.svc.profile(ctx, "start", "many-to-one-load")
	began := time.Now()
	b.logf("many-to-one: PUT at %s", began.Format("15:04:05.000"))
	_, err = b.svc.update(ctx, db.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources})
	b.logf("many-to-one: PUT answered in %s", time.Since(began).Round(time.Millisecond))
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		db, err = b.svc.waitInSync(wctx, db.UID, 20*time.Millisecond)
		cancel()
	}
	res.LoadSeconds = time.Since(began).Seconds()
	stopSampling()
	wg.Wait()
	b.svc.profile(ctx, "stop", "")
	if err != nil {
		return err
	}
	for i, path := range endpoints {
		l := EndpointLatency{Endpoint: "GET " + path, Requests: len(lat[i]), Errors: errs[i]}
		if len(lat[i]) > 0 {
			v := lat[i]
			sort.Float64s(v)
			l.P50, l.P99, l.Max = v[len(v)/2], v[min(len(v)-1, int(0.99*float64(len(v))))], v[len(v)-1]
		}
		res.API = append(res.API, l)
	}
	b.logf("many-to-one: %d keys from %d sources in sync in %.2fs; API p99 %s", res.Keys, manySources, res.LoadSeconds, apiSummary(res.API))
	dc := dbClient(db)
	defer dc.Close()
	if n, err := dc.DBSize(ctx).Result(); err != nil || n != res.Keys {
		return fmt.Errorf("the destination holds %d keys, the sources %d (%v)", n, res.Keys, err)
	}

	// Row 8: lag at a combined half load.
	res.Rate = 100_000
	if b.res.Lag != nil {
		res.Rate = b.res.Lag.Rate
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_MANY_RATE")); err == nil && v > 0 {
		res.Rate = float64(v)
	}
	ldur := time.Duration(b.cfg.LagSeconds) * time.Second
	b.logf("many-to-one: %d sources at %s cmd/s together for %s", manySources, kilo(res.Rate), ldur)
	b.svc.profile(ctx, "start", "many-to-one-lag")
	err = b.manyLag(ctx, &res, srcs, dc, childListening(b.svc.pid(), db.Port), ldur)
	b.svc.profile(ctx, "stop", "")
	if err != nil {
		return err
	}
	b.logf("many-to-one: lag p50 %.2f ms, p99 %.2f ms, max %.1f ms; worst source p99 %.2f ms; CPU per M commands: service %.2f s, its redis-server %.2f s",
		res.Lag.P50, res.Lag.P99, res.Lag.Max, maxOf(res.PerP99), res.Lag.ServiceCPUPerM, res.Lag.RedisCPUPerM)
	b.res.ManyToOne = &res
	return nil
}

// sampleAPI requests path every 20 ms until ctx ends, on a connection of
// its own (kept alive, as a client's), and returns each latency in ms.
func (b *runner) sampleAPI(ctx context.Context, path string) ([]float64, int) {
	c := &http.Client{Timeout: time.Minute, Transport: b.svc.http.Transport.(*http.Transport).Clone()}
	var out []float64
	errs := 0
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", b.svc.url+path, nil)
		req.SetBasicAuth(b.svc.user, b.svc.password)
		t := time.Now()
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("%d", resp.StatusCode)
			}
		}
		out = append(out, float64(time.Since(t).Microseconds())/1000)
		if out[len(out)-1] > 100 {
			b.logf("many-to-one: GET %s took %.0f ms (sent at %s)", path, out[len(out)-1], t.Format("15:04:05.000"))
		}
		if err != nil {
			errs++
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out, errs
}

func apiSummary(l []EndpointLatency) string {
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s %.1f ms (max %.1f, %d requests)", e.Endpoint, e.P99, e.Max, e.Requests))
	}
	return strings.Join(parts, "; ")
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// manyLag runs a paced writer on each source (the rate split evenly) and
// sends a probe every 5 ms to the sources in turn; the destination reports
// each probe by client-tracking invalidation, as in row 3.
func (b *runner) manyLag(ctx context.Context, res *ManyToOne, srcs []*server, dst *redis.Client, redisPid int, dur time.Duration) error {
	// Nothing forks during the measurement but what the load causes (the
	// destination rewrites its AOF once after a full load).
	clients := []*redis.Client{dst}
	for _, s := range srcs {
		clients = append(clients, s.c)
	}
	quiesce(ctx, clients...)
	probes, err := watchProbes(ctx, dst)
	if err != nil {
		return err
	}
	defer probes.Close()
	pipes := make([]*pipe, len(srcs))
	probers := make([]*redis.Client, len(srcs))
	for i, s := range srcs {
		p, err := dialPipe(ctx, s.addr(), s.password, 1024)
		if err != nil {
			return err
		}
		defer p.close()
		pipes[i] = p
		probers[i] = redis.NewClient(&redis.Options{Addr: s.addr(), Password: s.password, PoolSize: 1})
		defer probers[i].Close()
	}
	stop := make(chan struct{})
	loadErr := make(chan error, len(pipes))
	sm, rm := startMeter(b.svc.pid()), startMeter(redisPid)
	began := time.Now()
	for i, p := range pipes {
		go func() {
			loadErr <- p.run(ctx, streamGen(uint64(time.Now().UnixNano())+uint64(i), b.cfg.StreamKeys), res.Rate/float64(len(pipes)), stop)
		}()
	}
	var sent []time.Time
	tick := time.NewTicker(5 * time.Millisecond)
	end := time.After(dur)
	var probeErr error
probe:
	for {
		select {
		case <-ctx.Done():
			probeErr = ctx.Err()
			break probe
		case <-end:
			break probe
		case <-tick.C:
		}
		seq := len(sent)
		sent = append(sent, time.Now())
		if err := probers[seq%len(probers)].Set(ctx, probePrefix+strconv.Itoa(seq), seq, 0).Err(); err != nil {
			probeErr = err
			break
		}
	}
	tick.Stop()
	close(stop)
	for range pipes {
		if err := <-loadErr; err != nil && probeErr == nil {
			probeErr = err
		}
	}
	if probeErr != nil {
		return probeErr
	}
	var acked int64
	for _, p := range pipes {
		acked += p.acked.Load()
	}
	res.Applied = float64(acked) / time.Since(began).Seconds()
	if acked > 0 {
		res.Lag.ServiceCPUPerM = sm.stop().CPUSeconds / float64(acked) * 1e6
		res.Lag.RedisCPUPerM = rm.stop().CPUSeconds / float64(acked) * 1e6
	}
	arrived := probes.waitFor(len(sent), time.Now().Add(30*time.Second))
	all := []float64{}
	per := make([][]float64, len(srcs))
	var csv strings.Builder
	csv.WriteString("sent_ms,source,lag_ms\n")
	for i, t := range sent {
		if a, ok := arrived[i]; ok {
			l := float64(a.Sub(t).Microseconds()) / 1000
			all = append(all, l)
			per[i%len(srcs)] = append(per[i%len(srcs)], l)
			fmt.Fprintf(&csv, "%d,%d,%.3f\n", t.Sub(began).Milliseconds(), i%len(srcs), l)
		}
	}
	_ = os.WriteFile(filepath.Join(b.runDir, "lag-many-to-one.csv"), []byte(csv.String()), 0o644)
	res.Lag.Probes, res.Lag.Missing = len(sent), len(sent)-len(all)
	if len(all) == 0 {
		return fmt.Errorf("no probe arrived")
	}
	pct := func(v []float64, p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
	sort.Float64s(all)
	res.Lag.P50, res.Lag.P99, res.Lag.Max = pct(all, 0.5), pct(all, 0.99), all[len(all)-1]
	for _, v := range per {
		if len(v) == 0 {
			res.PerP99, res.PerMax = append(res.PerP99, 0), append(res.PerMax, 0)
			continue
		}
		sort.Float64s(v)
		res.PerP99, res.PerMax = append(res.PerP99, pct(v, 0.99)), append(res.PerMax, v[len(v)-1])
	}
	return nil
}
