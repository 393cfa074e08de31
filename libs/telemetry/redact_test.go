package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

const rawToken = "00aBcD-okta-token-value-XyZ"

// withSecrets holds secrets the ways real code does: exported, unexported,
// by pointer and inside a nested struct.
type withSecrets struct {
	Name   string
	Token  Secret
	hidden Secret
	Ptr    *Secret
	Inner  struct{ Key Secret }
}

func newWithSecrets() withSecrets {
	s := NewSecret(rawToken)
	w := withSecrets{Name: "acme", Token: s, hidden: s, Ptr: &s}
	w.Inner.Key = s
	return w
}

func TestSecretNeverPrintsThroughFmt(t *testing.T) {
	t.Parallel()
	set := NewSecret(rawToken)
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-20v", "% x", "%#x"}
	for _, verb := range verbs {
		for _, tc := range []struct {
			name string
			arg  any
			want string
		}{
			{"value", set, Redacted},
			{"pointer", &set, Redacted},
			{"unset", Secret{}, NotSet},
			{"empty", NewSecret(""), NotSet},
		} {
			t.Run(verb+"/"+tc.name, func(t *testing.T) {
				got := fmt.Sprintf(verb, tc.arg)
				if strings.Contains(got, rawToken) {
					t.Fatalf("Sprintf(%q) = %q, leaks the secret", verb, got)
				}
				if !strings.Contains(got, tc.want) {
					t.Errorf("Sprintf(%q) = %q, want it to contain %q", verb, got, tc.want)
				}
			})
		}
	}
}

func TestSecretInStructsNeverPrints(t *testing.T) {
	t.Parallel()
	w := newWithSecrets()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for name, arg := range map[string]any{"value": w, "pointer": &w, "slice": []withSecrets{w}, "map": map[string]withSecrets{"k": w}} {
			got := fmt.Sprintf(verb, arg)
			if strings.Contains(got, rawToken) || strings.Contains(got, fmt.Sprintf("%x", rawToken)) {
				t.Errorf("Sprintf(%q, %s) = %q, leaks the secret", verb, name, got)
			}
		}
	}
}

func TestSecretRevealAndIsSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       Secret
		want    string
		wantSet bool
	}{
		{"set", NewSecret(rawToken), rawToken, true},
		{"empty", NewSecret(""), "", false},
		{"zero", Secret{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Reveal(); got != tc.want {
				t.Errorf("Reveal() = %q, want %q", got, tc.want)
			}
			if got := tc.s.IsSet(); got != tc.wantSet {
				t.Errorf("IsSet() = %v, want %v", got, tc.wantSet)
			}
		})
	}
}

func TestSecretJSONAndText(t *testing.T) {
	t.Parallel()
	type config struct {
		Domain  string  `json:"domain"`
		Token   Secret  `json:"token"`
		Missing Secret  `json:"missing"`
		Ptr     *Secret `json:"ptr"`
	}
	s := NewSecret(rawToken)
	got, err := json.Marshal(config{Domain: "acme.okta.com", Token: s, Ptr: &s})
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	want := `{"domain":"acme.okta.com","token":"[REDACTED]","missing":"[NOT SET]","ptr":"[REDACTED]"}`
	if string(got) != want {
		t.Errorf("json.Marshal = %s, want %s", got, want)
	}

	// As a map key, encoding/json goes through MarshalText.
	got, err = json.Marshal(map[Secret]int{s: 1})
	if err != nil {
		t.Fatalf("json.Marshal map: %v", err)
	}
	if strings.Contains(string(got), rawToken) || !strings.Contains(string(got), Redacted) {
		t.Errorf("json.Marshal(map) = %s, want the key redacted", got)
	}
}

func TestSecretThroughStdlibSlog(t *testing.T) {
	t.Parallel()
	handlers := map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		"json": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	}
	for name, newHandler := range handlers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			s := NewSecret(rawToken)
			w := newWithSecrets()
			slog.New(newHandler(&buf)).Info("connect",
				"token", s,
				slog.Any("ptr", &s),
				slog.Any("config", w),
				slog.Group("okta", "token", s),
			)
			out := buf.String()
			if strings.Contains(out, rawToken) {
				t.Fatalf("%s handler output leaks the secret: %s", name, out)
			}
			if !strings.Contains(out, Redacted) {
				t.Errorf("%s handler output %s lacks %s", name, out, Redacted)
			}
		})
	}
}

func TestSecretInWrappedErrors(t *testing.T) {
	t.Parallel()
	s := NewSecret(rawToken)
	base := fmt.Errorf("call okta with token %v: %w", s, io.ErrUnexpectedEOF)
	wrapped := fmt.Errorf("sync connector c1: %w", base)
	for _, verb := range []string{"%v", "%+v", "%s", "%q", "%#v"} {
		if got := fmt.Sprintf(verb, wrapped); strings.Contains(got, rawToken) {
			t.Errorf("Sprintf(%q, err) = %q, leaks the secret", verb, got)
		}
	}
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Error("wrapping lost the cause")
	}
	if !strings.Contains(wrapped.Error(), Redacted) {
		t.Errorf("error %q lacks %s", wrapped, Redacted)
	}
}

func TestRedactString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"no secrets", "plain text", nil, "plain text"},
		{"known value", "GET failed: token=abc123 rejected", []string{"abc123"}, "GET failed: token=[REDACTED] rejected"},
		{"every occurrence", "abc abc", []string{"abc"}, "[REDACTED] [REDACTED]"},
		{"empty secret ignored", "keep me", []string{""}, "keep me"},
		{"longest first", "key=secret-long", []string{"secret", "secret-long"}, "key=[REDACTED]"},
		{"ssws header", `header "Authorization: SSWS 00abcDEF" echoed`, nil, `header "Authorization: SSWS [REDACTED]" echoed`},
		{"bearer any case", "authorization: bearer eyJhbGciOi.x.y, retry", nil, "authorization: bearer [REDACTED], retry"},
		{"basic", "Basic dXNlcjpwYXNz", nil, "Basic [REDACTED]"},
		{"both", "SSWS tok1 and tok2", []string{"tok2"}, "SSWS [REDACTED] and [REDACTED]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := RedactString(tc.in, tc.secrets...); got != tc.want {
				t.Errorf("RedactString(%q, %q) = %q, want %q", tc.in, tc.secrets, got, tc.want)
			}
		})
	}
}

func TestIsSensitiveKey(t *testing.T) {
	t.Parallel()
	sensitive := []string{
		"token", "TOKEN", "api_token", "apiToken", "apikey", "api_key", "API-Key", "X-Api-Key",
		"secret", "client_secret", "password", "db_password", "Passwd", "authorization",
		"Proxy-Authorization", "cookie", "Set-Cookie", "webhook_secret", "private_key",
		"privateKey", "private_key_pem", "access_token", "refresh_token", "credentials",
	}
	harmless := []string{
		"", "connector", "secret_version", "token_count", "token_expires_at",
		"authorization_server_id", "user", "tokenizer_name", "key", "cache_key",
	}
	for _, k := range sensitive {
		if !IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = false, want true", k)
		}
	}
	for _, k := range harmless {
		if IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = true, want false", k)
		}
	}
}
