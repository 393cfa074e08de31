package oktasim

import (
	"net/http"
	"testing"
	"time"
)

func TestOrgSettingsAnyTokenMayRead(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	for _, tok := range []string{f.ro, f.appgr, f.super} {
		resp, b := c.check(tok, "GET", "/api/v1/org", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tok, resp.StatusCode, b)
		}
		org := decodeJSON[map[string]any](t, b)
		if org["id"] != OrgID || org["status"] != "ACTIVE" || org["subdomain"] != "oktasim" || org["companyName"] == "" || org["website"] == "" {
			t.Fatalf("org settings: %s", b)
		}
		if v := org["expiresAt"]; v != nil {
			t.Fatalf("expiresAt set for an org that does not expire: %s", b)
		}
		links, _ := org["_links"].(map[string]any)
		if contacts, _ := links["contacts"].(map[string]any); contacts["href"] != f.url+"/api/v1/org/contacts" {
			t.Fatalf("links: %s", b)
		}
	}
	// The same answer every time: nothing in it is random.
	_, b1 := f.do(f.super, "GET", "/api/v1/org", nil)
	_, b2 := f.do(f.ro, "GET", "/api/v1/org", nil)
	if string(b1) != string(b2) {
		t.Fatalf("org settings differ:\n%s\n%s", b1, b2)
	}
}

// The org is as old as its built-in Everyone group, which Okta makes with it.
func TestOrgSettingsCreatedWithEveryone(t *testing.T) {
	f := newFixture(t, NoLimits)
	if _, b := f.do(f.ro, "GET", "/api/v1/org", nil); decodeJSON[map[string]any](t, b)["created"] != "2016-03-01T00:00:00.000Z" {
		t.Fatalf("without built-in groups, the fixed day: %s", b)
	}
	born := time.Date(2023, 11, 1, 9, 0, 0, 0, time.UTC)
	if _, err := f.org.CreateGroup(nil, GroupBuiltIn, "Everyone", "All users in your organization", "", born); err != nil {
		t.Fatal(err)
	}
	_, b := f.do(f.ro, "GET", "/api/v1/org", nil)
	if org := decodeJSON[map[string]any](t, b); org["created"] != "2023-11-01T09:00:00.000Z" || org["lastUpdated"] != org["created"] {
		t.Fatalf("org created with Everyone: %s", b)
	}
}

func TestOrgSettingsErrors(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	if resp, b := c.check("not-a-token", "GET", "/api/v1/org", nil); resp.StatusCode != 401 || errorCode(b) != codeInvalidToken {
		t.Fatalf("bad token: %d %s", resp.StatusCode, b)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		if resp, b := f.do(f.super, m, "/api/v1/org", map[string]any{"companyName": "x"}); resp.StatusCode != http.StatusMethodNotAllowed || errorCode(b) != codeMethodNotAllowd {
			t.Errorf("%s: %d %s", m, resp.StatusCode, b)
		}
	}
}

func TestSubdomainOf(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"http://127.0.0.1:8443", "oktasim"},
		{"http://localhost:8080", "oktasim"},
		{"https://acme.okta.com", "acme"},
		{"https://[::1]:9000", "oktasim"},
	} {
		if got := subdomainOf(tc.base); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.base, got, tc.want)
		}
	}
}
