package replication_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
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
