package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// logLine logs once through a fresh NewLogger and returns the decoded line
// and its raw text.
func logLine(t *testing.T, log func(*slog.Logger)) (map[string]any, string) {
	t.Helper()
	var buf bytes.Buffer
	log(NewLogger(&buf, slog.LevelDebug))
	raw := buf.String()
	if strings.Count(raw, "\n") != 1 {
		t.Fatalf("want exactly one JSON line, got %q", raw)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(raw), &line); err != nil {
		t.Fatalf("decode log line %q: %v", raw, err)
	}
	return line, raw
}

// lookup follows a path of keys through nested JSON objects.
func lookup(t *testing.T, line map[string]any, path ...string) any {
	t.Helper()
	var cur any = line
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("at %q: %v is not an object (line %v)", k, cur, line)
		}
		if cur, ok = obj[k]; !ok {
			t.Fatalf("no key %q in %v (line %v)", k, obj, line)
		}
	}
	return cur
}

// leakyValuer resolves to a group holding a token, to check that values
// are redacted after LogValuer resolution.
type leakyValuer struct{}

func (leakyValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_token", rawToken), slog.String("org", "acme"))
}

func TestNewLoggerRedactsSensitiveAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(*slog.Logger)
		path []string // where the redacted value must be
	}{
		{"token", func(l *slog.Logger) { l.Info("m", "token", rawToken) }, []string{"token"}},
		{"api_token", func(l *slog.Logger) { l.Info("m", "api_token", rawToken) }, []string{"api_token"}},
		{"apikey upper", func(l *slog.Logger) { l.Info("m", "APIKEY", rawToken) }, []string{"APIKEY"}},
		{"api_key", func(l *slog.Logger) { l.Info("m", "api_key", rawToken) }, []string{"api_key"}},
		{"secret", func(l *slog.Logger) { l.Info("m", "Secret", rawToken) }, []string{"Secret"}},
		{"password", func(l *slog.Logger) { l.Info("m", "password", rawToken) }, []string{"password"}},
		{"authorization", func(l *slog.Logger) { l.Info("m", "Authorization", rawToken) }, []string{"Authorization"}},
		{"cookie", func(l *slog.Logger) { l.Info("m", "cookie", rawToken) }, []string{"cookie"}},
		{"webhook_secret", func(l *slog.Logger) { l.Info("m", "webhook_secret", rawToken) }, []string{"webhook_secret"}},
		{"private_key", func(l *slog.Logger) { l.Info("m", "private_key", rawToken) }, []string{"private_key"}},
		{"non-string value", func(l *slog.Logger) { l.Info("m", "token", []byte(rawToken)) }, []string{"token"}},
		{"ssws value under harmless key", func(l *slog.Logger) { l.Info("m", "header", "SSWS "+rawToken) }, []string{"header"}},
		{"secret type under harmless key", func(l *slog.Logger) { l.Info("m", "value", NewSecret(rawToken)) }, []string{"value"}},
		{"slog.Group", func(l *slog.Logger) {
			l.Info("m", slog.Group("okta", slog.String("domain", "acme"), slog.String("token", rawToken)))
		}, []string{"okta", "token"}},
		{"nested slog.Group", func(l *slog.Logger) {
			l.Info("m", slog.Group("request", slog.Group("headers", slog.String("Authorization", rawToken))))
		}, []string{"request", "headers", "Authorization"}},
		{"WithGroup", func(l *slog.Logger) {
			l.WithGroup("okta").WithGroup("client").Info("m", "api_key", rawToken)
		}, []string{"okta", "client", "api_key"}},
		{"WithGroup then slog.Group", func(l *slog.Logger) {
			l.WithGroup("a").Info("m", slog.Group("b", slog.Group("c", "password", rawToken)))
		}, []string{"a", "b", "c", "password"}},
		{"WithAttrs", func(l *slog.Logger) { l.With("token", rawToken).Info("m") }, []string{"token"}},
		{"WithAttrs inside WithGroup", func(l *slog.Logger) {
			l.WithGroup("g").With("secret", rawToken).Info("m", "x", 1)
		}, []string{"g", "secret"}},
		{"sensitive group name hides members", func(l *slog.Logger) {
			l.Info("m", slog.Group("credentials", slog.String("value", rawToken)))
		}, []string{"credentials"}},
		{"sensitive WithGroup name hides members", func(l *slog.Logger) {
			l.WithGroup("password").Info("m", "value", rawToken)
		}, []string{"password", "value"}},
		{"LogValuer resolved before redaction", func(l *slog.Logger) { l.Info("m", "org", leakyValuer{}) }, []string{"org", "api_token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line, raw := logLine(t, tc.log)
			if strings.Contains(raw, rawToken) {
				t.Fatalf("log line leaks the secret: %s", raw)
			}
			if got := lookup(t, line, tc.path...); got != Redacted {
				t.Errorf("value at %v = %v, want %q", tc.path, got, Redacted)
			}
		})
	}
}

