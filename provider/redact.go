package provider

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// Messages about configuration values never show a value that may be a
// secret: a value given through a sensitive variable reaches the provider
// as a plain string, and what the provider writes in a diagnostic or a log
// is printed as it is. A URL is shown without its credentials, and a value
// that does not parse (a password given where an address or a URL was
// expected, say) is not shown at all.

// notShown stands for a value that a message does not show.
const notShown = "(the value is not shown: it does not parse, and may be a secret)"

// redactedURL returns a URL-like value with its credentials hidden, as
// scheme://[user:]xxxxx@host:port, and whether s is URL-like enough to be
// shown that way: a scheme, a host and a numeric port. Anything after the
// port (a path, a query) is left out: it may hold a secret too.
func redactedURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	if _, err := strconv.Atoi(u.Port()); err != nil || strings.ContainsAny(u.Hostname(), " @\t\r\n") {
		return "", false
	}
	out := u.Scheme + "://"
	if u.User != nil {
		if _, has := u.User.Password(); has {
			out += u.User.Username() + ":"
		}
		out += "xxxxx@"
	}
	out += u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		out += "/..."
	}
	return out, true
}

// shownValue is how a message shows a value that failed a check: a URL
// quoted without its credentials, anything else not at all.
func shownValue(s string) string {
	if r, ok := redactedURL(s); ok {
		return strconv.Quote(r)
	}
	return notShown
}

// sourceURLError says why uri is not a valid source URL, showing it only
// as shownValue does (redisurl's own errors quote a value that is not a URL
// as it is).
func sourceURLError(uri string, err error) error {
	why := "it does not parse"
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, redisurl.ErrInvalid.Error()+" "); ok {
		if q, qerr := strconv.QuotedPrefix(rest); qerr == nil {
			if w, ok := strings.CutPrefix(rest[len(q):], ": "); ok && w != "" {
				why = w
			}
		}
	}
	return errors.New("invalid source URL " + shownValue(uri) + ": " + why)
}

// noEcho wraps a string validator of terraform-plugin-framework-validators,
// whose messages end with ", got: <the value>", so that its diagnostics do
// not show the value.
func noEcho(v validator.String) validator.String { return noEchoValidator{v} }

type noEchoValidator struct{ inner validator.String }

func (v noEchoValidator) Description(ctx context.Context) string { return v.inner.Description(ctx) }

func (v noEchoValidator) MarkdownDescription(ctx context.Context) string {
	return v.inner.MarkdownDescription(ctx)
}

func (v noEchoValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	var inner validator.StringResponse
	v.inner.ValidateString(ctx, req, &inner)
	for _, d := range inner.Diagnostics {
		detail := d.Detail()
		if i := strings.LastIndex(detail, ", got: "); i >= 0 {
			detail = detail[:i] + "."
		}
		if dp, ok := d.(diag.DiagnosticWithPath); ok {
			if d.Severity() == diag.SeverityError {
				resp.Diagnostics.AddAttributeError(dp.Path(), d.Summary(), detail)
			} else {
				resp.Diagnostics.AddAttributeWarning(dp.Path(), d.Summary(), detail)
			}
			continue
		}
		if d.Severity() == diag.SeverityError {
			resp.Diagnostics.AddError(d.Summary(), detail)
		} else {
			resp.Diagnostics.AddWarning(d.Summary(), detail)
		}
	}
}
