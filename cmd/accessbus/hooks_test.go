package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestHookRegisteredAndDeliveringThroughDev: accessbus dev --demo registers
// the demo connector's event hook in the simulated Okta (which verifies it
// against dev's receiver); a membership added through Okta's API then
// reaches access.demo.grant.added without waiting for the schedule.
func TestHookRegisteredAndDeliveringThroughDev(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	addr, natsURL, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true, demoTimeScale: 50})
	server := "http://" + addr
	waitConnected(t, server, "demo", logs)

	if out, err := cli(t, "hooks", "status", "--connector", "demo", "--server", server); err != nil || !strings.Contains(out, "no event hook is registered") {
		t.Fatalf("hooks status before: %v\n%s", err, out)
	}
	if _, err := cli(t, "hooks", "register", "--connector", "demo", "--url", "ftp://x", "--server", server); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("register with a bad URL: %v", err)
	}
	out, err := cli(t, "hooks", "register", "--connector", "demo", "--url", server, "--server", server)
	if err != nil || !strings.Contains(out, "ACTIVE, VERIFIED") || !strings.Contains(out, server+"/hooks/okta/demo") {
		t.Fatalf("hooks register: %v\n%s\n%s", err, out, logs.String())
	}
	if out, err := cli(t, "hooks", "status", "--connector", "demo", "--server", server); err != nil || strings.Contains(out, "problem") || !strings.Contains(out, "ACTIVE, VERIFIED") {
		t.Fatalf("hooks status after: %v\n%s", err, out)
	}

	// Follow the demo's access events from now on.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
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
	if out, err := cli(t, "hooks", "unregister", "--connector", "demo", "--server", server); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("hooks unregister: %v\n%s", err, out)
	}
	if strings.Contains(logs.String(), "Authorization") && strings.Contains(logs.String(), "SSWS") {
		t.Fatal("a credential reached the log")
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// waitConnected waits until the connector's first sync completed.
func waitConnected(t *testing.T, server, connector string, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := cli(t, "sync", "status", "--connector", connector, "--server", server)
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
	dir := t.TempDir()
	ctx := context.Background()
	addr, natsURL, stop, logs := startDevWith(t, devOptions{dataDir: dir, demo: true})
	server := "http://" + addr
	waitConnected(t, server, "demo", logs)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
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