func TestNewLoggerScrubsFreeText(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://admin:" + rawToken + "@acme.okta.com/api/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Authorization": {"SSWS " + rawToken}, "Accept": {"application/json"}}
	line, raw := logLine(t, func(l *slog.Logger) {
		l.Error("request sent with SSWS "+rawToken+" failed",
			"err", fmt.Errorf("okta: 401 for header Authorization: SSWS %s: %w", rawToken, errors.New("unauthorized")),
			"url", u,
			"headers", header,
			"labels", map[string]string{"cookie": rawToken, "team": "iam"},
			"secret_version", 3,
		)
	})
	if strings.Contains(raw, rawToken) {
		t.Fatalf("log line leaks the secret: %s", raw)
	}
	if got := lookup(t, line, "msg"); got != "request sent with SSWS [REDACTED] failed" {
		t.Errorf("msg = %v", got)
	}
	if got := lookup(t, line, "err"); got != "okta: 401 for header Authorization: SSWS [REDACTED]: unauthorized" {
		t.Errorf("err = %v", got)
	}
	if got := lookup(t, line, "headers", "Accept"); fmt.Sprint(got) != "[application/json]" {
		t.Errorf("harmless header = %v, want it kept", got)
	}
	if got := lookup(t, line, "labels", "team"); got != "iam" {
		t.Errorf("harmless map entry = %v, want it kept", got)
	}
	if got := lookup(t, line, "secret_version"); got != float64(3) {
		t.Errorf("secret_version = %v, want 3 (not a secret)", got)
	}
}

func TestNewLoggerKeepsOrdinaryAttributes(t *testing.T) {
	t.Parallel()
	line, _ := logLine(t, func(l *slog.Logger) {
		l.With("service", "sync").WithGroup("run").Info("done", "connector", "c1", slog.Group("stats", "users", 12))
	})
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"msg"}, "done"},
		{[]string{"level"}, "INFO"},
		{[]string{"service"}, "sync"},
		{[]string{"run", "connector"}, "c1"},
		{[]string{"run", "stats", "users"}, float64(12)},
	}
	for _, c := range checks {
		if got := lookup(t, line, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
}

func TestNewLoggerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()

	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"plain", func(l *slog.Logger) { l.InfoContext(ctx, "m") }},
		{"under WithGroup", func(l *slog.Logger) { l.WithGroup("g").InfoContext(ctx, "m", "k", "v") }},
		{"under With", func(l *slog.Logger) { l.With("k", "v").WarnContext(ctx, "m") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line, _ := logLine(t, tc.log)
			if got := line[TraceIDKey]; got != sc.TraceID().String() {
				t.Errorf("%s = %v, want %s", TraceIDKey, got, sc.TraceID())
			}
			if got := line[SpanIDKey]; got != sc.SpanID().String() {
				t.Errorf("%s = %v, want %s", SpanIDKey, got, sc.SpanID())
			}
		})
	}

	t.Run("no span", func(t *testing.T) {
		t.Parallel()
		line, _ := logLine(t, func(l *slog.Logger) { l.InfoContext(context.Background(), "m") })
		if _, ok := line[TraceIDKey]; ok {
			t.Errorf("line without a span has %s: %v", TraceIDKey, line)
		}
	})
}

func TestNewLoggerLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelWarn)
	l.Info("dropped")
	l.Warn("kept")
	if out := buf.String(); strings.Contains(out, "dropped") || !strings.Contains(out, "kept") {
		t.Errorf("output %q: want only the warning", out)
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"DEBUG", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{" Info ", slog.LevelInfo},
		{"", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"warning", slog.LevelWarn},
		{"error", slog.LevelError},
	}
	for _, tc := range tests {
		got, err := ParseLevel(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", tc.in, got, err, tc.want)
		}
	}

	for _, bad := range []string{"verbose", "info+2", "3", "trace"} {
		_, err := ParseLevel(bad)
		if err == nil {
			t.Errorf("ParseLevel(%q) succeeded, want an error", bad)
			continue
		}
		if !errors.Is(err, ErrUnknownLevel) {
			t.Errorf("ParseLevel(%q) error %v does not wrap ErrUnknownLevel", bad, err)
		}
		msg := err.Error()
		for _, want := range []string{fmt.Sprintf("%q", bad), "debug", "info", "warn", "error"} {
			if !strings.Contains(msg, want) {
				t.Errorf("ParseLevel(%q) error %q does not mention %s", bad, msg, want)
			}
		}
	}
}

func TestLoggerContext(t *testing.T) {
	t.Parallel()
	if Logger(context.Background()) == nil {
		t.Fatal("Logger on an empty context returned nil")
	}
	// The fallback discards; it must not panic or write anywhere.
	Logger(context.Background()).Error("nobody hears this")

	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelInfo)
	ctx := WithLogger(context.Background(), l)
	if got := Logger(ctx); got != l {
		t.Errorf("Logger(WithLogger(ctx, l)) = %p, want %p", got, l)
	}
	if got := WithLogger(ctx, nil); Logger(got) != l {
		t.Error("WithLogger(ctx, nil) replaced the stored logger")
	}
}
