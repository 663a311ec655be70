package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// replicationSession is a client of a database's replication endpoint, as a
// destination's syncer is.
type replicationSession struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialReplication connects to the endpoint of uri and authenticates with its
// password; the answer to AUTH is returned.
func dialReplication(t *testing.T, uri string) (*replicationSession, string) {
	t.Helper()
	u, err := url.Parse(uri)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	s := &replicationSession{conn: conn, r: bufio.NewReader(conn)}
	pw, _ := u.User.Password()
	return s, s.do(t, "AUTH", u.User.Username(), pw)
}

// do sends a command and returns the first line of the answer ("" when
// the connection is closed).
func (s *replicationSession) do(t *testing.T, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	s.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s.conn, b.String()); err != nil {
		return ""
	}
	line, err := s.r.ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

// TestRegeneratedPasswordGrace checks that after a regeneration the old
// admin password keeps opening replication sessions, and keeps those open,
// for the grace period only; that the new one works at once; and that a
// password older than the previous one is refused at once.
func TestRegeneratedPasswordGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and redis-server")
	}
	const grace = 15 * time.Second
	i := servicetest.StartWith(t, func(c *app.Config) { c.AdminPasswordGrace = grace })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "grace", MemorySize: 64 << 20})
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)

	var first api.SourceURL
	code, e := call(t, i, "GET", path+"/source_url", nil, &first)
	require.Equal(t, 200, code, "%v", e)
	open, answer := dialReplication(t, first.URI)
	require.Equal(t, "+OK", answer)
	require.Equal(t, "+PONG", open.do(t, "PING"), "a session of the first password is relayed to the database")

	var second api.AdminPassword
	code, e = call(t, i, "POST", path+"/actions/regenerate_admin_password", nil, &second)
	require.Equal(t, 200, code, "%v", e)
	regenerated := time.Now()
	assert.WithinDuration(t, regenerated.Add(grace), second.PreviousPasswordValidUntil, 5*time.Second)

	_, answer = dialReplication(t, second.URI)
	assert.Equal(t, "+OK", answer, "the new password opens a session")
	_, answer = dialReplication(t, first.URI)
	assert.Equal(t, "+OK", answer, "the previous password opens a session during the grace period")
	assert.Equal(t, "+PONG", open.do(t, "PING"), "the session of the previous password stays open during the grace period")

	// Once the grace period is over: refused, and the open session closed.
	eventually(t, grace+time.Minute, "the previous password is refused", func() error {
		if _, answer := dialReplication(t, first.URI); !strings.HasPrefix(answer, "-WRONGPASS") {
			return fmt.Errorf("AUTH with the previous password answers %q", answer)
		}
		return nil
	})
	assert.GreaterOrEqual(t, time.Since(regenerated), grace-time.Second, "refused before the grace period ended")
	assert.Equal(t, "", open.do(t, "PING"), "the session of the previous password is still open")

	// Two regenerations: the password before the previous one is refused
	// at once, the previous one still works.
	var third api.AdminPassword
	code, _ = call(t, i, "POST", path+"/actions/regenerate_admin_password", nil, &third)
	require.Equal(t, 200, code)
	_, answer = dialReplication(t, first.URI)
	assert.True(t, strings.HasPrefix(answer, "-WRONGPASS"), "the first password after two regenerations: %q", answer)
	_, answer = dialReplication(t, second.URI)
	assert.Equal(t, "+OK", answer, "the previous password right after a regeneration")
}

// TestRegeneratedPasswordWithoutGrace: with no grace period, the old
// password is refused at once and its sessions closed.
func TestRegeneratedPasswordWithoutGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad and redis-server")
	}
	i := servicetest.StartWith(t, func(c *app.Config) { c.AdminPasswordGrace = -1 })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "nograce", MemorySize: 64 << 20})
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	var first api.SourceURL
	code, _ := call(t, i, "GET", path+"/source_url", nil, &first)
	require.Equal(t, 200, code)
	open, answer := dialReplication(t, first.URI)
	require.Equal(t, "+OK", answer)
	require.Equal(t, "+PONG", open.do(t, "PING"))

	var second api.AdminPassword
	code, _ = call(t, i, "POST", path+"/actions/regenerate_admin_password", nil, &second)
	require.Equal(t, 200, code)
	assert.True(t, second.PreviousPasswordValidUntil.IsZero())
	_, answer = dialReplication(t, first.URI)
	assert.True(t, strings.HasPrefix(answer, "-WRONGPASS"), "the old password: %q", answer)
	assert.Equal(t, "", open.do(t, "PING"), "the session of the old password is still open")
}
