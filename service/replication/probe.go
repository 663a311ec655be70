package replication

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// ErrCannotCompress says that a source answered that it cannot compress.
var ErrCannotCompress = errors.New("the source cannot compress")

// ProbeCompression asks a source whether it can compress, as a syncer
// would: it logs in and sends the compression request, then hangs up. It
// returns ErrCannotCompress when the source refuses (an open-source Redis),
// another error when it cannot tell (unreachable, wrong password), and nil
// when the source agrees.
func (m *Manager) ProbeCompression(ctx context.Context, src api.ReplicaSource) error {
	u, err := redisurl.Parse(src.URI)
	if err != nil {
		return err
	}
	tlsCfg, err := m.sourceTLS(src)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := askSourceOnce(ctx, u, tlsCfg, replcompress.Request(max(src.Compression, replcompress.MinLevel), false)...)
	if err != nil {
		return err
	}
	if v.IsError() {
		if replcompress.Refused(string(v.Str)) {
			return ErrCannotCompress
		}
		return fmt.Errorf("the source answered: %s", v.Str)
	}
	return nil
}

// errAuthRefused: the source refused askSourceOnce's login.
var errAuthRefused = errors.New("authentication failed")

// askSourceOnce logs in to the source at u on a connection of its own,
// sends cmd and returns the reply, then hangs up; ctx bounds it all (its
// end closes the connection at once). A refused login is errAuthRefused;
// an error reply to cmd is returned as a value, for the caller to read.
func askSourceOnce(ctx context.Context, u redisurl.Source, tlsCfg *tls.Config, cmd ...string) (resp.Value, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Addr())
	if err != nil {
		return resp.Value{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return resp.Value{}, err
		}
		conn = tc
	}
	var buf []byte
	if u.Password != "" {
		if u.Username != "" {
			buf = resp.AppendCommandStrings(buf, "AUTH", u.Username, u.Password)
		} else {
			buf = resp.AppendCommandStrings(buf, "AUTH", u.Password)
		}
	}
	buf = resp.AppendCommandStrings(buf, cmd...)
	if _, err := conn.Write(buf); err != nil {
		return resp.Value{}, err
	}
	rd := resp.NewReader(bufio.NewReader(conn))
	if u.Password != "" {
		v, err := rd.ReadValue()
		if err != nil {
			return resp.Value{}, err
		}
		if v.IsError() {
			return resp.Value{}, errAuthRefused
		}
	}
	return rd.ReadValue()
}
