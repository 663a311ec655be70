package replication_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// compressingFakeSource plays a replication endpoint that compresses with
// zstd, as a redis-replicad gateway does, answers PSYNC with an empty RDB,
// then sends stream (compressed) and, while the destination takes it,
// chunk after chunk of filler (at most fillerMax bytes). sent counts the
// filler bytes the destination took.
func compressingFakeSource(t *testing.T, stream string, fillerMax int64, sent *atomic.Int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	emptyRDB := "REDIS0009\xff\x00\x00\x00\x00\x00\x00\x00\x00"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var w io.Writer = c
				var zw *zstd.Encoder
				send := func(s string) error {
					if _, err := io.WriteString(w, s); err != nil {
						return err
					}
					if zw != nil {
						return zw.Flush()
					}
					return nil
				}
				rd := resp.NewReader(bufio.NewReader(c))
				for {
					args, _, err := rd.ReadCommand()
					if err != nil || len(args) == 0 {
						return
					}
					switch name := strings.ToUpper(string(args[0])); name {
					case "PING":
						send("-NOAUTH Authentication required.\r\n")
					case "AUTH", "REPLCONF":
						if name == "REPLCONF" && strings.EqualFold(string(args[1]), "ACK") {
							continue
						}
						send("+OK\r\n")
					case "REPLICAD.COMPRESS":
						if !strings.HasPrefix(string(args[1]), "+") {
							send("+OK\r\n") // the validation's probe, which hangs up
							continue
						}
						send("+ZSTD\r\n")
						if zw, err = zstd.NewWriter(c, zstd.WithEncoderConcurrency(1)); err != nil {
							return
						}
						w = zw
					case "PSYNC":
						if send(fmt.Sprintf("+FULLRESYNC %s 0\r\n$%d\r\n%s%s", strings.Repeat("b", 40), len(emptyRDB), emptyRDB, stream)) != nil {
							return
						}
						filler := strings.Repeat("x", 1<<20)
						for sent.Load() < fillerMax {
							if send(filler) != nil {
								return
							}
							sent.Add(int64(len(filler)))
						}
						io.Copy(io.Discard, c)
						return
					default:
						send("-ERR unknown command '" + string(args[0]) + "'\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A compressed source whose stream holds a command far bigger than the
// destination could store (here a SET of 400 MiB to a 32 MiB destination:
// kilobytes on the wire) stops the sync with a last_error that says why,
// before the service reads the value into its memory; nothing of it is
// applied, and the service goes on serving.
func TestACompressedCommandBiggerThanTheDestinationStopsTheSync(t *testing.T) {
	var sent atomic.Int64
	stream := "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$419430400\r\n"
	addr := compressingFakeSource(t, stream, 1<<30, &sent)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw@" + addr, Compression: 3}}})
	var db api.Database
	redistest.Eventually(t, 2*time.Minute, "the sync stops on the command too big", func() error {
		db = a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
		}
		return nil
	})
	le := db.ReplicaSources[0].LastError
	assert.Contains(t, le, "memory_size", "last_error says what bounds a command")
	assert.Contains(t, le, "nothing of it was applied")
	assert.Less(t, sent.Load(), int64(256<<20), "the destination read %d MiB of the value before it stopped", sent.Load()>>20)
	n, err := destClient(t, dst, 0).Exists(redistest.Ctx(t), "big").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing of the command is applied")
}

// corruptingProxy relays a replication link; while armed, it replaces
// what the source sends, past the first three replies of a session (the
// plain-text ones: PING, AUTH, the compression request), with bytes that
// no decompressor takes: a man in the middle of a plain-text link.
type corruptingProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	hits   atomic.Int64 // chunks replaced
}

func startCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &corruptingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	return p
}

func (p *corruptingProxy) relay(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	buf := make([]byte, 64<<10)
	for chunk := 0; ; chunk++ {
		n, err := up.Read(buf)
		if n > 0 {
			if chunk >= 3 && p.armed.Load() {
				for i := range buf[:n] {
					buf[i] = 0xff
				}
				p.hits.Add(1)
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A compressed stream altered on the way (a man in the middle of a
// plain-text link) is said in last_error to be a compressed stream that
// does not decode, not a connection error; once the link carries the
// stream intact again, the sync continues and the destination equals the
// source key by key, the writes made meanwhile applied once.
func TestACompressedStreamAlteredOnTheWayIsToldAndRecovered(t *testing.T) {
	a := newAPI(t, servicetest.Start(t))
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := destClient(t, src, 0)
	writeDataset(t, sc, "", 100)
	u, err := url.Parse(a.sourceURL(src.UID))
	require.NoError(t, err)
	proxy := startCorruptingProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: u.String(), Compression: 3}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)

	proxy.armed.Store(true)
	for range 20 {
		require.NoError(t, sc.Incr(ctx, "counter").Err())
	}
	redistest.Eventually(t, time.Minute, "last_error says the compressed stream does not decode", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status == api.SourceInSync || !strings.Contains(s.LastError, "compressed stream does not decode") {
			return fmt.Errorf("status %s, last_error %q (%d chunks altered)", s.Status, s.LastError, proxy.hits.Load())
		}
		return nil
	})
	proxy.armed.Store(false)
	require.NoError(t, sc.Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, "21", dc.Get(ctx, "counter").Val())
	s := a.waitInSync(dst.UID, time.Minute).ReplicaSources[0]
	assert.True(t, s.CompressionActive, "compression is active again")
}
