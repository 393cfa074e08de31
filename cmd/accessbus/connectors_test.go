package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/connectors"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// TestConnectorSetupThroughTheCLI plays the administrator's setup of
// docs/connectors.md against accessbus dev and the Okta simulator: a
// Connector Administrator adds a connector for a new managed application
// with another owner; a person without the role cannot add one, nor can
// another identity change it; a rejected token leaves the connector in
// error with the reason and stores nothing; the right token is accepted,
// the sync connects it, its log and the org's SCIM applications show. The
// token appears in no output, log line or event.
func TestConnectorSetupThroughTheCLI(t *testing.T) {
	d := startCatalogDev(t)
	sim, err := oktasim.Start(context.Background(), oktasim.Config{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close(context.Background()) })
	const bogus = "00bogusTokenOktaRejects0000000000000000000"

	// People: ann adds connectors, bob will own one, carl has no role.
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		d.must(t, "", "admin", "roles", "assign", "--email", email, "--role", "connector_admin")
	}
	key := func(email string) string {
		out := d.must(t, "", "admin", "keys", "create", "--email", email)
		return strings.TrimSpace(strings.Split(out, "\n")[0])
	}
	ann, bob, carl := key("ann@example.com"), key("bob@example.com"), key("carl@example.com")

	d.refused(t, carl, "", []string{"connectors", "add", "--app-new", "Acme Okta"}, "permission_denied", "Connector Administrator")
	d.refused(t, ann, "", []string{"connectors", "add", "--app-new", "Acme Okta", "--owner", "carl@example.com"},
		"failed_precondition", "carl@example.com does not hold the Connector Administrator or Super Administrator role")
	d.refused(t, ann, "", []string{"connectors", "add", "--owner", "bob@example.com"}, "app-new", "app")
	out := d.must(t, ann, "connectors", "add", "--app-new", "Acme Okta", "--owner", "bob@example.com", "--owner", "ann@example.com")
	if !strings.Contains(out, "connector acme-okta added") || !strings.Contains(out, "bob@example.com, ann@example.com") || !strings.Contains(out, "not connected") {
		t.Fatalf("add:\n%s", out)
	}
	out = d.must(t, ann, "connectors", "list", "--mine", "--status", "not-connected")
	if !strings.Contains(out, "acme-okta") || !strings.Contains(out, "Acme Okta") || !strings.Contains(out, "not set") {
		t.Fatalf("list --mine:\n%s", out)
	}
	if out := d.must(t, carl, "connectors", "list", "--mine"); strings.Contains(out, "acme-okta") {
		t.Fatalf("carl's connectors:\n%s", out)
	}
	d.refused(t, carl, sim.Tokens.SuperAdmin, []string{"connectors", "set-settings", "acme-okta", "--domain", sim.URL, "--token-stdin"},
		"permission_denied", "only an owner of connector acme-okta")
	d.refused(t, bob, "", []string{"connectors", "set-settings", "acme-okta"}, "nothing to change")
	d.refused(t, bob, "", []string{"connectors", "set-settings", "acme-okta", "--token-stdin"}, "standard input is empty")
	d.refused(t, bob, "", []string{"connectors", "set-settings", "acme-okta", "--domain", "acme-admin.okta.com"}, "invalid_argument", "admin console")
	d.refused(t, bob, "", []string{"connectors", "list", "--status", "sleeping"}, "--status")

	// A token Okta rejects: refused with the reason, the connector in error.
	d.refused(t, bob, bogus+"\n", []string{"connectors", "set-settings", "acme-okta", "--domain", sim.URL, "--token-stdin"},
		"rejected the API token", "nothing was stored")
	out = d.must(t, bob, "connectors", "get", "acme-okta")
	if !strings.Contains(out, "status        error: Okta at "+sim.URL+" rejected the API token") || !strings.Contains(out, "api token     not set") {
		t.Fatalf("get after a rejected token:\n%s", out)
	}

	// The right token: accepted, then the sync connects the connector.
	out, err = d.run(t, bob, sim.Tokens.SuperAdmin+"\n", "connectors", "set-settings", "acme-okta", "--domain", sim.URL, "--token-stdin",
		"--sync-custom-roles", "--rate-limit-share", "1")
	if err != nil || !strings.Contains(out, "accepted by Okta: review groups yes, provision groups yes, review apps yes, provision apps yes, review roles yes") {
		t.Fatalf("set-settings: %v\n%s", err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out = d.must(t, ann, "connectors", "list", "--status", "connected")
		if strings.Contains(out, "acme-okta") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected in 90s:\n%s\n%s", d.must(t, ann, "connectors", "get", "acme-okta"), d.logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	out = d.must(t, carl, "connectors", "get", "acme-okta")
	for _, want := range []string{"status        connected", "api token     set (version 1)", "capabilities  review groups yes", "latest runs:", "completed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("get lacks %q:\n%s", want, out)
		}
	}
	out = d.must(t, ann, "connectors", "logs", "acme-okta")
	if !strings.Contains(out, "log:") || !strings.Contains(out, "full sync completed") {
		t.Fatalf("logs:\n%s", out)
	}
	// The org's apps reach the catalog, unmanaged, the SCIM ones marked.
	deadline = time.Now().Add(30 * time.Second)
	for {
		out = d.must(t, carl, "apps", "list", "--unmanaged", "--scim")
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) >= 2 && strings.Contains(lines[1], "acme-okta/0oa") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SCIM applications discovered:\n%s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The token is in no output, log line or event.
	secrets := []string{sim.Tokens.SuperAdmin, bogus}
	d.mu.Lock()
	outputs := strings.Join(d.outputs, "\n")
	d.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(outputs, s) {
			t.Errorf("a token appears in the CLI's output")
		}
		if strings.Contains(d.logs.String(), s) {
			t.Errorf("a token appears in accessbus dev's log")
		}
	}
	assertNoSecretOnTheBus(t, d.natsURL, secrets...)
}

