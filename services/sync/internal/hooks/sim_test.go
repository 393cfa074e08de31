package hooks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// simOrg is the Okta simulator over real HTTP, with an admin to act as.
type simOrg struct {
	srv   *oktasim.Server
	org   *oktasim.Org
	admin *oktasim.LogActor
}

func newSimOrg(t *testing.T) *simOrg {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	org := oktasim.NewOrg("http://"+hs.Listener.Addr().String(), oktasim.NewClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), 1))
	srv := oktasim.NewServer(org, oktasim.Options{RateLimits: oktasim.NoLimits})
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(func() { hs.Close(); srv.Close() })
	u, err := org.CreateUser(nil, oktasim.UserProfile{Login: "admin@example.com", Email: "admin@example.com", FirstName: "Ad", LastName: "Min"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return &simOrg{srv: srv, org: org, admin: &oktasim.LogActor{ID: u.ID, Type: "User", AlternateID: u.Profile.Login}}
}

// register creates, and verifies, an event hook delivering to uri with secret.
func (s *simOrg) register(t *testing.T, uri, secret string, events ...string) (string, error) {
	t.Helper()
	h, err := s.org.CreateEventHook(s.admin, oktasim.EventHookSpec{
		Name: "accessbus", Events: events, URI: uri, AuthKey: "Authorization", AuthValue: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.srv.VerifyEventHook(context.Background(), s.admin, h.ID)
	return h.ID, err
}

// TestSimulatorDeliveriesEndToEnd: the simulator verifies the receiver,
// then its deliveries of real changes reach the sink as the right targets;
// a hook registered with the wrong secret fails Okta's verification.
func TestSimulatorDeliveriesEndToEnd(t *testing.T) {
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	sim := newSimOrg(t)
	uri := p.srv.URL + hooks.PathPrefix + "c1"

	if _, err := sim.register(t, uri, "not-the-secret", "group.user_membership.add"); err == nil {
		t.Fatal("verification with a wrong secret succeeded")
	}
	if _, err := sim.register(t, uri, hookSecret, "group.user_membership.add", "group.user_membership.remove", "user.lifecycle.suspend"); err != nil {
		t.Fatalf("verification: %v", err)
	}
	g, err := sim.org.CreateGroup(nil, oktasim.GroupOkta, "Engineering", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := sim.org.CreateUser(nil, oktasim.UserProfile{Login: "ann@example.com", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.org.AddMember(sim.admin, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.org.RemoveMember(sim.admin, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := sim.org.SetUserStatus(sim.admin, u.ID, "SUSPENDED"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three events handed off", func() bool { return len(sink.handedUUIDs()) == 3 })
	found := map[string]bool{}
	for _, c := range sink.succeeded() {
		if c.connector != "c1" {
			t.Fatalf("handoff for %s", c.connector)
		}
		for _, w := range c.work {
			found[hooks.TargetKey(w.Target)] = true
		}
	}
	for _, want := range []string{hooks.TargetKey(narrow(kGM, g.ID, user, u.ID)), hooks.TargetKey(tgt(kUser, u.ID))} {
		if !found[want] {
			t.Fatalf("handed off %v, missing %s", found, want)
		}
	}
	if st := sim.srv.HookStats(); st.Failed != 0 || st.Events != 3 {
		t.Fatalf("simulator hook stats %+v", st)
	}
}

// TestHookEventTypesAreEligibleAndMapped: Okta (the simulator, which checks
// eligibility as Okta does) accepts a hook subscribed to HookEventTypes, and
// each of them maps to a target.
func TestHookEventTypesAreEligibleAndMapped(t *testing.T) {
	sim := newSimOrg(t)
	types := hooks.HookEventTypes()
	if len(types) < 30 {
		t.Fatalf("only %d types: %v", len(types), types)
	}
	for _, typ := range types {
		if hooks.Classify(typ) != hooks.Governed {
			t.Fatalf("%s is subscribed but maps to nothing", typ)
		}
	}
	if _, err := sim.org.CreateEventHook(sim.admin, oktasim.EventHookSpec{
		Name: "accessbus", Events: types, URI: "https://accessbus.example.com/hooks/okta/c1", AuthKey: "Authorization", AuthValue: "x",
	}); err != nil {
		t.Fatalf("Okta refuses the event types: %v", err)
	}
}

// TestLostDeliveryCaughtUpFromSystemLog: Okta gives up on a delivery whose
// attempt and retry both fail (the simulator logs event_hook.delivery);
// the change it carried still reaches the sink, through the System Log.
func TestLostDeliveryCaughtUpFromSystemLog(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	sim := newSimOrg(t)
	// Between Okta and the receiver, a network that fails once told to.
	var down atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		httputil.NewSingleHostReverseProxy(mustURL(t, p.srv.URL)).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	if _, err := sim.register(t, proxy.URL+hooks.PathPrefix+"c1", hookSecret, "group.user_membership.add"); err != nil {
		t.Fatalf("verification: %v", err)
	}
	g, err := sim.org.CreateGroup(nil, oktasim.GroupOkta, "Engineering", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := sim.org.CreateUser(nil, oktasim.UserProfile{Login: "bo@example.com", Email: "bo@example.com", FirstName: "Bo", LastName: "Ek"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	since := sim.org.Clock().Now()
	down.Store(true)
	if _, err := sim.org.AddMember(sim.admin, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Okta to give up on the delivery", func() bool { return sim.srv.HookStats().Failed == 1 })
	if st := sim.srv.HookStats(); st.Retried != 1 || st.Delivered != 0 {
		t.Fatalf("hook stats %+v: want one attempt, one retry, nothing delivered", st)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.handedUUIDs()); n != 0 {
		t.Fatalf("%d events handed off from a lost delivery", n)
	}

	// The System Log still has the change: the poller finds it.
	const token = "00catchup-token-0000000000000000000000000"
	if err := sim.org.AddToken(sim.admin.ID, token); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.org.AssignRole(nil, "USER", sim.admin.ID, "READ_ONLY_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	budget, _ := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: 1000})
	client, err := okta.New(ctx, okta.Config{OrgURL: sim.org.BaseURL(), Token: telemetry.NewSecret(token), Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	poller, err := hooks.NewPoller(ctx, p.js, p.intake, &pollSource{client: client, since: since}, hooks.PollerOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := poller.Poll(ctx, "c1"); err != nil || n == 0 {
		t.Fatalf("poll read %d events: %v", n, err)
	}
	waitFor(t, "the membership handed off from the System Log", func() bool {
		for _, c := range sink.succeeded() {
			for _, w := range c.work {
				if hooks.TargetKey(w.Target) == hooks.TargetKey(narrow(kGM, g.ID, user, u.ID)) {
					return true
				}
			}
		}
		return false
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
