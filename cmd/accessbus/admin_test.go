package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/services/catalog"
)

// TestAdminCLI: whoami with the data dir's key; without a key the API
// answers 401 and says how to give one; roles are assigned and revoked by
// a Super Administrator only; keys are created and work.
func TestAdminCLI(t *testing.T) {
	d := startCatalogDev(t)
	out := d.must(t, "", "admin", "whoami")
	if !strings.Contains(out, catalog.DefaultAdminEmail) || !strings.Contains(out, "super_admin") {
		t.Fatalf("whoami:\n%s", out)
	}
	// No key anywhere: refused before any handler.
	t.Setenv(envAPIKey, "")
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	root.SetArgs([]string{"admin", "whoami", "--server", d.server, "--data-dir", t.TempDir()})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "unauthenticated") || !strings.Contains(err.Error(), "ACCESSBUS_API_KEY") {
		t.Fatalf("without a key: %v", err)
	}
	d.refused(t, "abk_unknown", "", []string{"admin", "whoami"}, "unauthenticated", "unknown API key")

	out = d.must(t, "", "admin", "roles", "assign", "--email", "ann@example.com", "--role", "connector-admin")
	if !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "connector_admin") {
		t.Fatalf("assign:\n%s", out)
	}
	annKey := strings.TrimSpace(strings.Split(d.must(t, "", "admin", "keys", "create", "--email", "ann@example.com", "--name", "laptop"), "\n")[0])
	if !strings.HasPrefix(annKey, "abk_") {
		t.Fatalf("key %q", annKey)
	}
	out = d.must(t, annKey, "admin", "whoami")
	if !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "connector_admin") {
		t.Fatalf("ann's whoami:\n%s", out)
	}
	d.refused(t, annKey, "", []string{"admin", "roles", "assign", "--email", "bob@example.com", "--role", "super_admin"}, "permission_denied", "Super Administrator")
	d.refused(t, annKey, "", []string{"admin", "keys", "create", "--email", "bob@example.com"}, "permission_denied")
	d.refused(t, "", "", []string{"admin", "roles", "assign", "--email", "bob@example.com", "--role", "root"}, "--role", "super_admin or connector_admin")
	d.refused(t, "", "", []string{"admin", "roles", "revoke", "--email", catalog.DefaultAdminEmail, "--role", "super_admin"}, "your own Super Administrator role")
	out = d.must(t, "", "admin", "roles", "revoke", "--email", "ann@example.com", "--role", "connector_admin")
	if !strings.Contains(out, "roles none") {
		t.Fatalf("revoke:\n%s", out)
	}
	if strings.Contains(d.logs.String(), annKey) || strings.Contains(d.logs.String(), d.adminKey(t)) {
		t.Fatal("an API key appears in accessbus dev's log")
	}
}
