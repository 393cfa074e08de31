package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/services/provisioning/provisioningtest"
)

// TestProvisionFlagErrors: combinations the command cannot turn into a
// request are refused in words before any call (nothing listens at the
// server named).
func TestProvisionFlagErrors(t *testing.T) {
	base := []string{"--connector", "c1", "--server", "http://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"grant", "--user", "00u1"}, "say which access"},
		{[]string{"grant", "--group", "00g1", "--app", "0oa1", "--user", "00u1"}, "--group and --app together"},
		{[]string{"grant", "--group", "00g1", "--assignee-group", "00g2"}, "Okta groups hold users, not groups"},
		{[]string{"revoke", "--group", "00g1"}, "--group needs --user"},
		{[]string{"grant", "--app", "0oa1"}, "--app needs --user U or --assignee-group G"},
		{[]string{"grant", "--app", "0oa1", "--user", "00u1", "--assignee-group", "00g2"}, "give one assignee"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--for", "2h", "--until", "2099-01-01T00:00:00Z"}, "--for and --until together"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--for", "soon"}, `--for "soon": want a duration`},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--for", "-1h"}, "positive"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--until", "tomorrow"}, "RFC 3339"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--until", "2001-01-01T00:00:00Z"}, "not in the future"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--profile-json", "{}"}, "--profile-json is for app assignments"},
		{[]string{"grant", "--app", "0oa1", "--user", "00u1", "--profile-json", "[1]"}, "--profile-json: not a JSON object"},
		{[]string{"revoke", "--group", "00g1", "--user", "00u1", "--for", "2h"}, "--for and --until are for grant"},
		{[]string{"revoke", "--app", "0oa1", "--user", "00u1", "--profile-json", `{"a":1}`}, "--profile-json is for grant"},
		{[]string{"grant", "--group", "00g1", "--user", "00u1", "--wait-timeout", "10m"}, "--wait-timeout 10m0s"},
		{[]string{"list", "--limit", "0"}, "--limit 0"},
	} {
		args := append(append([]string{"provision"}, tc.args...), base...)
		out, err := cli(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%v: want an error with %q, got %v\n%s", tc.args, tc.want, err, out)
		}
	}
	// A valid command against nothing says what to start.
	for _, args := range [][]string{
		{"grant", "--group", "00g1", "--user", "00u1", "--request-id", "r1"},
		{"status", "--request-id", "r1"},
		{"list", "--active"},
	} {
		out, err := cli(t, append(append([]string{"provision"}, args...), base...)...)
		if err == nil || !strings.Contains(err.Error(), "is accessbus dev running?") {
			t.Errorf("%v against nothing: %v\n%s", args, err, out)
		}
	}
	if _, err := cli(t, "provision", "grant", "--group", "00g1", "--user", "00u1"); err == nil || !strings.Contains(err.Error(), `"connector" not set`) {
		t.Errorf("no --connector: %v", err)
	}
	if _, err := cli(t, "provision", "status", "--connector", "c1"); err == nil || !strings.Contains(err.Error(), `"request-id" not set`) {
		t.Errorf("no --request-id: %v", err)
	}
}

