package executor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/testkit"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/telemetry"
)

var reasons = struct {
	invalid, noConnector, notConnected, missingCap, notFound, inactive, notWritable eventsv1.ProvisioningFailureReason
}{
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INVALID_REQUEST,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_FOUND,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_CONNECTOR_NOT_CONNECTED,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_MISSING_CAPABILITY,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_FOUND,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_INACTIVE,
	eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_NOT_WRITABLE,
}

// TestGrantAndRevokeEachKind: a membership, a user's and a group's app
// assignment are granted, granted again (a no-op that says so) and
// revoked, each confirmed in Okta, each followed by a targeted sync request.
func TestGrantAndRevokeEachKind(t *testing.T) {
	e := newEnv(t, envOptions{})
	g := e.org.oktaGroups[0]
	app := e.org.activeApp
	u := e.freeUser(t, g, "")
	ua := e.freeUser(t, "", app, u)
	profile, _ := structpb.NewStruct(map[string]any{"role": "viewer"})
	withProfile := appUser(app, ua)
	withProfile.GetAppAssignment().Profile = profile
	var ag string
	for _, gid := range e.org.oktaGroups[1:] {
		if _, ok := e.org.appUsers[app][gid]; !ok {
			ag = gid
			break
		}
	}
	cases := []struct {
		name   string
		target *eventsv1.ProvisioningTarget
		kind   eventsv1.SyncTarget_Kind
		key    string
	}{
		{"membership", membership(u, g), eventsv1.SyncTarget_KIND_GROUP_MEMBERS, "group_membership/" + g + "/" + u},
		{"app user", withProfile, eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS, "app_assignment/" + app + "/user/" + ua},
		{"app group", appGroup(app, ag), eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS, "app_assignment/" + app + "/group/" + ag},
	}
	for _, c := range cases {
		res := e.do(t, newRequest(c.name+"-grant", "c1", grant, c.target))
		wantSuccess(t, res, false)
		if res.GetGrantKey() != c.key {
			t.Errorf("%s: grant key %q, want %q", c.name, res.GetGrantKey(), c.key)
		}
		srs := e.waitSyncRequests(t, c.name+"-grant")
		if len(srs) != 1 || srs[0].GetMode() != eventsv1.SyncMode_SYNC_MODE_TARGETED || srs[0].GetTargets()[0].GetKind() != c.kind {
			t.Fatalf("%s: sync requests %v", c.name, srs)
		}
		wantSuccess(t, e.do(t, newRequest(c.name+"-again", "c1", grant, c.target)), true)
		wantSuccess(t, e.do(t, newRequest(c.name+"-revoke", "c1", revoke, c.target)), false)
		wantSuccess(t, e.do(t, newRequest(c.name+"-revoke-again", "c1", revoke, c.target)), true)
	}
	// What Okta holds now: none of it.
	c, _ := okta.New(context.Background(), okta.Config{OrgURL: e.sim.URL, Budget: e.budget,
		Token: mustToken(t, e, "c1")})
	if _, err := c.GetAppUser(context.Background(), app, ua); !errors.Is(err, okta.ErrNotFound) {
		t.Errorf("app user after revoke: %v", err)
	}
}

