// Package redisurl parses and redacts the redis:// URLs that name a Replica Of
// source. Credentials in these URLs are secrets: everything that prints a URL
// goes through Redact.
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Source is a parsed source URL.
type Source struct {
	Host     string
	Port     int
	Username string // empty means the "default" user (AUTH <password>)
	Password string
	// TLS is set by the rediss:// scheme.
	TLS bool
}

// Addr is host:port, suitable for net.Dial.
func (s Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Key is the source's identity: its address with the host in one spelling,
// a name in lower case (names are not case-sensitive) and an IP address in
// its canonical form ("[0:0::1]" and "[::1]", "[::ffff:127.0.0.1]" and
// "127.0.0.1" are one source). Two URLs with the same Key name the same
// server, whose writes two syncers would apply twice.
func (s Source) Key() string {
	host := strings.ToLower(s.Host)
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// String is the URL without its password.
func (s Source) String() string {
	scheme := "redis"
	if s.TLS {
		scheme = "rediss"
	}
	user := ""
	switch {
	case s.Password != "":
		user = url.PathEscape(s.Username) + ":" + redacted + "@"
	case s.Username != "":
		user = url.PathEscape(s.Username) + "@"
	}
	return scheme + "://" + user + s.Addr()
}

// URL is the URL with its credentials, URL-encoded.
func (s Source) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr()}
	if s.TLS {
		u.Scheme = "rediss"
	}
	if s.Password != "" {
		u.User = url.UserPassword(s.Username, s.Password)
	} else if s.Username != "" {
		u.User = url.User(s.Username)
	}
	return u.String()
}

const redacted = "xxxxx"

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid source URL")

// Parse reads redis://[user][:password]@host:port or redis://host:port.
// Errors never contain the password: they describe the URL in redacted form.
func Parse(raw string) (Source, error) {
	fail := func(why string) (Source, error) {
		return Source{}, fmt.Errorf("%w %q: %s", ErrInvalid, Redact(raw), why)
	}
	if strings.TrimSpace(raw) != raw || raw == "" {
		return fail("empty or surrounded by spaces")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail("not a URL")
	}
	var s Source
	switch u.Scheme {
	case "redis":
	case "rediss":
		s.TLS = true
	default:
		return fail("the scheme must be redis:// or rediss://")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fail("only redis://[user:password@]host:port is allowed (no path, query or fragment)")
	}
	host, portText := u.Hostname(), u.Port()
	if host == "" {
		return fail("a host is required")
	}
	if addr, zone, ok := strings.Cut(host, "%"); ok && net.ParseIP(addr) != nil {
		// A link-local address needs its zone to be reached, and the
		// service's source URLs carry none (nor do Redis's own).
		return fail(fmt.Sprintf("an IPv6 address with a zone (%%%s) is not supported: give an address that needs no zone, or a host name", zoneText(zone)))
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return fail("the host is not a name or an IP address")
	}
	if !ValidHost(host) {
		// A percent-encoded host decodes to any bytes: not valid UTF-8,
		// quotes, angle brackets. No resolver finds such a name, and the
		// address goes into metrics' labels, logs and the console.
		why := "the host is not a name (letters, digits, '-', '_' and '.') or an IP address"
		if utf8.ValidString(host) && strings.ContainsFunc(host, func(r rune) bool { return r > unicode.MaxASCII && unicode.IsLetter(r) }) {
			why += ": a name in letters beyond ASCII is given in its xn-- form (IDNA)"
		}
		return fail(why)
	}
	if len(host) > 253 {
		return fail("the host name is longer than 253 characters, which DNS allows")
	}
	if portText == "" {
		return fail("a port is required")
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return fail("the port must be between 1 and 65535")
	}
	s.Host, s.Port = host, port
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		if s.Password == "" && s.Username != "" {
			// redis://secret@host is how many tools spell a password-only URL.
			s.Password, s.Username = s.Username, ""
		}
	}
	if strings.ContainsAny(s.Username, " \r\n") {
		return fail("the user name may not contain spaces or line breaks")
	}
	if strings.ContainsAny(s.Password, "\r\n") {
		return fail("the password may not contain line breaks")
	}
	return s, nil
}

// zoneText is a zone as an error may show it: an interface's name, or
// nothing of bytes that are no name.
func zoneText(zone string) string {
	if zone == "" || !isHostName(zone) {
		return "..."
	}
	return zone
}

// ValidHost reports whether host is an IP address or spelled as a DNS
// name: ASCII letters, digits, '-', '_' and '.', what Go's resolver looks up.
func ValidHost(host string) bool {
	return net.ParseIP(host) != nil || isHostName(host)
}

func isHostName(host string) bool {
	for _, c := range []byte(host) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// Redact returns raw with any password replaced, also when raw does not
// parse. A URL that does not parse as plain redis://[user:password@]host:port
// may hold its password anywhere (an unencoded '#', '?' or '/' in it makes
// the rest parse as a fragment, a query or a path): everything before the
// last '@' is hidden, and so are a path, query or fragment. Text that is
// not a URL at all may be a password given by mistake: it is hidden unless
// it is a host:port.
func Redact(raw string) string {
	if s, ok := redactPlain(raw); ok {
		return s
	}
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	prefix := ""
	if !hasScheme {
		rest = raw
	} else if lower := strings.ToLower(scheme); lower == "redis" || lower == "rediss" {
		prefix = scheme + "://"
	} else {
		prefix = redacted + "://"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return prefix + redacted + "@" + hostPart(rest[at+1:])
	}
	if hasScheme {
		// No '@': what follows the scheme is shown only if it is a
		// host:port ("redis://:secret" and "redis://user:secret" are not).
		if h := hostPart(rest); isHostPort(strings.TrimSuffix(h, "/"+redacted)) {
			return prefix + h
		}
		return prefix + redacted
	}
	if isHostPort(raw) {
		return raw
	}
	if strings.TrimSpace(raw) == "" {
		return raw
	}
	return redacted
}

// isHostPort says whether s is a host (a name or an address) and a port
// from 1 to 65535.
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, " \t\r\n:@") && net.ParseIP(host) == nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 1 && p <= 65535
}

// redactPlain redacts a URL that parses as plain
// scheme://[user[:password]@]host[:port][/]; ok is false for anything else.
func redactPlain(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery ||
		(u.Path != "" && u.Path != "/") || strings.ContainsAny(raw, "#?") || strings.Contains(raw, "@") != (u.User != nil) {
		return "", false
	}
	if u.Port() != "" && !isHostPort(u.Host) {
		return "", false // redis://user:12345678 is a user and a password
	}
	if lower := strings.ToLower(u.Scheme); lower != "redis" && lower != "rediss" {
		u.Scheme = redacted // not a scheme: perhaps part of a password
	}
	if u.User != nil {
		if pw, has := u.User.Password(); has && pw != "" {
			u.User = url.UserPassword(u.User.Username(), redacted)
		} else {
			// A lone user-info part may be a password (redis://secret@host).
			u.User = url.User(redacted)
		}
	}
	return u.String(), true
}

// hostPart is what of s (what follows the user-info part) names the host:
// up to a path, query or fragment, which are hidden.
func hostPart(s string) string {
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		return s[:i] + "/" + redacted
	}
	return s
}
