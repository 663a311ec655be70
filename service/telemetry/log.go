package telemetry

import (
	"context"
	"log/slog"
	"strconv"
)

// dbKeys are the attributes by which log lines name a database: its uid
// under the name each package gives it.
var dbKeys = []string{"uid", "destination", "database"}

// LogHandler adds the name of a database to every log line that names it by
// uid: the first such attribute gets "name", the others "<key>_name" (a line
// about a destination and its source database, say). Lines that already
// carry a name are left as they are.
type LogHandler struct {
	next  slog.Handler
	names *Names
	// present are the keys of attributes bound with WithAttrs (outside any
	// group), so that a name is not added twice.
	present map[string]bool
	grouped bool // attributes now go into a group: leave them alone
}

// NewLogHandler wraps next.
func NewLogHandler(next slog.Handler, names *Names) *LogHandler {
	return &LogHandler{next: next, names: names, present: map[string]bool{}}
}

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.grouped {
		return h.next.Handle(ctx, r)
	}
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	if extra := h.namesFor(attrs, h.present); len(extra) > 0 {
		r = r.Clone()
		r.AddAttrs(extra...)
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h.grouped {
		return &LogHandler{next: h.next.WithAttrs(attrs), names: h.names, present: h.present, grouped: true}
	}
	extra := h.namesFor(attrs, h.present)
	present := make(map[string]bool, len(h.present)+len(attrs)+len(extra))
	for k := range h.present {
		present[k] = true
	}
	for _, a := range append(attrs, extra...) {
		present[a.Key] = true
	}
	return &LogHandler{next: h.next.WithAttrs(append(attrs, extra...)), names: h.names, present: present}
}

// WithGroup implements slog.Handler.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{next: h.next.WithGroup(name), names: h.names, present: h.present, grouped: true}
}

// namesFor returns the name attributes that attrs call for, given the keys
// already on the line.
func (h *LogHandler) namesFor(attrs []slog.Attr, present map[string]bool) []slog.Attr {
	has := func(key string) bool {
		if present[key] {
			return true
		}
		for _, a := range attrs {
			if a.Key == key {
				return true
			}
		}
		return false
	}
	// The first database on the line is the one it is about: it gets
	// "name", unless the line has one already; any other gets "<key>_name".
	first := !h.boundDB()
	var extra []slog.Attr
	for _, a := range attrs {
		if !isDBKey(a.Key) {
			continue
		}
		key := a.Key + "_name"
		if first {
			first, key = false, "name"
		}
		if has(key) {
			continue
		}
		name, ok := h.names.lookup(uidString(a.Value))
		if !ok {
			continue
		}
		extra = append(extra, slog.String(key, name))
		present = with(present, key)
	}
	return extra
}

// boundDB reports whether a database attribute was bound with WithAttrs.
func (h *LogHandler) boundDB() bool {
	for _, k := range dbKeys {
		if h.present[k] {
			return true
		}
	}
	return false
}

func with(m map[string]bool, key string) map[string]bool {
	c := make(map[string]bool, len(m)+1)
	for k := range m {
		c[k] = true
	}
	c[key] = true
	return c
}

func isDBKey(k string) bool {
	for _, d := range dbKeys {
		if k == d {
			return true
		}
	}
	return false
}

func uidString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindInt64:
		return strconv.FormatInt(v.Int64(), 10)
	case slog.KindUint64:
		return strconv.FormatUint(v.Uint64(), 10)
	case slog.KindString:
		return v.String()
	}
	return ""
}
