package hooks_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"

	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// pollSource serves one connector of a simulated org synced at since.
type pollSource struct {
	client *okta.Client
	since  time.Time
}

func (s *pollSource) Connectors(context.Context) ([]string, error) { return []string{"c1"}, nil }
func (s *pollSource) Client(context.Context, string) (*okta.Client, error) {
	return s.client, nil
}
func (s *pollSource) SyncedSince(context.Context, string) (time.Time, bool, error) {
	return s.since, true, nil
}

// TestPollerCatchesUpAndResumes: without any hook, changes made in Okta reach
// the sink through the System Log; a second poll reads nothing new; a new
// poller (a restart) resumes from the stored cursor.
func TestPollerCatchesUpAndResumes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, hooks.ReceiverOptions{})
	sim, err := oktasim.Start(ctx, oktasim.Config{Profile: "small", Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.NoLimits})
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	})
	budget, _ := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: 1000})
	client, err := okta.New(ctx, okta.Config{OrgURL: sim.URL, Token: telemetry.NewSecret(sim.Tokens.ReadOnlyAdmin), Budget: budget, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*eventsv1.SyncTarget
	sink := hooks.SinkFunc(func(_ context.Context, _ string, work []hooks.Work) error {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range work {
			got = append(got, w.Target)
		}
		return nil
	})
	co := hooks.NewMemoryCoalescer(sink, hooks.CoalescerOptions{Window: 20 * time.Millisecond})
	defer co.Close()
	in, err := hooks.NewIntake(ctx, e.bus, co, hooks.IntakeOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	src := &pollSource{client: client, since: sim.Org.Clock().Now()}
	newPoller := func() *hooks.Poller {
		p, err := hooks.NewPoller(ctx, e.js, in, src, hooks.PollerOptions{Storage: jetstream.MemoryStorage})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	by := &oktasim.LogActor{ID: sim.Generated.Admins.SuperAdmin, Type: "User", AlternateID: "admin"}
	group, user := aGroupAndNonMember(t, sim, client)
	if _, err := sim.Org.AddMember(by, group, user); err != nil {
		t.Fatal(err)
	}
	p := newPoller()
	n, err := p.Poll(ctx, "c1")
	if err != nil || n == 0 {
		t.Fatalf("first poll read %d events: %v", n, err)
	}
	if !hasTarget(got, eventsv1.SyncTarget_KIND_GROUP_MEMBERS, group) {
		t.Fatalf("targets %v lack the members of %s", got, group)
	}
	if n, err := p.Poll(ctx, "c1"); err != nil || n != 0 {
		t.Fatalf("second poll read %d events (%v), want none", n, err)
	}
	// A restart: the cursor is where the last poll left it.
	p2 := newPoller()
	if n, err := p2.Poll(ctx, "c1"); err != nil || n != 0 {
		t.Fatalf("poll after a restart read %d events (%v), want none", n, err)
	}
	if _, err := sim.Org.RemoveMember(by, group, user); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got = nil
	mu.Unlock()
	if n, err := p2.Poll(ctx, "c1"); err != nil || n != 1 {
		t.Fatalf("poll after a change read %d events (%v), want 1", n, err)
	}
	if !hasTarget(got, eventsv1.SyncTarget_KIND_GROUP_MEMBERS, group) {
		t.Fatalf("targets %v lack the members of %s", got, group)
	}
}

func hasTarget(ts []*eventsv1.SyncTarget, kind eventsv1.SyncTarget_Kind, id string) bool {
	for _, t := range ts {
		if t.GetKind() == kind && t.GetId() == id {
			return true
		}
	}
	return false
}

// aGroupAndNonMember finds an Okta group and a user outside it.
func aGroupAndNonMember(t *testing.T, sim *oktasim.Running, c *okta.Client) (string, string) {
	t.Helper()
	ctx := context.Background()
	var groups []okta.Group
	var users []okta.User
	if err := c.ListGroups(ctx, okta.ListGroupsOptions{}, func(gs []okta.Group) error { groups = append(groups, gs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.ListUsers(ctx, okta.ListUsersOptions{}, func(us []okta.User) error { users = append(users, us...); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Type != "OKTA_GROUP" {
			continue
		}
		for _, u := range users {
			// Added and removed without a System Log entry (no actor).
			if ok, err := sim.Org.AddMember(nil, g.ID, u.ID); err == nil && ok {
				if _, err := sim.Org.RemoveMember(nil, g.ID, u.ID); err != nil {
					t.Fatal(err)
				}
				return g.ID, u.ID
			}
		}
	}
	t.Fatal("no group and non-member")
	return "", ""
}
