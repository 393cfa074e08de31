package connectors_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/libs/connectors"
)

func TestOrgURL(t *testing.T) {
	ok := map[string]string{
		"acme.okta.com":                "https://acme.okta.com",
		"ACME.Okta.com":                "https://acme.okta.com",
		"acme.oktapreview.com":         "https://acme.oktapreview.com",
		"login.acme.com":               "https://login.acme.com",
		"https://acme.okta.com":        "https://acme.okta.com",
		"https://acme.okta.com/":       "https://acme.okta.com",
		"HTTPS://acme.okta.com":        "https://acme.okta.com",
		"acme.okta.com:8443":           "https://acme.okta.com:8443",
		"http://127.0.0.1:8080":        "http://127.0.0.1:8080",
		"http://localhost:1234/":       "http://localhost:1234",
		"http://[::1]:9000":            "http://[::1]:9000",
		"https://my-org.okta-emea.com": "https://my-org.okta-emea.com",
	}
	for in, want := range ok {
		got, err := connectors.OrgURL(in)
		if err != nil || got != want {
			t.Errorf("OrgURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{ // input: a word the error must hold to say what to fix
		"":                                   "the Okta domain is not set",
		"acme.okta.com/api/v1":               "path",
		"https://acme.okta.com/oauth2":       "path",
		"acme.okta.com?x=1":                  "query",
		"https://acme.okta.com#top":          "query",
		"https://user:pw@acme.okta.com":      "user info",
		"acme-admin.okta.com":                "acme.okta.com",
		"https://acme-admin.oktapreview.com": "acme.oktapreview.com",
		"acme .okta.com":                     "spaces",
		" acme.okta.com":                     "spaces",
		"http://acme.okta.com":               "https",
		"http://127.0.0.1":                   "port",
		"http://10.0.0.1:80":                 "loopback",
		"ftp://acme.okta.com":                "scheme",
		"https://":                           "host",
		"acme..okta.com":                     "label",
		"-acme.okta.com":                     "'-'",
		"acme_1.okta.com":                    "letters",
		"acme.okta.com:":                     "port",
	}
	for in, word := range bad {
		_, err := connectors.OrgURL(in)
		if !errors.Is(err, connectors.ErrInvalidDomain) {
			t.Errorf("OrgURL(%q) = %v, want ErrInvalidDomain", in, err)
			continue
		}
		if !strings.Contains(err.Error(), word) {
			t.Errorf("OrgURL(%q) error %q does not mention %q", in, err, word)
		}
	}
}

// TestOrgURLForNamesTheConnector: the refusal of an empty domain tells the
// owner the exact command, with the connector's id; other refusals and
// good domains are OrgURL's.
func TestOrgURLForNamesTheConnector(t *testing.T) {
	_, err := connectors.OrgURLFor("payroll-okta", "")
	if !errors.Is(err, connectors.ErrNoDomain) || !errors.Is(err, connectors.ErrInvalidDomain) {
		t.Fatalf("err %v, want connectors.ErrNoDomain and connectors.ErrInvalidDomain", err)
	}
	if want := "accessbus connectors set-settings payroll-okta --domain acme.okta.com"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err %q lacks %q", err, want)
	}
	if u, err := connectors.OrgURLFor("payroll-okta", "acme.okta.com"); err != nil || u != "https://acme.okta.com" {
		t.Fatalf("got %q, %v", u, err)
	}
	if _, err := connectors.OrgURLFor("payroll-okta", "acme-admin.okta.com"); !errors.Is(err, connectors.ErrInvalidDomain) || errors.Is(err, connectors.ErrNoDomain) {
		t.Fatalf("admin host: %v, want connectors.ErrInvalidDomain only", err)
	}
}
