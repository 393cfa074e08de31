package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/accessbus/accessbus/libs/testkit"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestHookRegisteredAndDeliveringThroughDev: accessbus dev --demo registers
// the demo connector's event hook in the simulated Okta (which verifies it
// against dev's receiver); a membership added through Okta's API then
// reaches access.demo.grant.added without waiting for the schedule.
func TestHookRegisteredAndDeliveringThroughDev(t *testing.T) {
	t.Setenv(envAPIKey, "") // the commands use the key accessbus dev writes in dir
	dir := t.TempDir()
	ctx := context.Background()
	addr, natsURL, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true, demoTimeScale: 50})
	server := "http://" + addr
	waitConnected(t, server, dir, "demo", logs)

	if out, err := cli(t, "hooks", "status", "--connector", "demo", "--server", server, "--data-dir", dir); err != nil || !strings.Contains(out, "no event hook is registered") {
		t.Fatalf("hooks status before: %v\n%s", err, out)
	}
	if _, err := cli(t, "hooks", "register", "--connector", "demo", "--url", "ftp://x", "--server", server, "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("register with a bad URL: %v", err)
	}
	out, err := cli(t, "hooks", "register", "--connector", "demo", "--url", server, "--server", server, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "ACTIVE, VERIFIED") || !strings.Contains(out, server+"/hooks/okta/demo") {
		t.Fatalf("hooks register: %v\n%s\n%s", err, out, logs.String())
	}
	if out, err := cli(t, "hooks", "status", "--connector", "demo", "--server", server, "--data-dir", dir); err != nil || strings.Contains(out, "problem") || !strings.Contains(out, "ACTIVE, VERIFIED") {
		t.Fatalf("hooks status after: %v\n%s", err, out)
	}

	// Follow the demo's access events from now on.
	js := devJetStream(t, natsURL)
	cons, err := js.OrderedConsumer(ctx, "ACCESS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"access.demo.grant.added"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatal(err)
	}
	group, user := addMemberThroughOkta(t, dir)
	want := fmt.Sprintf("group_membership/%s/%s", group, user)
	deadline := time.Now().Add(60 * time.Second)
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err == nil && strings.Contains(string(msg.Data()), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no grant.added for %s within 60s\n%s", want, logs.String())
		}
	}
	if out, err := cli(t, "hooks", "unregister", "--connector", "demo", "--server", server, "--data-dir", dir); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("hooks unregister: %v\n%s", err, out)
	}
	if strings.Contains(logs.String(), "Authorization") && strings.Contains(logs.String(), "SSWS") {
		t.Fatal("a credential reached the log")
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// waitConnected waits until the connector's first sync completed, asking
// with the API key in dataDir.
func waitConnected(t *testing.T, server, dataDir, connector string, logs *testkit.Buffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := cli(t, "sync", "status", "--connector", connector, "--server", server, "--data-dir", dataDir)
		if err == nil && strings.Contains(out, "status      connected") && strings.Contains(out, ": completed") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not connected in 90s: %v\n%s\n%s", connector, err, out, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// addMemberThroughOkta adds a user to an Okta group it is not in, through
// the demo org's API as its Super Administrator.
func addMemberThroughOkta(t *testing.T, dataDir string) (groupID, userID string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, demoTokensFile))
	if err != nil {
		t.Fatal(err)
	}
	var demo struct {
		URL        string `json:"url"`
		SuperAdmin string `json:"super_admin"`
	}
	if err := json.Unmarshal(b, &demo); err != nil || demo.SuperAdmin == "" {
		t.Fatalf("demo file: %v %s", err, b)
	}
	call := func(method, path string, v any) {
		req, _ := http.NewRequest(method, demo.URL+path, nil)
		req.Header.Set("Authorization", "SSWS "+demo.SuperAdmin)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
		}
		if v != nil {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	var groups []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	call("GET", "/api/v1/groups?filter="+urlQuery(`type eq "OKTA_GROUP"`)+"&limit=5", &groups)
	var users []struct {
		ID string `json:"id"`
	}
	call("GET", "/api/v1/users?limit=200", &users)
	for _, g := range groups {
		var members []struct {
			ID string `json:"id"`
		}
		call("GET", "/api/v1/groups/"+g.ID+"/users?limit=1000", &members)
		in := map[string]bool{}
		for _, m := range members {
			in[m.ID] = true
		}
		for _, u := range users {
			if !in[u.ID] {
				call("PUT", "/api/v1/groups/"+g.ID+"/users/"+u.ID, nil)
				return g.ID, u.ID
			}
		}
	}
	t.Fatal("every user is in every group")
	return "", ""
}

func urlQuery(s string) string { return strings.NewReplacer(" ", "%20", `"`, "%22").Replace(s) }

// TestSystemLogCatchUpThroughDev: with no hook registered, a membership
// added through Okta's API reaches access.demo.grant.added through the
// System Log catch-up (polled every second here).
func TestSystemLogCatchUpThroughDev(t *testing.T) {
	t.Setenv("ACCESSBUS_SYSTEM_LOG_POLL", "1s")
	t.Setenv(envAPIKey, "")
	dir := t.TempDir()
	ctx := context.Background()
	addr, natsURL, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true})
	server := "http://" + addr
	waitConnected(t, server, dir, "demo", logs)
	js := devJetStream(t, natsURL)
	cons, err := js.OrderedConsumer(ctx, "ACCESS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"access.demo.grant.added"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatal(err)
	}
	group, user := addMemberThroughOkta(t, dir)
	want := fmt.Sprintf("group_membership/%s/%s", group, user)
	deadline := time.Now().Add(90 * time.Second)
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err == nil && strings.Contains(string(msg.Data()), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no grant.added for %s within 90s\n%s", want, logs.String())
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// cliStdin runs one accessbus command with stdin as its standard input.
func cliStdin(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := newRootCmd(&out, &out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// postDelivery sends an Okta event hook delivery (GET: the verification
// challenge) to the receiver with auth as its Authorization header.
func postDelivery(t *testing.T, server, connector, method, auth string) int {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","eventId":"set-secret-test","data":{"events":[]}}`)
	}
	req, err := http.NewRequest(method, server+"/hooks/okta/"+connector, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("X-Okta-Verification-Challenge", "challenge-from-okta")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && method == http.MethodGet && !strings.Contains(string(b), "challenge-from-okta") {
		t.Fatalf("verification answer without the challenge: %s", b)
	}
	return resp.StatusCode
}

// TestHookSetSecretThroughDev: an administrator who created the hook in the
// Okta Admin Console gives accessbus its secret on standard input; the
// receiver then answers Okta's verification and accepts deliveries carrying
// it, refuses others, and the secret is in no output, JSON, error or log.
// One registration per connector: register and set-secret refuse each
// other's hook until it is unregistered.
func TestHookSetSecretThroughDev(t *testing.T) {
	const secret = "Console-Typed-Secret-0123456789abcdef"
	t.Setenv(envAPIKey, "") // the commands use the key accessbus dev writes in dir
	dir := t.TempDir()
	addr, _, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true, demoTimeScale: 50})
	server := "http://" + addr
	waitConnected(t, server, dir, "demo", logs)
	var seen []string // every output and error, checked for the secret at the end
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		out, err := cliStdin(t, stdin, append(args, "--server", server, "--data-dir", dir)...)
		seen = append(seen, out)
		if err != nil {
			seen = append(seen, err.Error())
		}
		return out, err
	}

	if out, err := run(secret+"\n", "hooks", "set-secret", "--connector", "demo"); err == nil || !strings.Contains(err.Error(), "--secret-stdin") {
		t.Fatalf("set-secret without --secret-stdin: %v\n%s", err, out)
	}
	if _, err := run("short-secret\n", "hooks", "set-secret", "--connector", "demo", "--secret-stdin"); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := run(secret+"\n\n", "hooks", "set-secret", "--connector", "demo", "--secret-stdin"); err == nil || !strings.Contains(err.Error(), "whitespace") {
		t.Fatalf("secret with two trailing newlines: %v", err)
	}
	if _, err := run(secret, "hooks", "set-secret", "--connector", "nosuch", "--secret-stdin"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("unknown connector: %v", err)
	}
	if code := postDelivery(t, server, "demo", http.MethodGet, secret); code != http.StatusUnauthorized {
		t.Fatalf("verification before set-secret: %d, want 401", code)
	}

	out, err := run(secret+"\n", "hooks", "set-secret", "--connector", "demo", "--secret-stdin")
	if err != nil {
		t.Fatalf("set-secret: %v\n%s", err, out)
	}
	for _, want := range []string{"version 1", "https://<accessbus host>/hooks/okta/demo", "Authorization", "group.user_membership.add", "accessbus hooks status --connector demo", "Verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("set-secret output lacks %q:\n%s", want, out)
		}
	}
	if code := postDelivery(t, server, "demo", http.MethodGet, secret); code != http.StatusOK {
		t.Fatalf("verification with the secret: %d, want 200", code)
	}
	if code := postDelivery(t, server, "demo", http.MethodPost, secret); code != http.StatusOK {
		t.Fatalf("delivery with the secret: %d, want 200", code)
	}
	if code := postDelivery(t, server, "demo", http.MethodPost, "not-"+secret); code != http.StatusUnauthorized {
		t.Fatalf("delivery with a wrong secret: %d, want 401", code)
	}

	out, err = run("", "hooks", "status", "--connector", "demo")
	if err != nil || !strings.Contains(out, "managed in the Okta Admin Console") || !strings.Contains(out, "group.user_membership.add") || strings.Contains(out, "problem") {
		t.Fatalf("status of a console hook: %v\n%s", err, out)
	}
	if out, err := run("", "hooks", "status", "--connector", "demo", "--json"); err != nil || !strings.Contains(out, `"consoleManaged":true`) {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	// A second secret (CRLF-terminated, as from a Windows file) replaces the first.
	out, err = run(secret+"2\r\n", "hooks", "set-secret", "--connector", "demo", "--secret-stdin", "--json")
	if err != nil || !strings.Contains(out, `"replaced":true`) || !strings.Contains(out, `"consoleManaged":true`) {
		t.Fatalf("set-secret --json again: %v\n%s", err, out)
	}
	if code := postDelivery(t, server, "demo", http.MethodPost, secret+"2"); code != http.StatusOK {
		t.Fatalf("delivery with the new secret: %d, want 200", code)
	}

	// One registration per connector.
	if _, err := run("", "hooks", "register", "--connector", "demo", "--url", server); err == nil || !strings.Contains(err.Error(), "managed in the Okta Admin Console") {
		t.Fatalf("register over a console hook: %v", err)
	}
	out, err = run("", "hooks", "unregister", "--connector", "demo")
	if err != nil || !strings.Contains(out, "Delete the event hook in the Okta Admin Console") {
		t.Fatalf("unregister a console hook: %v\n%s", err, out)
	}
	if code := postDelivery(t, server, "demo", http.MethodPost, secret+"2"); code != http.StatusUnauthorized {
		t.Fatalf("delivery after unregister: %d, want 401", code)
	}
	if out, err := run("", "hooks", "register", "--connector", "demo", "--url", server); err != nil || !strings.Contains(out, "ACTIVE, VERIFIED") {
		t.Fatalf("register after unregister: %v\n%s", err, out)
	}
	if _, err := run(secret+"\n", "hooks", "set-secret", "--connector", "demo", "--secret-stdin"); err == nil || !strings.Contains(err.Error(), "accessbus hooks unregister --connector demo") {
		t.Fatalf("set-secret over a registered hook: %v", err)
	}
	if code := postDelivery(t, server, "demo", http.MethodPost, secret); code != http.StatusUnauthorized {
		t.Fatalf("the refused secret was stored: %d, want 401", code)
	}
	if out, err := run("", "hooks", "unregister", "--connector", "demo"); err != nil || !strings.Contains(out, "removed from Okta") {
		t.Fatalf("unregister: %v\n%s", err, out)
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	for _, s := range append(seen, logs.String()) {
		if strings.Contains(s, secret) {
			t.Fatalf("the secret appears in:\n%s", s)
		}
	}
}

func TestReadSecretDropsOneNewline(t *testing.T) {
	for in, want := range map[string]string{
		"s3cret":       "s3cret",
		"s3cret\n":     "s3cret",
		"s3cret\r\n":   "s3cret",
		"s3cret\n\n":   "s3cret\n",
		" s3cret \n":   " s3cret ",
		"":             "",
		"s3cret\n\r\n": "s3cret\n",
	} {
		if got, err := readSecret(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("readSecret(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := readSecret(strings.NewReader(strings.Repeat("x", maxSecretInput+1))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("oversized input: %v", err)
	}
	if _, err := readSecret(io.MultiReader(strings.NewReader("s3cret"), failingReader{})); err == nil || !strings.Contains(err.Error(), "standard input") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreadable input: %v", err)
	}
}

// failingReader fails every read, as a closed or broken standard input.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("input/output error") }
