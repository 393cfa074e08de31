package main

import (
	"strings"
	"testing"
)

// TestAppsCLI: a Connector Administrator creates a managed application and
// adds a connector to it by id; the filters list it and get shows it; a
// person without the role cannot create one; --managed and --unmanaged
// exclude each other. (The discovered applications, their features and
// assignment counts are in TestStory.)
func TestAppsCLI(t *testing.T) {
	d := startCatalogDev(t)
	d.must(t, "", "admin", "roles", "assign", "--email", "ann@example.com", "--role", "connector_admin")
	ann := strings.TrimSpace(strings.Split(d.must(t, "", "admin", "keys", "create", "--email", "ann@example.com"), "\n")[0])
	carl := strings.TrimSpace(strings.Split(d.must(t, "", "admin", "keys", "create", "--email", "carl@example.com"), "\n")[0])

	d.refused(t, carl, "", []string{"apps", "create", "Payroll"}, "permission_denied")
	out := d.must(t, ann, "apps", "create", "Payroll")
	if !strings.Contains(out, `application "Payroll" created: app-`) {
		t.Fatalf("create:\n%s", out)
	}
	id := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	d.refused(t, ann, "", []string{"apps", "create", "payroll"}, "already_exists")
	out = d.must(t, carl, "apps", "list", "--managed")
	if !strings.Contains(out, id) || !strings.Contains(out, "Payroll") || !strings.Contains(out, "created") {
		t.Fatalf("list --managed:\n%s", out)
	}
	if out := d.must(t, carl, "apps", "list", "--unmanaged"); strings.Contains(out, id) {
		t.Fatalf("list --unmanaged:\n%s", out)
	}
	if out := d.must(t, carl, "apps", "list", "--scim"); strings.Contains(out, id) {
		t.Fatalf("list --scim:\n%s", out)
	}
	d.refused(t, carl, "", []string{"apps", "list", "--managed", "--unmanaged"}, "managed", "unmanaged")
	out = d.must(t, carl, "apps", "get", id)
	if !strings.Contains(out, "name          Payroll") || !strings.Contains(out, "source        created") || strings.Contains(out, "assigned") {
		t.Fatalf("get:\n%s", out)
	}
	d.refused(t, carl, "", []string{"apps", "get", "app-nope"}, "not_found", "accessbus apps list")
	out = d.must(t, ann, "apps", "manage", id)
	if !strings.Contains(out, "is managed") {
		t.Fatalf("manage:\n%s", out)
	}
	d.refused(t, ann, "", []string{"apps", "manage", "app-nope"}, "not_found")

	out = d.must(t, ann, "connectors", "add", "--app", id, "--id", "payroll-okta")
	if !strings.Contains(out, "connector payroll-okta added to application \"Payroll\"") || !strings.Contains(out, "ann@example.com") {
		t.Fatalf("add --app:\n%s", out)
	}
	d.refused(t, ann, "", []string{"connectors", "add", "--app", id}, "already_exists", "already has connector payroll-okta")
	out = d.must(t, ann, "connectors", "set-owners", "payroll-okta", "--owner", "ann@example.com", "--owner", "admin@accessbus.local")
	if !strings.Contains(out, "owners ann@example.com, admin@accessbus.local") {
		t.Fatalf("set-owners:\n%s", out)
	}
	out = d.must(t, ann, "connectors", "list", "--json")
	// No domain is set, and none is shown (the JSON leaves out empty fields).
	if !strings.Contains(out, `"id":"payroll-okta"`) || strings.Contains(out, "oktaDomain") || !strings.Contains(out, "the Okta domain and API token are not set") {
		t.Fatalf("list --json:\n%s", out)
	}
}
