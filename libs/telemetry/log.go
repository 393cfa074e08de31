package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the attributes that tie a log line to its trace.
const (
	// TraceIDKey is the attribute key under which log lines carry the W3C
	// trace id of the span in the logging context.
	TraceIDKey = "trace_id"
	// SpanIDKey is the attribute key under which log lines carry the span id
	// of the span in the logging context.
	SpanIDKey = "span_id"
)

// NewLogger returns a logger that writes one JSON object per line to w,
// drops records below level, redacts secrets (see NewHandler) and adds
// trace_id and span_id when the context passed to a *Context method
// (InfoContext, ErrorContext, ...) holds a valid span.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(NewHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// NewHandler wraps inner so that every record it receives is safe and
// correlated:
//   - the value of any attribute whose key IsSensitiveKey, at any group
//     depth, and everything inside a group with such a key, becomes Redacted;
//   - a string value (and the message) that is an authorization value such
//     as "SSWS <token>" becomes Redacted, and one that merely contains such a
//     value loses the credential;
//   - errors, URLs and header maps (http.Header, map[string]string,
//     map[string][]string) are redacted the same way;
//   - trace_id and span_id of the span in the record's context are added at
//     the top level, even under WithGroup.
//
// The redaction is done here rather than in inner's ReplaceAttr so that it
// holds for any inner handler (JSON for services, text for the CLI).
func NewHandler(inner slog.Handler) slog.Handler {
	return &handler{inner: inner}
}

// handler implements NewHandler. Groups opened with WithGroup are kept here
// instead of being passed to inner, because otherwise inner would nest the
// trace attributes added in Handle inside the open group.
type handler struct {
	inner  slog.Handler
	groups []groupFrame
}

// groupFrame is one WithGroup call and the attributes added inside it.
type groupFrame struct {
	name  string
	attrs []slog.Attr
}

// Enabled implements slog.Handler.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// WithAttrs implements slog.Handler. Attributes are redacted now, once, not
// on every record.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	path := h.groupPath()
	red := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		red = append(red, redactAttr(path, a))
	}
	if len(h.groups) == 0 {
		return &handler{inner: h.inner.WithAttrs(red)}
	}
	groups := slices.Clone(h.groups)
	last := &groups[len(groups)-1]
	last.attrs = append(slices.Clip(last.attrs), red...)
	return &handler{inner: h.inner, groups: groups}
}

// WithGroup implements slog.Handler.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	groups := append(slices.Clip(h.groups), groupFrame{name: name})
	return &handler{inner: h.inner, groups: groups}
}

// Handle implements slog.Handler. It builds a new record rather than adding
// to r, because r may share its attribute storage with other handlers.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, scrubMessage(r.Message), r.PC)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		out.AddAttrs(
			slog.String(TraceIDKey, sc.TraceID().String()),
			slog.String(SpanIDKey, sc.SpanID().String()),
		)
	}
	path := h.groupPath()
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, redactAttr(path, a))
		return true
	})
	// Fold the record's attributes into the open groups, innermost first.
	for i := len(h.groups) - 1; i >= 0; i-- {
		g := h.groups[i]
		inner := make([]slog.Attr, 0, len(g.attrs)+len(attrs))
		inner = append(append(inner, g.attrs...), attrs...)
		attrs = []slog.Attr{{Key: g.name, Value: slog.GroupValue(inner...)}}
	}
	out.AddAttrs(attrs...)
	if err := h.inner.Handle(ctx, out); err != nil {
		return fmt.Errorf("write log record: %w", err)
	}
	return nil
}

// groupPath returns the names of the open groups, outermost first.
func (h *handler) groupPath() []string {
	path := make([]string, len(h.groups))
	for i, g := range h.groups {
		path[i] = g.name
	}
	return path
}

// scrubMessage keeps a credential out of a log message written by hand.
func scrubMessage(msg string) string {
	if startsWithAuthValue(msg) {
		return Redacted
	}
	return scrubAuthValues(msg)
}

