package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// recordConn stands for either end of a session in the fuzzer: it records
// what is written to it.
type recordConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error)      { return c.buf.Write(p) }
func (c *recordConn) SetDeadline(time.Time) error      { return nil }
func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }

// okForever is an upstream that answers +OK to everything.
type okForever struct{}

func (okForever) Read(p []byte) (int, error) {
	n := 0
	for n+5 <= len(p) {
		n += copy(p[n:], "+OK\r\n")
	}
	return n, nil
}

// FuzzSession drives a session's command handling (login, compression,
// handshake, stream) with arbitrary client bytes. It must never panic, and
// nothing may reach redis-server but the replication commands, and only
// after the right password.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"*0\r\n", "*-1\r\n", "*-5\r\n", "*1\r\n$-1\r\n", "PING\r\n",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$17\r\nREPLICAD.COMPRESS\r\n$1\r\n3\r\n*1\r\n$4\r\nINFO\r\n",
		"*2\r\n$15\r\nREPLICAD.CODECS\r\n$4\r\nzstd\r\n*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$17\r\nREPLICAD.COMPRESS\r\n$1\r\n3\r\n*2\r\n$15\r\nREPLICAD.CODECS\r\n$4\r\nzstd\r\n",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n1\r\n*1\r\n$8\r\nFLUSHALL\r\n",
		"*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$5\r\nwrong\r\n*2\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n*3\r\n$4\r\nAUTH\r\n$8\r\nreplicad\r\n$1\r\nx\r\n",
		// A destination discovering a sharded database's shards.
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$4\r\nINFO\r\n$7\r\ncluster\r\n*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$7\r\ncluster\r\n$6\r\nshards\r\n*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n ",
		"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*3\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n$1\r\nx\r\n*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n",
		// The lineage question, before and after AUTH, and with arguments.
		"*1\r\n$16\r\nREPLICAD.LINEAGE\r\n*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*1\r\n$16\r\nREPLICAD.LINEAGE\r\n*2\r\n$16\r\nreplicad.lineage\r\n$1\r\nx\r\n",
	} {
		f.Add([]byte(seed))
	}
	allowed := map[string]bool{"PING": true, "REPLCONF": true, "ECHO": true, "SELECT": true, "INFO": true, "CLIENT": true, "PSYNC": true, "SYNC": true}
	f.Fuzz(func(t *testing.T, in []byte) {
		g := New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		defer g.Close()
		g.throttle.Base = 0 // no waiting in the fuzzer
		e := &endpoint{g: g, sessions: map[*session]struct{}{}}
		cfg := Endpoint{UID: 1, AdminUser: "admin", AdminPassword: "secret"}
		rd := resp.NewReader(bufio.NewReader(bytes.NewReader(in)))
		rd.MaxBulkLen, rd.MaxArrayLen = maxArgLen, maxArgCount
		client := &recordConn{}
		_, ok := e.login(context.Background(), client, rd, cfg, "peer")
		if !ok {
			return
		}
		comp, first, err := readCompression(client, rd)
		if err != nil {
			return
		}
		_ = comp
		up := &recordConn{}
		upRd := resp.NewReader(bufio.NewReader(okForever{}))
		rw := &replyWriter{conn: client, w: client}
		env := handshakeEnv{up: &upstream{dial: func() (net.Conn, *resp.Reader, error) { return up, upRd, nil }},
			lineage: func() []string { return []string{"instance/1"} }}
		// Inputs of odd length play against a sharded database's own
		// endpoint: it answers the cluster's questions and never streams.
		sharded := len(in)%2 == 1
		if sharded {
			env.refuse = "this database is sharded"
			env.shards = func() ([]byte, error) {
				return appendShards(nil, cluster.Topology{Shards: []cluster.Shard{{Slots: []cluster.Range{{Start: 0, End: 16383}},
					Nodes: []cluster.Node{{ID: "a", Addr: "127.0.0.1:7000", Role: cluster.RoleMaster, Health: cluster.HealthOK}}}}}, false), nil
			}
		}
		streaming, _ := handshake(rw, rd, first, env)
		if streaming && sharded {
			t.Fatal("a sharded database's own endpoint started a stream")
		}
		if streaming {
			forwardReplconf(rd, up)
		}
		sent := resp.NewReader(bufio.NewReader(&up.buf))
		for {
			args, _, err := sent.ReadCommand()
			if err != nil {
				break
			}
			name := strings.ToUpper(string(args[0]))
			if !allowed[name] {
				t.Fatalf("%q reached redis-server", args)
			}
			if sharded && (name == "PSYNC" || name == "SYNC") {
				t.Fatalf("%q reached the first node of a sharded database", args)
			}
			if name == "INFO" && (len(args) != 2 || string(args[1]) != "replication") {
				t.Fatalf("INFO not narrowed: %q", args)
			}
		}
	})
}