// assertNoSecretOnTheBus reads every message of every stream and fails if
// any holds one of secrets.
func assertNoSecretOnTheBus(t *testing.T, natsURL string, secrets ...string) {
	t.Helper()
	js := devJetStream(t, natsURL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	total := 0
	for _, st := range subjects.Streams() {
		s, err := js.Stream(ctx, st.Name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for n := uint64(0); n < info.State.Msgs; {
			batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for m := range batch.Messages() {
				got++
				for _, sec := range secrets {
					if strings.Contains(string(m.Data()), sec) {
						t.Fatalf("a token appears in a message on %s", m.Subject())
					}
				}
			}
			if got == 0 {
				break
			}
			n += uint64(got)
			total += got
		}
	}
	if total == 0 {
		t.Fatal("no messages on the bus to search")
	}
}

// TestSyncOfAConnectorWithoutDomain: a connector whose token is stored
// before its Okta domain (the API refuses that; the store alone does not)
// is synced and the run fails saying the domain is not set and how to set
// it; the connector shows that reason, and no stand-in domain anywhere.
func TestSyncOfAConnectorWithoutDomain(t *testing.T) {
	d := startCatalogDev(t)
	out := d.must(t, "", "connectors", "add", "--app-new", "Half Done", "--id", "half")
	if !strings.Contains(out, "the Okta domain and API token are not set") || !strings.Contains(out, "set-settings half --domain") {
		t.Fatalf("add:\n%s", out)
	}
	ctx := context.Background()
	key, err := secrets.LoadOrCreateKeyFile(filepath.Join(d.dir, secretsKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	js := devJetStream(t, d.natsURL)
	store, err := connectors.Open(ctx, js, connectors.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetToken(ctx, "half", telemetry.NewSecret("00tokenWithoutAnyDomain000000000000000000")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out = d.must(t, "", "connectors", "get", "half")
		if strings.Contains(out, "status        error") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sync did not fail the connector in 60s:\n%s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, want := range []string{"okta domain   not set", "the Okta domain is not set", "accessbus connectors set-settings half --domain"} {
		if !strings.Contains(out, want) {
			t.Fatalf("get lacks %q:\n%s", want, out)
		}
	}
	if logs, err := d.run(t, "", "", "connectors", "logs", "half"); err != nil || !strings.Contains(logs, "failed (bad_domain)") || !strings.Contains(logs, "the Okta domain is not set") {
		t.Fatalf("logs: %v\n%s", err, logs)
	}
	if strings.Contains(d.logs.String(), ".invalid") {
		t.Fatal("a stand-in domain appears in dev's log")
	}
}
