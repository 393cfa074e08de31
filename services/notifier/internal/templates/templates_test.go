package templates

import (
	"strings"
	"testing"
	"time"
)

func TestEveryKindRendersSubjectTextAndHTML(t *testing.T) {
	set, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	common := Common{ConnectorID: "acme", OktaDomain: "acme.okta.com", ConnectorURL: "https://ab.example/connectors/acme",
		Reasons: []string{"you own the connector", "you asked for this access"}}
	at := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	cases := []struct {
		kind string
		data any
		want []string // in subject+text and in HTML
	}{
		{ConnectorSetup, SetupData{Common: common, SetupURL: "https://ab.example/connectors/acme/setup"},
			[]string{"Your help is needed", "https://ab.example/connectors/acme/setup", "Set up connector"}},
		{SyncFailing, SyncFailingData{Common: common, Failures: 3, Reason: "invalid token", Message: "create a new token", OktaErrorCode: "E0000011", FailedAt: at},
			[]string{"last 3 syncs failed", "invalid token", "create a new token", "E0000011", "Wed 2 Jan 2030 03:04 UTC"}},
		{ProvisioningFailed, ProvisioningFailedData{Common: common, RequestID: "req-1", Action: "grant", Target: "membership of user 00u1 in group 00g1",
			RequestedBy: "ana@example.com", Reason: "not found", Message: "the group does not exist", FieldErrors: []string{"target: required"}},
			[]string{"Access request failed", "req-1", "membership of user 00u1 in group 00g1", "not found", "the group does not exist", "target: required"}},
		{GrantExpiring, GrantExpiringData{Common: common, RequestID: "req-2", Target: "assignment of app 0oa1 to user 00u1", Grantee: "bob@example.com", ExpiresAt: at},
			[]string{"expires", "req-2", "assignment of app 0oa1 to user 00u1", "bob@example.com", "Wed 2 Jan 2030 03:04 UTC"}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			r, err := set.Render(c.kind, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject == "" || strings.ContainsAny(r.Subject, "\r\n") {
				t.Fatalf("subject %q", r.Subject)
			}
			for _, w := range c.want {
				if !strings.Contains(r.Subject+"\n"+r.Text, w) {
					t.Errorf("text lacks %q:\n%s\n%s", w, r.Subject, r.Text)
				}
				if !strings.Contains(r.HTML, w) {
					t.Errorf("HTML lacks %q:\n%s", w, r.HTML)
				}
			}
			for _, w := range []string{"https://ab.example/connectors/acme", "you own the connector and you asked for this access"} {
				if !strings.Contains(r.Text, w) || !strings.Contains(r.HTML, w) {
					t.Errorf("a body lacks %q", w)
				}
			}
			if strings.Contains(r.Text, "\n\n\n") {
				t.Errorf("text has runs of blank lines:\n%s", r.Text)
			}
		})
	}
}

func TestHTMLEscapesEventText(t *testing.T) {
	set, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	r, err := set.Render(SyncFailing, SyncFailingData{Common: Common{ConnectorID: "c1"}, Failures: 3, Reason: "x",
		Message: `<script>alert(1)</script>`})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Fatalf("HTML not escaped:\n%s", r.HTML)
	}
	// A javascript: URL never becomes a link.
	r, err = set.Render(ConnectorSetup, SetupData{Common: Common{ConnectorID: "c1"}, SetupURL: "javascript:alert(1)"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, `href="javascript:`) {
		t.Fatalf("unsafe URL in HTML:\n%s", r.HTML)
	}
}

func TestRenderRefusesWrongData(t *testing.T) {
	set, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Render(ConnectorSetup, SyncFailingData{}); err == nil {
		t.Fatal("wrong data type accepted")
	}
	if _, err := set.Render("nope", SetupData{}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}
