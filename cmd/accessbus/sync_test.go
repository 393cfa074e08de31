package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/testkit"
)

// cli runs one accessbus command and returns its output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := realMain(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestDemoSyncThroughTheCLI: accessbus dev --demo creates the demo
// connector and syncs it; the sync and access commands then show its
// status, runs, grants and an export, as a user would see them.
func TestDemoSyncThroughTheCLI(t *testing.T) {
	t.Setenv(envAPIKey, "") // the commands use the key accessbus dev writes in dir
	dir := t.TempDir()
	addr, _, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true, demoTimeScale: 50})
	server := "http://" + addr
	// The scheduler syncs the new connector at once.
	waitConnected(t, server, dir, "demo", logs)
	status, err := cli(t, "sync", "status", "--connector", "demo", "--server", server, "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"token       set", "review roles true", "SUPER_ADMIN", "group_memberships"} {
		if !strings.Contains(strings.ReplaceAll(status, " ", " "), want) && !strings.Contains(status, strings.ReplaceAll(want, "_", " ")) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	out, err := cli(t, "sync", "runs", "--connector", "demo", "--server", server, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "completed") || !strings.Contains(out, "scheduler") {
		t.Fatalf("sync runs: %v\n%s", err, out)
	}
	runID := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, err = cli(t, "sync", "runs", "--connector", "demo", "--run", runID, "--server", server, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "full sync completed") {
		t.Fatalf("sync runs --run: %v\n%s", err, out)
	}
	// Held removals: there are none, and the CLI says what to do instead.
	out, err = cli(t, "sync", "confirm-removals", "--connector", "demo", "--server", server, "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "held no removals") {
		t.Fatalf("confirm-removals with nothing held: %v\n%s", err, out)
	}
	// Unknown connectors are refused with a clear error.
	if _, err := cli(t, "sync", "run", "--connector", "nosuch", "--server", server, "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("sync run of an unknown connector: %v", err)
	}
	// A manual run, waited for.
	out, err = cli(t, "sync", "run", "--connector", "demo", "--wait", "--reason", "test", "--server", server, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "completed") {
		t.Fatalf("sync run --wait: %v\n%s", err, out)
	}
	// Who has what.
	out, err = cli(t, "access", "list", "--connector", "demo", "--kind", "role_assignment", "--server", server, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "SUPER_ADMIN") {
		t.Fatalf("access list: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "export.csv")
	if out, err := cli(t, "access", "export", "--connector", "demo", "--format", "csv", "--out", file, "--server", server, "--data-dir", dir); err != nil {
		t.Fatalf("access export: %v\n%s", err, out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 1500 {
		t.Fatalf("export has %d rows (%v), want every grant of the small org", len(rows), err)
	}
	if strings.Contains(logs.String(), "SSWS ") {
		t.Fatal("an Okta token reached the log")
	}
	checkAPIKeysThroughTheCLI(t, server, dir, logs)
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// checkAPIKeysThroughTheCLI: against accessbus dev --demo, the sync,
// access, hooks and provision commands without an API key are refused,
// saying how to give one; a Connector Administrator who does not own the
// demo connector reads it but may not act on it; no key reaches the log.
func checkAPIKeysThroughTheCLI(t *testing.T, server, dir string, logs *testkit.Buffer) {
	t.Helper()
	noKey := t.TempDir() // a data dir without admin-api-key
	t.Setenv(envAPIKey, "")
	for _, args := range [][]string{
		{"sync", "status", "--connector", "demo"},
		{"sync", "run", "--connector", "demo"},
		{"access", "list", "--connector", "demo"},
		{"access", "export", "--connector", "demo"},
		{"hooks", "status", "--connector", "demo"},
		{"provision", "list", "--connector", "demo"},
	} {
		_, err := cli(t, append(args, "--server", server, "--data-dir", noKey)...)
		if err == nil || !strings.Contains(err.Error(), "unauthenticated") || !strings.Contains(err.Error(), envAPIKey) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("%v without a key: %v", args, err)
		}
	}
	t.Setenv(envAPIKey, auth.KeyPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if _, err := cli(t, "sync", "status", "--connector", "demo", "--server", server); err == nil || !strings.Contains(err.Error(), "unknown API key") {
		t.Errorf("with an unknown key: %v", err)
	}

	t.Setenv(envAPIKey, "")
	if out, err := cli(t, "admin", "roles", "assign", "--email", "bob@example.com", "--role", "connector_admin", "--server", server, "--data-dir", dir); err != nil {
		t.Fatalf("assign: %v\n%s", err, out)
	}
	out, err := cli(t, "admin", "keys", "create", "--email", "bob@example.com", "--name", "test", "--server", server, "--data-dir", dir)
	if err != nil {
		t.Fatalf("create bob's key: %v\n%s", err, out)
	}
	bobKey := strings.TrimSpace(strings.Split(out, "\n")[0])
	t.Setenv(envAPIKey, bobKey)
	for _, args := range [][]string{
		{"sync", "status", "--connector", "demo"},
		{"sync", "runs", "--connector", "demo"},
		{"access", "list", "--connector", "demo", "--kind", "role_assignment"},
		{"hooks", "status", "--connector", "demo"},
		{"provision", "list", "--connector", "demo"},
	} {
		if out, err := cli(t, append(args, "--server", server)...); err != nil {
			t.Errorf("bob may read, %v: %v\n%s", args, err, out)
		}
	}
	for _, args := range [][]string{
		{"sync", "run", "--connector", "demo"},
		{"sync", "confirm-removals", "--connector", "demo"},
		{"hooks", "register", "--connector", "demo", "--url", server},
		{"provision", "grant", "--connector", "demo", "--group", "00g1", "--user", "00u1", "--no-wait"},
	} {
		_, err := cli(t, append(args, "--server", server)...)
		if err == nil || !strings.Contains(err.Error(), "permission_denied") || !strings.Contains(err.Error(), "is a Connector Administrator but not an owner of demo") {
			t.Errorf("bob may not act, %v: %v", args, err)
		}
	}
	t.Setenv(envAPIKey, "")
	admin, err := os.ReadFile(filepath.Join(dir, adminAPIKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{strings.TrimSpace(string(admin)), bobKey} {
		if strings.Contains(logs.String(), k) {
			t.Fatal("an API key reached accessbus dev's log")
		}
	}
}

// TestDevSyncsAnOktaOrgWithAReadOnlyToken: --okta-domain with a read-only
// admin's token syncs what that role may read and names what it skipped.
func TestDevSyncsAnOktaOrgWithAReadOnlyToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, err := oktasim.Start(ctx, oktasim.Config{Profile: "small", Seed: 3, Addr: "127.0.0.1:0", TimeScale: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close(context.Background())
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(sim.Tokens.ReadOnlyAdmin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ACCESSBUS_OKTA_TIME_SCALE", "50")
	t.Setenv(envAPIKey, "")
	addr, _, stop, logs := startDevWith(t, devOptions{dataDir: dir, oktaDomain: sim.URL, oktaTokenFile: tokenFile, oktaConnector: "acme"})
	server := "http://" + addr
	waitConnected(t, server, dir, "acme", logs)
	status, err := cli(t, "sync", "status", "--connector", "acme", "--server", server, "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"review groups true", "provision groups false", "review apps true", "provision apps false", "review roles false", "skipped role_assignment"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(logs.String(), sim.Tokens.ReadOnlyAdmin) {
		t.Fatal("the Okta token reached the log")
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

func TestDevRefusesAnOktaOrgWithoutToken(t *testing.T) {
	t.Setenv("ACCESSBUS_OKTA_TOKEN", "")
	for _, tc := range []struct {
		o    devOptions
		want string
	}{
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", oktaDomain: "acme.okta.com", oktaConnector: "okta"}, "needs an API token"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", oktaDomain: "acme-admin.okta.com", oktaConnector: "okta", oktaTokenFile: "/dev/null"}, "needs an API token"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", oktaDomain: "https://acme.okta.com/app", oktaConnector: "okta", oktaTokenFile: writeTemp(t, "00abc")}, "--okta-domain"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", oktaDomain: "acme.okta.com", oktaConnector: "Bad.Id", oktaTokenFile: writeTemp(t, "00abc")}, "--okta-connector"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", once: true}, "--once needs --demo"},
	} {
		err := runDev(context.Background(), tc.o, io.Discard, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.o, err, tc.want)
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
