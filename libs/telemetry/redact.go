package telemetry

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
)

const (
	// Redacted is what a set Secret, and any value the logger redacts, prints
	// instead of the real value.
	Redacted = "[REDACTED]"
	// NotSet is what an empty Secret prints. It differs from Redacted on
	// purpose: "the token is missing" is a common configuration mistake, and
	// saying so reveals nothing about a value that does not exist.
	NotSet = "[NOT SET]"
)

// Secret holds a sensitive string (an Okta API token, a webhook secret, a
// password) so that it cannot be printed by accident: fmt with any verb,
// encoding/json, encoding/text and log/slog all see Redacted (or NotSet when
// empty). Only Reveal returns the value, so every use of the real value is
// an explicit, greppable call.
//
// The value is held by a closure behind a pointer. Reflection-based
// printing, which fmt falls back to for a Secret in an unexported struct
// field (where it cannot call these methods), then shows only a function
// address: a plain string field would be printed as is. The zero value is an
// unset Secret. == compares Secrets by identity, not by value; compare
// Reveal() results when value equality matters.
type Secret struct {
	p *secretValue
}

type secretValue struct {
	reveal func() string
}

// NewSecret wraps s. An empty s gives an unset Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &secretValue{reveal: func() string { return s }}}
}

// Reveal returns the secret value, or "" when unset. Call it only at the
// point where the value is handed to the system that needs it (an HTTP
// header, a cipher).
func (s Secret) Reveal() string {
	if s.p == nil || s.p.reveal == nil {
		return ""
	}
	return s.p.reveal()
}

// IsSet reports whether the Secret holds a non-empty value.
func (s Secret) IsSet() bool {
	return s.Reveal() != ""
}

// marker is the placeholder that stands for the value everywhere.
func (s Secret) marker() string {
	if s.IsSet() {
		return Redacted
	}
	return NotSet
}

// String implements fmt.Stringer and returns a placeholder, never the value.
func (s Secret) String() string { return s.marker() }

// GoString implements fmt.GoStringer and returns a placeholder, never the
// value.
func (s Secret) GoString() string { return s.marker() }

// Format implements fmt.Formatter so that every verb and flag (%v, %+v, %#v,
// %s, %q, %x, ...) prints the placeholder; without it %x or %q would render
// the fields of the struct.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", s.marker())
		return
	}
	_, _ = io.WriteString(f, s.marker())
}

// MarshalJSON implements json.Marshaler with the placeholder as a JSON
// string, so a config struct can be dumped without leaking.
func (s Secret) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", s.marker()), nil
}

// MarshalText implements encoding.TextMarshaler with the placeholder.
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(s.marker()), nil
}

// LogValue implements slog.LogValuer with the placeholder, for any slog
// handler, not only ours.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.marker())
}

// RedactString returns s with every occurrence of each non-empty secret
// replaced by Redacted, and with the credential of any "SSWS", "Bearer" or
// "Basic" authorization value removed. It is meant for free text that may
// echo a credential back, such as an error message from an HTTP client.
// Longer secrets are replaced first so that a secret containing another is
// not left half visible.
func RedactString(s string, secrets ...string) string {
	known := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		// An empty secret would match between every pair of characters.
		if sec != "" {
			known = append(known, sec)
		}
	}
	slices.SortFunc(known, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, sec := range known {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return scrubAuthValues(s)
}

// authValueRE finds an HTTP authorization scheme followed by its credential.
// Okta API tokens travel as "SSWS <token>"; OAuth tokens as "Bearer <token>".
// It is compiled once and never changed.
var authValueRE = regexp.MustCompile(`(?i)\b(ssws|bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)

// scrubAuthValues removes the credential after any authorization scheme in s,
// keeping the scheme so the text still says what kind of credential it was.
func scrubAuthValues(s string) string {
	if !authValueRE.MatchString(s) {
		return s
	}
	return authValueRE.ReplaceAllString(s, "$1 "+Redacted)
}

// startsWithAuthValue reports whether s as a whole is an authorization value
// such as "SSWS 00abc...".
func startsWithAuthValue(s string) bool {
	loc := authValueRE.FindStringIndex(strings.TrimSpace(s))
	return loc != nil && loc[0] == 0
}

// sensitiveSubstrings mark a key as secret wherever they appear in it:
// nothing named "password_..." or "..._apikey_..." is safe to print.
var sensitiveSubstrings = []string{"password", "passwd", "apikey", "privatekey", "credential"}

// sensitiveSuffixes mark a key as secret only at its end, so that the many
// harmless keys that merely start with these words ("secret_version",
// "token_count", "authorization_server_id") stay visible.
var sensitiveSuffixes = []string{"token", "tokens", "secret", "secrets", "authorization", "cookie", "cookies"}

// IsSensitiveKey reports whether a key (a log attribute, a header, a JSON
// field) names a value that must not be shown. The check ignores case and the
// separators "_", "-", "." and " ", then matches "password", "passwd",
// "apikey", "privatekey" and "credential" anywhere, and "token(s)",
// "secret(s)", "authorization" and "cookie(s)" at the end. So "token",
// "api_token", "apiKey", "X-Api-Key", "webhook_secret", "private_key",
// "Authorization" and "Set-Cookie" are sensitive, while "secret_version" and
// "token_count" are not.
func IsSensitiveKey(key string) bool {
	k := normalizeKey(key)
	if k == "" {
		return false
	}
	for _, sub := range sensitiveSubstrings {
		if strings.Contains(k, sub) {
			return true
		}
	}
	for _, suf := range sensitiveSuffixes {
		if strings.HasSuffix(k, suf) {
			return true
		}
	}
	return false
}

// normalizeKey lowercases key and drops separators so that "API-Key",
// "api_key" and "apiKey" compare equal.
func normalizeKey(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range strings.ToLower(key) {
		switch r {
		case '_', '-', '.', ' ':
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
