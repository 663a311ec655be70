package replproto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// Error kinds. Every error returned by this package is an *Error whose Kind
// is one of these, so callers can decide between retrying and stopping with
// errors.Is(err, ErrAuth) etc., or simply with IsRetryable.
var (
	// ErrAuth: the source rejected our credentials or lacks permissions for
	// the replication commands (WRONGPASS, NOAUTH, NOPERM). Retrying with
	// the same configuration will not help.
	ErrAuth = errors.New("authentication failed")
	// ErrConn: the connection failed, timed out or was closed (including a
	// stream cut in the middle of a value). Retryable.
	ErrConn = errors.New("connection error")
	// ErrSource: the source answered with an error it may recover from:
	// -LOADING, -NOMASTERLINK, -MASTERDOWN, -ERR ... Retryable with backoff.
	ErrSource = errors.New("source refused")
	// ErrTLS: the TLS handshake failed on certificates or protocol
	// configuration. Retrying with the same configuration will not help.
	ErrTLS = errors.New("TLS error")
	// ErrProtocol: the source sent something that is not valid for the
	// protocol state (corrupt stream, unexpected reply). The same value as
	// resp.ErrProtocol. The connection is unusable; a new one, possibly with
	// a full resync, is the only way forward.
	ErrProtocol = resp.ErrProtocol
	// ErrState: the caller used the Conn out of order (e.g. ReadCommand
	// before the RDB was consumed). A bug in the caller, not retryable.
	ErrState = errors.New("invalid use of connection")
	// ErrRDBNotConsumed is wrapped by RDBReader.Close when the caller had
	// not read the whole payload (the rest was drained and discarded).
	ErrRDBNotConsumed = errors.New("RDB payload not fully consumed")

	// Causes of ErrTLS errors that a user can act on, wrapped beside it.
	//
	// ErrClientCertRejected: the source refused the client certificate
	// (TLS alert bad_certificate or certificate_required).
	ErrClientCertRejected = errors.New("the source refused the client certificate")
	// ErrNotTLS: what the source answered is not TLS.
	ErrNotTLS = errors.New("the source does not speak TLS")
	// ErrNoTLSAnswer is wrapped beside ErrConn when the source accepted
	// the connection but sent nothing back to our TLS hello before the
	// dial timeout: what a plain-text Redis port does (it waits for the
	// end of a line that never comes).
	ErrNoTLSAnswer = errors.New("the source sent nothing in answer to the TLS handshake")
	// ErrClosedAtFirstCommand is wrapped beside ErrConn when a source
	// reached in plain text closes the connection at the first command,
	// without a reply: what a TLS port does (Redis resets a connection
	// whose first bytes are not TLS).
	ErrClosedAtFirstCommand = errors.New("the source closed the connection at the first command, without a reply")
)

// Error describes a failed step of the replication protocol.
type Error struct {
	Op    string // the step: "dial", "PING", "AUTH", "PSYNC", "RDB", "stream", "ACK", ...
	Kind  error  // one of the Err* kinds above
	Reply string // the source's error reply, if it sent one (credentials redacted)
	Err   error  // the underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("replproto: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Reply != "" {
		b.WriteString(": source replied -")
		b.WriteString(e.Reply)
	}
	if e.Err != nil && e.Err != e.Kind {
		// A cause that wraps the kind (a resp parser's protocol error)
		// says it once, not twice.
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), e.Kind.Error()+": "))
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IsRetryable reports whether reconnecting later may succeed: connection
// failures and transient refusals by the source. Authentication, TLS
// configuration, protocol corruption and misuse are not retryable, and
// neither is a cancelled context (the caller asked to stop).
func IsRetryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, ErrConn) || errors.Is(err, ErrSource)
}

// ioError classifies an error from reading or writing the connection.
func ioError(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	kind := ErrConn
	switch {
	case certRejected(err):
		// With TLS 1.3 the source checks the client certificate after the
		// handshake: its refusal comes with the first read.
		kind, err = ErrTLS, errors.Join(ErrClientCertRejected, err)
	case errors.Is(err, resp.ErrProtocol), errors.Is(err, replcompress.ErrCorrupt):
		kind = ErrProtocol
	case errors.Is(err, io.EOF):
		// The source closed the link between two values.
		err = io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errReadTimeout
	}
	return &Error{Op: op, Kind: kind, Err: err}
}

var errReadTimeout = errors.New("i/o timeout (no data from source within the read timeout)")

// TLS alerts (RFC 8446, 6.2) that say the peer refused our certificate.
const (
	alertBadCertificate      tls.AlertError = 42
	alertCertificateRequired tls.AlertError = 116
)

// certRejected says whether err is the peer's TLS alert refusing our
// certificate. Over TCP, crypto/tls reports a received alert as a
// net.OpError "remote error" around an unexported type: its text is all
// there is to tell which alert it is.
func certRejected(err error) bool {
	var aerr tls.AlertError
	if errors.As(err, &aerr) {
		return aerr == alertBadCertificate || aerr == alertCertificateRequired
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "remote error" && oerr.Err != nil {
		msg := oerr.Err.Error()
		return msg == alertBadCertificate.Error() || msg == alertCertificateRequired.Error()
	}
	return false
}

// tlsError classifies a TLS handshake failure: certificate and protocol
// mismatches are configuration problems, anything else is the network.
func tlsError(err error) *Error {
	var (
		verr  *tls.CertificateVerificationError
		aerr  tls.AlertError
		uaerr x509.UnknownAuthorityError
		herr  x509.HostnameError
		cerr  x509.CertificateInvalidError
		rerr  tls.RecordHeaderError
	)
	switch {
	case certRejected(err):
		return &Error{Op: "TLS handshake", Kind: ErrTLS, Err: errors.Join(ErrClientCertRejected, err)}
	case errors.As(err, &rerr):
		return &Error{Op: "TLS handshake", Kind: ErrTLS, Err: errors.Join(ErrNotTLS, err)}
	}
	if errors.As(err, &verr) || errors.As(err, &aerr) || errors.As(err, &uaerr) ||
		errors.As(err, &herr) || errors.As(err, &cerr) {
		return &Error{Op: "TLS handshake", Kind: ErrTLS, Err: err}
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Op: "TLS handshake", Kind: ErrConn, Err: err}
	}
	// Unknown handshake failures (e.g. no common cipher suite) are
	// configuration problems more often than transient ones.
	return &Error{Op: "TLS handshake", Kind: ErrTLS, Err: err}
}

// authCodes are the error codes Redis uses for missing or insufficient
// credentials.
var authCodes = map[string]bool{"NOAUTH": true, "WRONGPASS": true, "NOPERM": true}

// replyError classifies an error reply to step op.
func (c *Conn) replyError(op string, se *resp.ServerError) *Error {
	kind := ErrSource
	if authCodes[se.Code()] {
		kind = ErrAuth
	}
	return &Error{Op: op, Kind: kind, Reply: c.redact(se.Msg)}
}

// redact removes the password from text coming back from the source. Redis
// does not echo AUTH arguments, but a proxy in between might, and an error
// message is no place for a secret.
func (c *Conn) redact(s string) string {
	if c.opts.Password != "" {
		s = strings.ReplaceAll(s, c.opts.Password, "<redacted>")
	}
	return s
}