func TestParseFor(t *testing.T) {
	for in, want := range map[string]time.Duration{"2h": 2 * time.Hour, "90m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := parseFor(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "0s", "-2d", "1d12h"} {
		if _, err := parseFor(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestProvisionThroughTheAPI: the commands against the real
// ProvisioningService, with the test standing in for the work-queue
// consumer (it completes each request in the ledger with the outcome the
// user id asks for): grant, revoke, no-op, failure, a wait that runs out,
// --no-wait and status, --json, list and list --active.
func TestProvisionThroughTheAPI(t *testing.T) {
	t.Setenv("USER", "tester")
	srv := provisioningtest.Start(t, "c1")
	t.Setenv(envAPIKey, srv.AdminKey.Reveal())
	srv.Consume(t, func(req *eventsv1.ProvisioningRequest) *eventsv1.ProvisioningResult {
		user := req.GetTarget().GetGroupMembership().GetUserId() + req.GetTarget().GetAppAssignment().GetUserId()
		switch user {
		case "00uslow":
			return nil
		case "00udenied":
			res := provisioningtest.Result(req, eventsv1.ProvisioningResult_OUTCOME_FAILED)
			res.FailureReason = eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_PERMISSION_DENIED
			res.Message = "Okta refused: the token's admin role does not cover group 00geng"
			res.OktaErrorCode = "E0000006"
			return res
		case "00unoop":
			res := provisioningtest.Result(req, eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED)
			res.NoOp = true
			return res
		}
		return provisioningtest.Result(req, eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED)
	})
	run := func(args ...string) (string, error) {
		return cli(t, append(append([]string{"provision"}, args...), "--connector", "c1", "--server", srv.URL)...)
	}
	mustContain := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}

	// A time-bound group membership, and the same request again.
	for range 2 {
		out, err := run("grant", "--group", "00geng", "--user", "00uann", "--for", "2h", "--reason", "INC-1", "--request-id", "r1")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		mustContain(out, "request r1: grant user 00uann in group 00geng; waiting up to 30s",
			"granted: user 00uann is now a member of group 00geng (request r1)", "expires at ")
		if strings.Contains(out, "note:") {
			t.Errorf("the same request was taken for another:\n%s", out)
		}
	}
	out, err := run("grant", "--group", "00geng", "--user", "00uann", "--reason", "something else", "--request-id", "r1")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "note: request id r1 was submitted before; its first request stands", "expires at ")

	out, err = run("status", "--request-id", "r1")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "request      r1: grant user 00uann in group 00geng", "requested by cli:tester: INC-1",
		"expiry       2h0m0s after it is granted", "state        completed", "(attempts: 1)", "granted: user 00uann")
	out, err = run("list", "--active")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "EXPIRES", "user 00uann in group 00geng", "r1", "cli:tester", "INC-1")

	// An app assignment of a group, under a new random id.
	out, err = run("grant", "--app", "0oawd", "--assignee-group", "00geng")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "granted: group 00geng is now assigned to app 0oawd (request cli-")
	if !regexp.MustCompile(`^request cli-[0-9a-f]{16}: grant group 00geng on app 0oawd`).MatchString(out) {
		t.Errorf("the new id is not printed first:\n%s", out)
	}

	// A revoke ends the time-bound grant.
	out, err = run("revoke", "--group", "00geng", "--user", "00uann", "--request-id", "r2")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "revoked: user 00uann is no longer a member of group 00geng (request r2)")
	out, err = run("list", "--active")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "no active time-bound grants on c1")

	// No-ops say so.
	out, err = run("revoke", "--app", "0oawd", "--user", "00unoop")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "already so, nothing written (no-op): user 00unoop is not assigned to app 0oawd")
	out, err = run("grant", "--app", "0oawd", "--user", "00unoop", "--profile-json", `{"role":"viewer"}`)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "already so, nothing written (no-op): user 00unoop is assigned to app 0oawd")

	// A failure exits non-zero with the reason, message and Okta code.
	out, err = run("grant", "--group", "00geng", "--user", "00udenied", "--request-id", "r-denied")
	if err == nil || !strings.Contains(err.Error(), "request r-denied failed (permission_denied)") {
		t.Fatalf("want a failure: %v", err)
	}
	mustContain(out, "failed (permission_denied): Okta refused: the token's admin role does not cover group 00geng (request r-denied)", "Okta error code E0000006")

	// A wait that runs out exits non-zero and says how to follow up.
	out, err = run("grant", "--group", "00geng", "--user", "00uslow", "--request-id", "r-slow", "--wait-timeout", "300ms")
	if err == nil || !strings.Contains(err.Error(), "request r-slow not done within 300ms") {
		t.Fatalf("want the wait to run out: %v\n%s", err, out)
	}
	mustContain(out, "request r-slow is ", "accessbus provision status --connector c1 --request-id r-slow")

	// --no-wait submits; status follows.
	out, err = run("grant", "--group", "00gops", "--user", "00ubob", "--request-id", "r-later", "--no-wait")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "request r-later is on the queue, not taken yet")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err = run("status", "--request-id", "r-later")
		if err == nil && strings.Contains(out, "granted: user 00ubob is now a member of group 00gops") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("r-later never completed: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// --json prints the record, one line.
	out, err = run("grant", "--group", "00geng", "--user", "00ucy", "--request-id", "r-json", "--json")
	if err != nil {
		t.Fatal(err)
	}
	rec := &provv1.RequestRecord{}
	if strings.Count(out, "\n") != 1 || protojson.Unmarshal([]byte(out), rec) != nil ||
		rec.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED || rec.GetResult().GetRequestId() != "r-json" {
		t.Fatalf("--json: %s", out)
	}

	out, err = run("list", "--limit", "3")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.Contains(lines[1], "r-json") || !strings.Contains(lines[1], "succeeded") {
		t.Fatalf("list --limit 3:\n%s", out)
	}
	out, err = run("list", "--json")
	if err != nil || strings.Count(out, "\n") != 9 {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, err = run("list")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(out, "failed: permission_denied", "succeeded (no-op)", "r-slow")

	// What the API refuses, in its words.
	if _, err := run("status", "--request-id", "nope"); err == nil || !strings.Contains(err.Error(), `no record of request "nope"`) {
		t.Fatalf("unknown request: %v", err)
	}
	if _, err := run("grant", "--group", "00geng", "--user", "00u bad"); err == nil || !strings.Contains(err.Error(), "target.group_membership.user_id: not an Okta user id") {
		t.Fatalf("invalid user id: %v", err)
	}
	if _, err := cli(t, "provision", "list", "--connector", "c9", "--server", srv.URL); err == nil || !strings.Contains(err.Error(), `connector "c9" does not exist`) {
		t.Fatalf("unknown connector: %v", err)
	}
}

// TestProvisionNeedsAKey: without an API key the provision commands are
// refused and say how to give one; an identity without a platform role
// lists requests but may not submit one, and is told the role it needs.
func TestProvisionNeedsAKey(t *testing.T) {
	srv := provisioningtest.Start(t, "c1")
	t.Setenv(envAPIKey, "")
	empty := t.TempDir()
	for _, args := range [][]string{
		{"grant", "--group", "00geng", "--user", "00uann", "--request-id", "r1"},
		{"status", "--request-id", "r1"},
		{"list"},
	} {
		_, err := cli(t, append(append([]string{"provision"}, args...), "--connector", "c1", "--server", srv.URL, "--data-dir", empty)...)
		if err == nil || !strings.Contains(err.Error(), "unauthenticated") || !strings.Contains(err.Error(), envAPIKey) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("%v without a key: %v", args, err)
		}
	}
	t.Setenv(envAPIKey, srv.NewKey(t, "idn-reader").Reveal())
	if out, err := cli(t, "provision", "list", "--connector", "c1", "--server", srv.URL); err != nil {
		t.Fatalf("a reader's list: %v\n%s", err, out)
	}
	_, err := cli(t, "provision", "grant", "--group", "00geng", "--user", "00uann", "--request-id", "r1", "--connector", "c1", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "permission_denied") || !strings.Contains(err.Error(), "Connector Administrator") {
		t.Fatalf("a reader's grant: %v", err)
	}
}
