package okta

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/accessbus/accessbus/libs/oktasim"
)

// TestWrites: each write does what it says, twice is harmless, and Okta's
// refusals come back typed.
func TestWrites(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	ctx := context.Background()
	c := newClient(t, run, run.Tokens.AppGroupAdmin, nil)
	ro := newClient(t, run, run.Tokens.ReadOnlyAdmin, nil)

	var groups []Group
	if err := c.ListGroups(ctx, ListGroupsOptions{}, func(p []Group) error { groups = append(groups, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	var users []User
	if err := c.ListUsers(ctx, ListUsersOptions{IncludeDeprovisioned: true}, func(p []User) error { users = append(users, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	var apps []App
	if err := c.ListApps(ctx, ListAppsOptions{}, func(p []App) error { apps = append(apps, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	pick := func(typ string) Group {
		i := slices.IndexFunc(groups, func(g Group) bool { return g.Type == typ })
		if i < 0 {
			t.Fatalf("no %s group", typ)
		}
		return groups[i]
	}
	okta, appGroup, everyone := pick("OKTA_GROUP"), pick("APP_GROUP"), pick("BUILT_IN")
	var active, deprovisioned User
	for _, u := range users {
		switch u.Status {
		case "ACTIVE":
			if active.ID == "" {
				active = u
			}
		case "DEPROVISIONED":
			deprovisioned = u
		}
	}
	groupsOf := func(u string) []string {
		var out []string
		if err := c.ListUserGroupIDs(ctx, u, func(p []string) error { out = append(out, p...); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}

	for range 2 { // the second time changes nothing and succeeds
		if err := c.AddGroupMember(ctx, okta.ID, active.ID); err != nil {
			t.Fatalf("add member: %v", err)
		}
		if !slices.Contains(groupsOf(active.ID), okta.ID) {
			t.Fatal("member not added")
		}
	}
	for range 2 {
		if err := c.RemoveGroupMember(ctx, okta.ID, active.ID); err != nil {
			t.Fatalf("remove member: %v", err)
		}
		if slices.Contains(groupsOf(active.ID), okta.ID) {
			t.Fatal("member not removed")
		}
	}
	for _, g := range []Group{appGroup, everyone} {
		if err := c.AddGroupMember(ctx, g.ID, active.ID); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("add to %s group: %v, want permission denied", g.Type, err)
		}
	}
	if err := ro.AddGroupMember(ctx, okta.ID, active.ID); !errors.Is(err, ErrPermissionDenied) || ErrorCode(err) != CodePermissionDenied {
		t.Errorf("read-only token: %v (code %q)", err, ErrorCode(err))
	}
	if err := c.AddGroupMember(ctx, okta.ID, "00uDoesNotExist0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing user: %v", err)
	}

	app := apps[0]
	profile := map[string]any{"role": "viewer"}
	for range 2 {
		au, err := c.AssignUserToApp(ctx, app.ID, active.ID, profile)
		if err != nil {
			t.Fatalf("assign user: %v", err)
		}
		if au.UserID != active.ID || au.Scope != "USER" || au.Profile["role"] != "viewer" {
			t.Fatalf("assignment %+v", au)
		}
	}
	if _, err := c.GetAppUser(ctx, app.ID, active.ID); err != nil {
		t.Fatalf("read back: %v", err)
	}
	for range 2 {
		if err := c.UnassignUserFromApp(ctx, app.ID, active.ID); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("unassign user: %v", err)
		}
	}
	if _, err := c.GetAppUser(ctx, app.ID, active.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after unassign: %v", err)
	}
	if _, err := c.AssignUserToApp(ctx, app.ID, deprovisioned.ID, nil); ErrorCode(err) != CodeInactiveUserForApps {
		t.Errorf("assign a deprovisioned user: %v, want %s", err, CodeInactiveUserForApps)
	}

	ag, err := c.AssignGroupToApp(ctx, app.ID, okta.ID, nil)
	if err != nil || ag.GroupID != okta.ID {
		t.Fatalf("assign group: %+v %v", ag, err)
	}
	if _, err := c.GetAppGroup(ctx, app.ID, okta.ID); err != nil {
		t.Fatalf("read back group: %v", err)
	}
	if err := c.UnassignGroupFromApp(ctx, app.ID, okta.ID); err != nil {
		t.Fatalf("unassign group: %v", err)
	}
	if _, err := c.GetAppGroup(ctx, app.ID, okta.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after unassign group: %v", err)
	}
	if ErrorCode(errors.New("plain")) != "" {
		t.Error("ErrorCode of a plain error")
	}
}
