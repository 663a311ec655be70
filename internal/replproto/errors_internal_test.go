package replproto

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

func TestCertRejectionClassified(t *testing.T) {
	// What crypto/tls returns when the source refuses the certificate
	// after the handshake (TLS 1.3): an alert in a "remote error".
	remote := &net.OpError{Op: "remote error", Err: errors.New(tls.AlertError(42).Error())}
	e := ioError("PING", remote)
	assert.ErrorIs(t, e, ErrTLS)
	assert.ErrorIs(t, e, ErrClientCertRejected)
	assert.ErrorIs(t, tlsError(tls.AlertError(116)), ErrClientCertRejected)
	assert.ErrorIs(t, tlsError(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ErrNotTLS)
	assert.NotErrorIs(t, ioError("PING", &net.OpError{Op: "read", Err: errors.New("connection reset")}), ErrClientCertRejected)
}

// A cause that wraps the kind, as the RESP parser's protocol errors do,
// names the kind once.
func TestAnErrorNamesItsKindOnce(t *testing.T) {
	err := &Error{Op: "stream", Kind: ErrProtocol, Err: fmt.Errorf("%w: array length 3000000 exceeds limit", resp.ErrProtocol)}
	assert.Equal(t, "replproto: stream: resp: protocol error: array length 3000000 exceeds limit", err.Error())
	assert.ErrorIs(t, err, ErrProtocol)
}