// TestRefusals: each check before a write fails the request with its own
// reason and a message that says what to do, and writes nothing.
func TestRefusals(t *testing.T) {
	cnt := &counter{}
	e := newEnv(t, envOptions{httpWrap: func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt }})
	g := e.org.oktaGroups[0]
	app := e.org.activeApp
	u := e.freeUser(t, g, app)
	missing := "00u0000000000000zzzz"
	cases := []struct {
		name   string
		req    *eventsv1.ProvisioningRequest
		reason eventsv1.ProvisioningFailureReason
		says   string
	}{
		{"invalid", &eventsv1.ProvisioningRequest{RequestId: "invalid", ConnectorId: "c1", Action: grant, Target: membership("", g)}, reasons.invalid, "requested_by"},
		{"unknown connector", newRequest("unknown-connector", "nope", grant, membership(u, g)), reasons.noConnector, "no connector nope"},
		{"not connected", newRequest("not-connected", "new", grant, membership(u, g)), reasons.notConnected, "not connected"},
		{"read-only token, membership", newRequest("ro-member", "ro", grant, membership(u, g)), reasons.missingCap, "Group Membership Administrator"},
		{"read-only token, app", newRequest("ro-app", "ro", grant, appUser(app, u)), reasons.missingCap, "Application Administrator"},
		{"missing user", newRequest("missing-user", "c1", grant, membership(missing, g)), reasons.notFound, "user " + missing},
		{"missing group", newRequest("missing-group", "c1", grant, membership(u, "00g0000000000000zzzz")), reasons.notFound, "group 00g0000000000000zzzz"},
		{"missing app", newRequest("missing-app", "c1", grant, appUser("0oa0000000000000zzzz", u)), reasons.notFound, "app 0oa0000000000000zzzz"},
		{"deprovisioned user", newRequest("deprov", "c1", grant, membership(e.org.deprovisioned, g)), reasons.inactive, "DEPROVISIONED"},
		{"suspended user", newRequest("suspended", "c1", grant, appUser(app, e.org.suspended)), reasons.inactive, "SUSPENDED"},
		{"inactive app", newRequest("inactive-app", "c1", grant, appUser(e.org.inactiveApp, u)), reasons.inactive, "activate it"},
		{"app group", newRequest("app-group", "c1", grant, membership(u, e.org.appGroup)), reasons.notWritable, "APP_GROUP"},
		{"everyone", newRequest("everyone", "c1", revoke, membership(u, e.org.everyone)), reasons.notWritable, "built-in"},
		{"inherited assignment", newRequest("inherited", "c1", revoke, appUser(e.org.groupScoped[0], e.org.groupScoped[1])), reasons.notWritable, "through a group"},
	}
	for _, c := range cases {
		res := e.do(t, c.req)
		wantFailure(t, res, c.reason, c.says)
		if len(e.syncRequests(t, c.req.GetRequestId())) != 0 {
			t.Errorf("%s: a failed request asked for a sync", c.name)
		}
	}
	if res := e.result(t, "invalid"); len(res.GetFieldErrors()) != 2 {
		t.Errorf("invalid request: field errors %v, want user_id and requested_by", res.GetFieldErrors())
	}
	if n := cnt.writes(); n != 0 {
		t.Fatalf("refused requests wrote to Okta %d times", n)
	}
}

