package okta

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/oktasim"
)

// TestListLogsAndServerTime: the probe reports Okta's clock, and a bounded
// System Log read from before a change to after it returns the change's
// event with its targets, filtered by event type.
func TestListLogsAndServerTime(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.ReadOnlyAdmin, nil)
	ctx := context.Background()
	caps, err := c.ProbeCapabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := run.Org.Clock().Now()
	if caps.ServerTime.IsZero() || caps.ServerTime.After(now) || now.Sub(caps.ServerTime) > time.Minute {
		t.Fatalf("server time %v, org clock %v", caps.ServerTime, now)
	}
	groups := collect(t, func(fn func([]Group) error) error { return c.ListGroups(ctx, ListGroupsOptions{}, fn) })
	users := collect(t, func(fn func([]User) error) error { return c.ListUsers(ctx, ListUsersOptions{}, fn) })
	var g Group
	for _, x := range groups {
		if x.Type == "OKTA_GROUP" {
			g = x
			break
		}
	}
	by := &oktasim.LogActor{ID: run.Generated.Admins.SuperAdmin, Type: "User"}
	if _, err := run.Org.AddMember(by, g.ID, users[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := run.Org.UpdateGroup(by, g.ID, g.Name+" x", g.Description); err != nil {
		t.Fatal(err)
	}
	until := run.Org.Clock().Now().Add(time.Second)
	evs := collect(t, func(fn func([]LogEvent) error) error {
		return c.ListLogs(ctx, ListLogsOptions{Since: caps.ServerTime.Add(-time.Second), Until: until, Filter: `eventType sw "group.user_membership."`}, fn)
	})
	if len(evs) != 1 || evs[0].EventType != "group.user_membership.add" || evs[0].UUID == "" {
		t.Fatalf("events %+v", evs)
	}
	has := func(id, typ string) bool {
		return slices.ContainsFunc(evs[0].Targets, func(tg LogTarget) bool { return tg.ID == id && tg.Type == typ && tg.DisplayName != "" })
	}
	if !has(g.ID, "UserGroup") || !has(users[0].ID, "User") || evs[0].Outcome != "SUCCESS" {
		t.Fatalf("targets %+v, outcome %q", evs[0].Targets, evs[0].Outcome)
	}
	// A filter Okta refuses is invalid input, never an empty log.
	err = c.ListLogs(ctx, ListLogsOptions{Since: caps.ServerTime, Until: until, Filter: `nonsense`}, func([]LogEvent) error { return nil })
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("a bad filter: %v, want ErrInvalidInput", err)
	}
}
