// Package templates renders the notifier's emails: a subject line, a
// plain-text body (text/template) and an HTML body (html/template, which
// escapes everything taken from events) per kind of email, from templates
// embedded in the binary.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

// The kinds of email, one template each; also EmailSent.template.
const (
	ConnectorSetup     = "connector_setup"
	SyncFailing        = "sync_failing"
	ProvisioningFailed = "provisioning_failed"
	GrantExpiring      = "grant_expiring"
)

// Kinds lists every kind of email.
func Kinds() []string {
	return []string{ConnectorSetup, SyncFailing, ProvisioningFailed, GrantExpiring}
}

//go:embed files/*.tmpl
var files embed.FS

// Common is what every email says: who it is about and why the recipient
// gets it.
type Common struct {
	// ConnectorID and OktaDomain name the connector.
	ConnectorID string
	OktaDomain  string
	// ConnectorURL is the connector's page.
	ConnectorURL string
	// Reasons say why the recipient gets the email, such as "you own the
	// connector", one per role they hold.
	Reasons []string
}

// SetupData fills connector_setup.
type SetupData struct {
	Common
	// SetupURL is where the owner enters the Okta domain and API token.
	SetupURL string
}

// SyncFailingData fills sync_failing.
type SyncFailingData struct {
	Common
	// Failures is how many syncs in a row failed.
	Failures int
	// Reason is the failure type in words, such as "invalid token".
	Reason string
	// Message is the sync service's explanation, with what to do.
	Message string
	// OktaErrorCode is Okta's errorCode behind the failure, if any.
	OktaErrorCode string
	// FailedAt is when the last of them failed.
	FailedAt time.Time
}

// ProvisioningFailedData fills provisioning_failed.
type ProvisioningFailedData struct {
	Common
	RequestID   string
	Action      string
	Target      string
	RequestedBy string
	Reason      string
	Message     string
	// FieldErrors list what to fix in an invalid request, "field: reason".
	FieldErrors   []string
	OktaErrorCode string
	CompletedAt   time.Time
}

// GrantExpiringData fills grant_expiring.
type GrantExpiringData struct {
	Common
	RequestID   string
	Target      string
	Grantee     string
	RequestedBy string
	ExpiresAt   time.Time
}

// Rendered is one email ready to send.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Set is the parsed templates of every kind.
type Set struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

var funcs = map[string]any{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "an unknown time"
		}
		return t.UTC().Format("Mon 2 Jan 2006 15:04 MST")
	},
	"joinReasons": joinReasons,
}

// joinReasons joins reasons as a sentence: "a", "a and b", "a, b and c".
func joinReasons(r []string) string {
	switch len(r) {
	case 0:
		return ""
	case 1:
		return r[0]
	}
	return strings.Join(r[:len(r)-1], ", ") + " and " + r[len(r)-1]
}

// Load parses the embedded templates; an error means a broken build.
func Load() (*Set, error) {
	s := &Set{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, k := range Kinds() {
		t, err := texttemplate.New(k).Option("missingkey=error").Funcs(funcs).
			ParseFS(files, "files/layout.txt.tmpl", "files/"+k+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse the text template of %s: %w", k, err)
		}
		h, err := htmltemplate.New(k).Option("missingkey=error").Funcs(funcs).
			ParseFS(files, "files/layout.html.tmpl", "files/"+k+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse the HTML template of %s: %w", k, err)
		}
		s.text[k], s.html[k] = t, h
	}
	return s, nil
}

// Render renders kind with data, which must be the kind's data type.
func (s *Set) Render(kind string, data any) (Rendered, error) {
	if err := checkData(kind, data); err != nil {
		return Rendered{}, err
	}
	t, h := s.text[kind], s.html[kind]
	var subj, text, html bytes.Buffer
	if err := t.ExecuteTemplate(&subj, "subject", data); err != nil {
		return Rendered{}, fmt.Errorf("render the subject of %s: %w", kind, err)
	}
	if err := t.ExecuteTemplate(&text, "layout", data); err != nil {
		return Rendered{}, fmt.Errorf("render the text of %s: %w", kind, err)
	}
	if err := h.ExecuteTemplate(&html, "layout", data); err != nil {
		return Rendered{}, fmt.Errorf("render the HTML of %s: %w", kind, err)
	}
	return Rendered{Subject: oneLine(subj.String()), Text: tidy(text.String()), HTML: html.String()}, nil
}

func checkData(kind string, data any) error {
	ok := false
	switch kind {
	case ConnectorSetup:
		_, ok = data.(SetupData)
	case SyncFailing:
		_, ok = data.(SyncFailingData)
	case ProvisioningFailed:
		_, ok = data.(ProvisioningFailedData)
	case GrantExpiring:
		_, ok = data.(GrantExpiringData)
	default:
		return fmt.Errorf("no template for email kind %q", kind)
	}
	if !ok {
		return fmt.Errorf("email kind %s: wrong data type %T", kind, data)
	}
	return nil
}

// oneLine makes a header-safe subject: no line breaks, single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// tidy trims trailing spaces and collapses runs of blank lines that
// conditional sections leave in the text body.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := true
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}