// redactAttr returns a with LogValuers resolved and secrets replaced. groups
// are the names of the enclosing groups; a sensitive one among them (opened
// with WithGroup) hides every value beneath it.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		// A sensitive group name hides the whole group, whatever its
		// members are called ("password": {"value": ...}).
		if a.Key != "" && IsSensitiveKey(a.Key) {
			return slog.String(a.Key, Redacted)
		}
		sub := groups
		if a.Key != "" {
			sub = append(slices.Clip(groups), a.Key)
		}
		members := a.Value.Group()
		red := make([]slog.Attr, 0, len(members))
		for _, m := range members {
			red = append(red, redactAttr(sub, m))
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	}
	if IsSensitiveKey(a.Key) || slices.ContainsFunc(groups, IsSensitiveKey) {
		return slog.String(a.Key, Redacted)
	}
	a.Value = redactValue(a.Value)
	return a
}

// redactValue removes credentials from values whose key looked harmless.
func redactValue(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if startsWithAuthValue(s) {
			return slog.StringValue(Redacted)
		}
		if red := scrubAuthValues(s); red != s {
			return slog.StringValue(red)
		}
		return v
	case slog.KindAny:
		return redactAny(v)
	default:
		return v
	}
}

// redactAny handles the values most likely to carry a credential without a
// telling key: errors from HTTP clients, URLs with a password, and header
// maps logged whole.
func redactAny(v slog.Value) slog.Value {
	switch x := v.Any().(type) {
	case error:
		// Keep the error itself unless its text must change, so handlers
		// that treat errors specially still can.
		msg := x.Error()
		if red := RedactString(msg); red != msg {
			return slog.StringValue(red)
		}
		return v
	case *url.URL:
		if x == nil {
			return v
		}
		return slog.StringValue(scrubAuthValues(x.Redacted()))
	case http.Header:
		return slog.AnyValue(redactMultiMap(x))
	case map[string][]string:
		return slog.AnyValue(redactMultiMap(x))
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, val := range x {
			out[k] = redactString(k, val)
		}
		return slog.AnyValue(out)
	default:
		return v
	}
}

// redactMultiMap returns a redacted copy of a header-like map, keeping its
// type so handlers render it as before.
func redactMultiMap[M ~map[string][]string](m M) M {
	out := make(M, len(m))
	for k, vals := range m {
		red := make([]string, len(vals))
		for i, val := range vals {
			red[i] = redactString(k, val)
		}
		out[k] = red
	}
	return out
}

// redactString applies the key and value rules to one map entry.
func redactString(key, val string) string {
	if IsSensitiveKey(key) || startsWithAuthValue(val) {
		return Redacted
	}
	return scrubAuthValues(val)
}

// loggerKey is the context key for WithLogger; unexported so no other
// package can collide with it.
type loggerKey struct{}

// WithLogger returns a copy of ctx that carries logger. A nil logger leaves
// ctx unchanged.
func WithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	if logger == nil {
		return ctx
	}
	return context.WithValue(ctx, loggerKey{}, logger)
}

// Logger returns the logger stored in ctx by WithLogger. When there is none
// it returns a new logger that discards everything: code can always log
// without a nil check, and nothing falls back to a process-wide logger that
// someone else may have reconfigured.
func Logger(ctx context.Context) *slog.Logger {
	if ctx != nil {
		if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
			return l
		}
	}
	return slog.New(slog.DiscardHandler)
}

// ParseLevel turns a level name from configuration (LOG_LEVEL) into a
// slog.Level. It accepts debug, info, warn (or warning) and error, in any
// case and with surrounding space; an empty string means info, so an unset
// variable gives the usual default.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return slog.LevelInfo, fmt.Errorf("parse log level %q: %w: accepted values are debug, info, warn, error", s, ErrUnknownLevel)
	}
}
