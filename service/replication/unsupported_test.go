package replication_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// fakeSource answers the replica handshake and sends rdb as the payload of
// a full resync, then stream as the command stream: a source whose data
// the destination cannot take as it is.
func fakeSource(t *testing.T, rdb []byte, stream ...[]byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := resp.NewReader(bufio.NewReader(c))
				for {
					args, _, err := rd.ReadCommand()
					if err != nil {
						return
					}
					switch strings.ToUpper(string(args[0])) {
					case "PING":
						c.Write([]byte("+PONG\r\n"))
					case "PSYNC":
						fmt.Fprintf(c, "+FULLRESYNC %s 0\r\n$%d\r\n", strings.Repeat("a", 40), len(rdb))
						c.Write(rdb)
						for _, b := range stream {
							c.Write(b)
						}
					case "REPLCONF":
						if !strings.EqualFold(string(args[1]), "ACK") { // a replica's ACK gets no reply
							c.Write([]byte("+OK\r\n"))
						}
					default:
						c.Write([]byte("+OK\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestUnknownTypeStopsTheSync(t *testing.T) {
	// RDB 11: SELECTDB 0, then a value of type 99 under the key "mystery".
	rdb := []byte("REDIS0011\xfe\x00\x63\x07mystery\x00\x00\x00\x00")
	addr := fakeSource(t, rdb)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + addr}}})
	var db api.Database
	redistest.Eventually(t, time.Minute, "the sync stops on the unknown type", func() error {
		db = a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
		}
		return nil
	})
	if le := db.ReplicaSources[0].LastError; !strings.Contains(le, "mystery") || !strings.Contains(le, "type 99") {
		t.Fatalf("last_error %q does not name the key and the type", le)
	}
}

// A source that accepts the connection and never answers is waited for up
// to the read timeout (a minute); meanwhile the status says what it waits
// for, instead of syncing with no error.
func TestASourceThatNeverAnswersIsToldInTheStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() { _, _ = io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + ln.Addr().String()}}})
	redistest.Eventually(t, time.Minute, "the status says the source does not answer", func() error {
		src := a.get(dst.UID).ReplicaSources[0]
		if src.Status != api.SourceOutOfSync || !strings.Contains(src.LastError, "has not answered the replication handshake") {
			return fmt.Errorf("status %s, last_error %q", src.Status, src.LastError)
		}
		return nil
	})
}