func mustToken(t *testing.T, e *env, id string) telemetry.Secret {
	t.Helper()
	tok, _, err := e.conns.Token(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestDuplicateRequestAppliedOnce: the same request_id, delivered again
// with another payload, gets the first outcome and changes nothing more.
func TestDuplicateRequestAppliedOnce(t *testing.T) {
	cnt := &counter{}
	e := newEnv(t, envOptions{httpWrap: func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt }})
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	first := e.do(t, newRequest("dup", "c1", grant, membership(u, g)))
	wantSuccess(t, first, false)
	writes := cnt.writes()
	// The same id again, this time asking to revoke: the first request stands.
	again := newRequest("dup", "c1", revoke, membership(u, g))
	if err := e.ex.Handle(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	if n := cnt.writes(); n != writes {
		t.Fatalf("the duplicate wrote to Okta (%d writes, was %d)", n, writes)
	}
	rec, _, err := e.ledger.Get(context.Background(), "c1", "dup")
	if err != nil || rec.GetRequest().GetAction() != grant {
		t.Fatalf("record %v %v", rec, err)
	}
	time.Sleep(100 * time.Millisecond)
	if rs := e.resultsOf(t, "dup"); len(rs) != 1 {
		t.Fatalf("%d results stored for one request", len(rs))
	}
}

// TestCrashBetweenWriteAndResult: a process that dies after the Okta write
// and before the result leaves the request WRITING; the redelivery finds
// the change made, publishes one success (not a no-op) and its sync request.
func TestCrashBetweenWriteAndResult(t *testing.T) {
	cnt := &counter{}
	e := newEnv(t, envOptions{noStart: true, httpWrap: func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt }})
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	var crashes atomic.Int32
	e.ex.beforeResult = func(req *eventsv1.ProvisioningRequest) error {
		if crashes.Add(1) == 1 {
			return errors.New("killed")
		}
		return nil
	}
	req := newRequest("crash", "c1", grant, membership(u, g))
	if err := e.ex.Handle(context.Background(), req); err == nil {
		t.Fatal("the injected crash did not stop the request")
	}
	rec, _, err := e.ledger.Get(context.Background(), "c1", "crash")
	if err != nil || rec.GetState() != provv1.RequestState_REQUEST_STATE_WRITING {
		t.Fatalf("after the crash: %v %v", rec.GetState(), err)
	}
	if n := len(e.resultsOf(t, "crash")); n != 0 {
		t.Fatalf("%d results before the redelivery", n)
	}
	writes := cnt.writes()
	// The redelivery, through the queue.
	e.start(t)
	res := e.do(t, req)
	wantSuccess(t, res, false)
	if cnt.writes() != writes {
		t.Errorf("the redelivery wrote again")
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(e.resultsOf(t, "crash")); n != 1 {
		t.Fatalf("%d results", n)
	}
	if n := len(e.waitSyncRequests(t, "crash")); n != 1 {
		t.Fatalf("%d sync requests", n)
	}
}

// TestStormsEndInSuccess: with a fifth of Okta's answers 500 and the
// groups bucket exhausted by another integration of the org (so Okta
// answers 429 with its reset), requests still succeed within the retry
// budget.
func TestStormsEndInSuccess(t *testing.T) {
	e := newEnv(t, envOptions{share: 0.5, sim: oktasim.Config{Profile: "small", Seed: 1, RateLimits: oktasim.Free, TimeScale: 30,
		Faults: oktasim.Faults{ErrorRate: 0.2, Seed: 7}}})
	g := e.org.oktaGroups[1]
	// The other integration: as fast as it can on the groups bucket, for
	// a second (a Free org's window is 2 s at this time scale).
	ctx, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	var hogged atomic.Int64
	for range 4 {
		go func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.sim.URL+"/api/v1/groups/"+g+"/users?limit=1", nil)
				req.Header.Set("Authorization", "SSWS "+e.sim.Tokens.SuperAdmin)
				if resp, err := e.tr.RoundTrip(req); err == nil {
					if resp.StatusCode == http.StatusTooManyRequests {
						hogged.Add(1)
					}
					resp.Body.Close()
				}
			}
		}()
	}
	var ids []string
	for i, u := range e.org.activeUsers[:8] {
		if contains(e.org.members[g], u) {
			continue
		}
		id := "storm-" + string(rune('a'+i))
		ids = append(ids, id)
		e.submit(t, newRequest(id, "c1", grant, membership(u, g)))
	}
	for _, id := range ids {
		wantSuccess(t, e.result(t, id), false)
	}
	stop()
	var limited int64
	for _, s := range e.budget.Stats() {
		limited += s.RateLimited
	}
	if hogged.Load() == 0 || limited == 0 {
		t.Fatalf("no 429 storm: the other integration saw %d, the requests %d", hogged.Load(), limited)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestReadBackWaitsForOkta: with Okta's membership reads lagging behind
// its writes, the read-back retries until the change shows.
func TestReadBackWaitsForOkta(t *testing.T) {
	e := newEnv(t, envOptions{sim: oktasim.Config{Faults: oktasim.Faults{MembershipLag: 300 * time.Millisecond}}})
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	wantSuccess(t, e.do(t, newRequest("lag", "c1", grant, membership(u, g))), false)

	// A lag longer than the read-back's patience fails the request as such.
	e2 := newEnv(t, envOptions{sim: oktasim.Config{Faults: oktasim.Faults{MembershipLag: time.Hour}},
		cfg: Config{ReadBackAttempts: 3, ReadBackDelay: 10 * time.Millisecond}})
	u2 := e2.freeUser(t, g, "")
	wantFailure(t, e2.do(t, newRequest("lag-long", "c1", grant, membership(u2, g))),
		eventsv1.ProvisioningFailureReason_PROVISIONING_FAILURE_REASON_READ_BACK_FAILED, "did not show it")
}

// TestUndecodableAndUnanswerableGoToDLQ: a payload that is not a request,
// and a request without a request_id (which cannot be answered), go to
// the dead-letter stream with the reason.
func TestUndecodableAndUnanswerableGoToDLQ(t *testing.T) {
	e := newEnv(t, envOptions{})
	dlq := testkit.Record(t, e.js, "DLQ", "dlq.>", true)
	ctx := context.Background()
	m := nats.NewMsg("provisioning.c1.request")
	m.Data = []byte("not a protobuf \xff\xfe")
	m.Header.Set(bus.HeaderPayloadType, "accessbus.events.v1.ProvisioningRequest")
	m.Header.Set("Nats-Msg-Id", "garbage")
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.submit(t, newRequest("", "c1", grant, membership("00u1", "00g1")))
	elsewhere := newRequest("elsewhere", "ro", grant, membership("00u1", "00g1"))
	if _, err := e.bus.Publish(ctx, "provisioning.c1.request", "elsewhere", elsewhere); err != nil {
		t.Fatal(err)
	}
	msgs := dlq.WaitFor(t, 3, 10*time.Second)
	var reasons []string
	for _, m := range msgs {
		dl := &eventsv1.DeadLetter{}
		if err := proto.Unmarshal(m.Data(), dl); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, dl.GetErrorClass().String()+": "+dl.GetReason())
	}
	all := strings.Join(reasons, "\n")
	if !strings.Contains(all, "UNDECODABLE") || !strings.Contains(all, "no request_id") || !strings.Contains(all, "publish it on provisioning.ro.request") {
		t.Fatalf("dead letters: %v", reasons)
	}
}
