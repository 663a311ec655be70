package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

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

// inSource wraps the validator of an attribute of a `source` element. The
// framework names such an attribute by the whole element's value
// (source[Value({"address":"...",...})].compression), and the validators of
// terraform-plugin-framework-validators print that name in their messages:
// an address given a URL with its password by mistake, from a sensitive
// variable, would be shown. The messages name the source by its address
// when that is a valid host:port (which holds no secret), and show no value.
func inSource(v validator.Int64) validator.Int64 { return inSourceInt64{v} }

type inSourceInt64 struct{ inner validator.Int64 }

func (v inSourceInt64) Description(ctx context.Context) string { return v.inner.Description(ctx) }

func (v inSourceInt64) MarkdownDescription(ctx context.Context) string {
	return v.inner.MarkdownDescription(ctx)
}

func (v inSourceInt64) ValidateInt64(ctx context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	var inner validator.Int64Response
	v.inner.ValidateInt64(ctx, req, &inner)
	resp.Diagnostics.Append(withoutElementValue(inner.Diagnostics, req.Path)...)
}

// inSourceString is inSource for a string attribute; it also leaves out the
// value refused, as noEcho does.
func inSourceString(v validator.String) validator.String { return inSourceStringValidator{noEcho(v)} }

type inSourceStringValidator struct{ inner validator.String }

func (v inSourceStringValidator) Description(ctx context.Context) string {
	return v.inner.Description(ctx)
}

func (v inSourceStringValidator) MarkdownDescription(ctx context.Context) string {
	return v.inner.MarkdownDescription(ctx)
}

func (v inSourceStringValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	var inner validator.StringResponse
	v.inner.ValidateString(ctx, req, &inner)
	resp.Diagnostics.Append(withoutElementValue(inner.Diagnostics, req.Path)...)
}

// certificateInSource is pemCertificate for server_cert, as inSourceString
// reports it, its messages naming the source (pemCertificate's own name no
// attribute: with several sources, which one would not be said).
func certificateInSource() validator.String { return inSourceString(namedCertificateValidator{}) }

type namedCertificateValidator struct{ pemCertificateValidator }

func (namedCertificateValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := checkPEMCertificate(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid certificate", req.Path.String()+": "+err.Error())
	}
}

// withoutElementValue rewrites diagnostics about the attribute at p so that
// their text names it as sourceAttributeName does, not by p, and attaches
// them to the set itself: Terraform logs the path of a diagnostic, element
// value included (it points at the same lines of the configuration).
func withoutElementValue(in diag.Diagnostics, p path.Path) diag.Diagnostics {
	full, safe := p.String(), sourceAttributeName(p)
	set := p
	for i, s := range p.Steps() {
		if _, ok := s.(path.PathStepElementKeyValue); ok {
			set = path.Empty()
			for _, prefix := range p.Steps()[:i] {
				if a, ok := prefix.(path.PathStepAttributeName); ok {
					set = set.AtName(string(a))
				}
			}
			break
		}
	}
	var out diag.Diagnostics
	for _, d := range in {
		summary := strings.ReplaceAll(d.Summary(), full, safe)
		detail := strings.ReplaceAll(d.Detail(), full, safe)
		_, withPath := d.(diag.DiagnosticWithPath)
		switch {
		case withPath && d.Severity() == diag.SeverityError:
			out.AddAttributeError(set, summary, detail)
		case withPath:
			out.AddAttributeWarning(set, summary, detail)
		case d.Severity() == diag.SeverityError:
			out.AddError(summary, detail)
		default:
			out.AddWarning(summary, detail)
		}
	}
	return out
}

// sourceAttributeName names the attribute at p, of an element of a set of
// objects (source[...].compression), without the element's value:
// `compression of the source "10.0.0.5:6379"`, or `compression of a source`
// when the element's address is not a valid host:port (it may be a secret).
func sourceAttributeName(p path.Path) string {
	steps := p.Steps()
	name := p.String()
	if last, _ := steps.LastStep(); last != nil {
		if a, ok := last.(path.PathStepAttributeName); ok {
			name = string(a)
		}
	}
	for _, s := range steps {
		elem, ok := s.(path.PathStepElementKeyValue)
		if !ok {
			continue
		}
		obj, ok := elem.Value.(types.Object)
		if !ok {
			break
		}
		addr, ok := obj.Attributes()["address"].(types.String)
		if !ok || addr.IsNull() || addr.IsUnknown() {
			break
		}
		if c, err := canonicalAddress(addr.ValueString()); err == nil && c == addr.ValueString() {
			return fmt.Sprintf("%s of the source %q", name, c)
		}
		break
	}
	return name + " of a source"
}
