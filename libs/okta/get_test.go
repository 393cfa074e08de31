package okta

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/accessbus/accessbus/libs/oktasim"
)

// TestSingleReadsMatchTheLists reads one object of each kind by id and
// compares it with what the lists return; a missing object or assignment
// is ErrNotFound.
func TestSingleReadsMatchTheLists(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.ReadOnlyAdmin, nil)
	ctx := context.Background()

	users := collect(t, func(f func([]User) error) error {
		return c.ListUsers(ctx, ListUsersOptions{IncludeDeprovisioned: true}, f)
	})
	groups := collect(t, func(f func([]Group) error) error {
		return c.ListGroups(ctx, ListGroupsOptions{ExpandStats: true}, f)
	})
	apps := collect(t, func(f func([]App) error) error {
		return c.ListApps(ctx, ListAppsOptions{IncludeInactive: true}, f)
	})
	var deprovisioned User
	for _, u := range users {
		if u.Status == "DEPROVISIONED" {
			deprovisioned = u
		}
	}
	for _, want := range []User{users[0], deprovisioned} {
		got, err := c.GetUser(ctx, want.ID)
		if err != nil {
			t.Fatalf("get user %s: %v", want.ID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("get user %s:\n got %+v\nwant %+v", want.ID, got, want)
		}
	}
	// The biggest group: its stats are the interesting part.
	big := slices.MaxFunc(groups, func(a, b Group) int { return int(deref(a.UsersCount) - deref(b.UsersCount)) })
	got, err := c.GetGroup(ctx, big.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, big) {
		t.Errorf("get group %s:\n got %+v\nwant %+v", big.ID, got, big)
	}
	if got, err := c.GetGroup(ctx, big.ID, false); err != nil || got.UsersCount != nil || got.ID != big.ID {
		t.Errorf("get group without stats: %+v, %v", got, err)
	}
	var members []string
	if err := c.ListGroupMemberIDs(ctx, big.ID, func(p []string) error { members = append(members, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	var ofUser []string
	if err := c.ListUserGroupIDs(ctx, members[0], func(p []string) error { ofUser = append(ofUser, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ofUser, big.ID) {
		t.Errorf("groups of member %s: %v lacks %s", members[0], ofUser, big.ID)
	}

	// An app with both kinds of assignment.
	var app App
	var aus []AppUser
	var ags []AppGroup
	for _, a := range apps {
		aus = collect(t, func(f func([]AppUser) error) error { return c.ListAppUsers(ctx, a.ID, f) })
		ags = collect(t, func(f func([]AppGroup) error) error { return c.ListAppGroups(ctx, a.ID, f) })
		if len(aus) > 0 && len(ags) > 0 {
			app = a
			break
		}
	}
	if app.ID == "" {
		t.Fatal("no app with user and group assignments")
	}
	if got, err := c.GetApp(ctx, app.ID); err != nil || !reflect.DeepEqual(got, app) {
		t.Errorf("get app %s:\n got %+v, %v\nwant %+v", app.ID, got, err, app)
	}
	if got, err := c.GetAppUser(ctx, app.ID, aus[0].UserID); err != nil || !reflect.DeepEqual(got, aus[0]) {
		t.Errorf("get app user:\n got %+v, %v\nwant %+v", got, err, aus[0])
	}
	if got, err := c.GetAppGroup(ctx, app.ID, ags[0].GroupID); err != nil || !reflect.DeepEqual(got, ags[0]) {
		t.Errorf("get app group:\n got %+v, %v\nwant %+v", got, err, ags[0])
	}

	// Absent objects and assignments.
	const missing = "00uDoesNotExist0000"
	if _, err := c.GetUser(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing user: %v, want ErrNotFound", err)
	}
	if _, err := c.GetGroup(ctx, "00gDoesNotExist0000", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing group: %v, want ErrNotFound", err)
	}
	if _, err := c.GetApp(ctx, "0oaDoesNotExist0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing app: %v, want ErrNotFound", err)
	}
	if _, err := c.GetAppUser(ctx, app.ID, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing app user: %v, want ErrNotFound", err)
	}
	if _, err := c.GetAppGroup(ctx, app.ID, "00gDoesNotExist0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing app group: %v, want ErrNotFound", err)
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
