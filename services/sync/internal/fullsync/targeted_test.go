package fullsync_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// logTail follows the org's System Log as the hook pipeline does.
type logTail struct {
	c      *okta.Client
	cursor string
	since  time.Time
}

func (e *env) tail(t *testing.T) *logTail {
	t.Helper()
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	lt := &logTail{c: c, since: e.run.Org.Clock().Now()}
	return lt
}

// next returns the event types and targets of the events logged since the
// last call.
func (lt *logTail) next(t *testing.T) ([]string, []*eventsv1.SyncTarget) {
	t.Helper()
	var types []string
	var targets []*eventsv1.SyncTarget
	for {
		evs, cursor, err := lt.c.PollLogs(context.Background(), lt.cursor, lt.since)
		if err != nil {
			t.Fatal(err)
		}
		lt.cursor = cursor
		if len(evs) == 0 {
			return types, targets
		}
		for _, ev := range evs {
			types = append(types, ev.EventType)
			targets = append(targets, hooks.Targets(hooks.FromLog(ev))...)
		}
	}
}

func (e *env) targeted(t *testing.T, targets []*eventsv1.SyncTarget, opts *fullsync.Options) (fullsync.Report, error) {
	t.Helper()
	c, budget := e.client(t, e.run.Tokens.SuperAdmin, nil)
	o := fullsync.DefaultOptions()
	if opts != nil {
		o = *opts
	}
	return fullsync.RunTargeted(context.Background(), fullsync.Deps{Okta: c, Bus: e.bus, State: e.store, Budget: budget},
		fullsync.Connector{ID: connector, Options: o}, targets)
}

// TestTargetedResyncPerEventType makes one change of each governance kind
// in the org, turns the System Log events it logged into targets as the
// hook pipeline does, and runs a targeted resync of them: it must publish
// the change's events, and a full read afterwards must find nothing more
// (so the targeted run left the state exactly as a full sync would).
func TestTargetedResyncPerEventType(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	lt := e.tail(t)
	v := e.view(t)
	org, by := e.run.Org, e.actor()
	quiet := v.quietGroups()
	// Plain users: active, no admin, no app, in neither of the two quiet
	// groups used below.
	inApps := map[string]bool{}
	for _, aus := range v.appUsers {
		for _, au := range aus {
			inApps[au.UserID] = true
		}
	}
	ad := e.run.Generated.Admins
	var plain []okta.User
	for _, u := range v.users {
		if u.Status == "ACTIVE" && !inApps[u.ID] && u.ID != ad.SuperAdmin && u.ID != ad.ReadOnlyAdmin && u.ID != ad.AppGroupAdmin {
			plain = append(plain, u)
		}
	}
	if len(quiet) > 1 {
		// The first is added to quiet[0]: not a member yet.
		i := slices.IndexFunc(plain, func(u okta.User) bool { return !slices.Contains(v.members[quiet[0].ID], u.ID) })
		if i > 0 {
			plain[0], plain[i] = plain[i], plain[0]
		}
	}
	if len(plain) < 5 || len(quiet) < 2 || slices.Contains(v.members[quiet[0].ID], plain[0].ID) {
		t.Fatalf("%d plain users, %d quiet groups", len(plain), len(quiet))
	}
	// An app with a group assigned, and one of that group's members
	// assigned to it through the group alone.
	var app, viaGroup, viaUser string
	for _, a := range v.apps {
		if a.Status != "ACTIVE" {
			continue
		}
		for _, ag := range v.appGroups[a.ID] {
			for _, au := range v.appUsers[a.ID] {
				if au.Scope == "GROUP" && slices.Contains(v.members[ag.GroupID], au.UserID) && app == "" {
					app, viaGroup, viaUser = a.ID, ag.GroupID, au.UserID
				}
			}
		}
	}
	if app == "" {
		t.Fatal("no app with a group-scoped assignment")
	}
	var everyone string
	for _, g := range v.groups {
		if g.Type == "BUILT_IN" {
			everyone = g.ID
		}
	}
	ok := mustOK(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	u0, u1, u2, u3, u4 := plain[0].ID, plain[1].ID, plain[2].ID, plain[3].ID, plain[4].ID
	g0, g1 := quiet[0].ID, quiet[1].ID
	var newUser, newGroup, newApp, roleID string

	steps := []struct {
		name string
		do   func()
		// want are events the change must publish (others may come with
		// it: group stats, for one).
		want func() []string
		// types are event types the change must log.
		types []string
	}{
		{"member added", func() { ok(org.AddMember(by, g0, u0)) },
			func() []string {
				return []string{"grant.added group_membership/" + g0 + "/" + u0, "group.upserted " + g0}
			},
			[]string{"group.user_membership.add"}},
		{"member removed", func() { ok(org.RemoveMember(by, g0, v.members[g0][0])) },
			func() []string {
				return []string{"grant.removed group_membership/" + g0 + "/" + v.members[g0][0], "group.upserted " + g0}
			},
			[]string{"group.user_membership.remove"}},
		{"user assigned to app", func() { ok(org.AssignUserToApp(by, app, u1, nil)) },
			func() []string { return []string{"grant.added app_assignment/" + app + "/user/" + u1} },
			[]string{"application.user_membership.add"}},
		{"user unassigned from app", func() { ok(org.UnassignUserFromApp(by, app, u1)) },
			func() []string { return []string{"grant.removed app_assignment/" + app + "/user/" + u1} },
			[]string{"application.user_membership.remove"}},
		{"group assigned to app", func() { ok(org.AssignGroupToApp(by, app, g1, -1, nil)) },
			func() []string {
				// Its members' assignments follow (checked by the full read).
				return []string{"grant.added app_assignment/" + app + "/group/" + g1, "group.upserted " + g1}
			},
			[]string{"group.application_assignment.add"}},
		{"group unassigned from app", func() { ok(org.UnassignGroupFromApp(by, app, g1)) },
			func() []string {
				return []string{"grant.removed app_assignment/" + app + "/group/" + g1, "group.upserted " + g1}
			},
			[]string{"group.application_assignment.remove"}},
		{"member of an assigned group added elsewhere", func() { ok(org.AddMember(by, g0, viaUser)) },
			func() []string { return []string{"grant.added group_membership/" + g0 + "/" + viaUser} }, nil},
		{"via group left", func() { ok(org.RemoveMember(by, viaGroup, viaUser)) },
			func() []string {
				return []string{"grant.removed group_membership/" + viaGroup + "/" + viaUser, "group.upserted " + viaGroup}
			},
			[]string{"group.user_membership.remove"}},
		{"user created", func() {
			u, err := org.CreateUser(by, oktasim.UserProfile{Login: "t.new@example.com", Email: "t.new@example.com", FirstName: "T", LastName: "New"}, "ACTIVE", time.Time{})
			must(err)
			newUser = u.ID
		},
			func() []string {
				return []string{"user.upserted " + newUser, "grant.added group_membership/" + everyone + "/" + newUser, "group.upserted " + everyone}
			},
			[]string{"user.lifecycle.create"}},
		{"user suspended", func() { must(org.SetUserStatus(by, u2, "SUSPENDED")) },
			func() []string { return []string{"user.upserted " + u2} }, []string{"user.lifecycle.suspend"}},
		{"user unsuspended", func() { must(org.SetUserStatus(by, u2, "ACTIVE")) },
			func() []string { return []string{"user.upserted " + u2} }, []string{"user.lifecycle.unsuspend"}},
		{"user profile updated", func() {
			p := oktasim.UserProfile{Login: plain[3].Login, Email: plain[3].Email, FirstName: "Renamed", LastName: plain[3].LastName}
			must(org.UpdateUserProfile(by, u3, p))
		},
			func() []string { return []string{"user.upserted " + u3} }, []string{"user.account.update_profile"}},
		{"user deactivated", func() { must(org.SetUserStatus(by, u4, "DEPROVISIONED")) },
			func() []string { return []string{"user.upserted " + u4} }, []string{"user.lifecycle.deactivate"}},
		{"user deleted", func() { must(org.DeleteUser(by, u4)) },
			func() []string {
				out := []string{"user.deleted " + u4}
				for g, ms := range v.members {
					if slices.Contains(ms, u4) {
						out = append(out, "grant.removed group_membership/"+g+"/"+u4, "group.upserted "+g)
					}
				}
				return out
			},
			[]string{"user.lifecycle.delete.initiated"}},
		{"role granted to user", func() {
			ra, err := org.AssignRole(by, "USER", u0, "HELP_DESK_ADMIN", "", "")
			must(err)
			roleID = ra.ID
		},
			func() []string { return []string{"grant.added role_assignment/user/" + u0 + "/user/HELP_DESK_ADMIN"} },
			[]string{"user.account.privilege.grant"}},
		{"role revoked from user", func() { must(org.UnassignRole(by, "USER", u0, roleID)) },
			func() []string { return []string{"grant.removed role_assignment/user/" + u0 + "/user/HELP_DESK_ADMIN"} },
			[]string{"user.account.privilege.revoke"}},
		{"role granted to group", func() {
			ra, err := org.AssignRole(by, "GROUP", g1, "REPORT_ADMIN", "", "")
			must(err)
			roleID = ra.ID
		},
			func() []string { return []string{"grant.added role_assignment/group/" + g1 + "/group/REPORT_ADMIN"} },
			[]string{"group.privilege.grant"}},
		{"role revoked from group", func() { must(org.UnassignRole(by, "GROUP", g1, roleID)) },
			func() []string { return []string{"grant.removed role_assignment/group/" + g1 + "/group/REPORT_ADMIN"} },
			[]string{"group.privilege.revoke"}},
		{"group created", func() {
			g, err := org.CreateGroup(by, "OKTA_GROUP", "Targeted", "", "", time.Time{})
			must(err)
			newGroup = g.ID
		},
			func() []string { return []string{"group.upserted " + newGroup} }, []string{"group.lifecycle.create"}},
		{"group renamed", func() { must(org.UpdateGroup(by, newGroup, "Targeted 2", "d")) },
			func() []string { return []string{"group.upserted " + newGroup} }, []string{"group.profile.update"}},
		{"group deleted", func() { must(org.DeleteGroup(by, g0)) },
			func() []string {
				out := []string{"group.deleted " + g0}
				for _, u := range append(slices.Clone(v.members[g0][1:]), u0, viaUser) {
					out = append(out, "grant.removed group_membership/"+g0+"/"+u)
				}
				return out
			},
			[]string{"group.lifecycle.delete"}},
		{"app created", func() {
			a, err := org.CreateApp(by, oktasim.AppSpec{Label: "Targeted app", SignOnMode: "BOOKMARK"})
			must(err)
			newApp = a.ID
		},
			func() []string { return []string{"app.upserted " + newApp} }, []string{"application.lifecycle.create"}},
		{"app deactivated", func() { must(org.SetAppStatus(by, newApp, "INACTIVE")) },
			func() []string { return []string{"app.upserted " + newApp} }, []string{"application.lifecycle.deactivate"}},
		{"app deleted", func() { must(org.DeleteApp(by, newApp)) },
			func() []string { return []string{"app.deleted " + newApp} }, []string{"application.lifecycle.delete"}},
	}
	full := fullsync.DefaultOptions()
	full.FullResyncEvery = -1
	for _, s := range steps {
		s.do()
		types, targets := lt.next(t)
		for _, typ := range s.types {
			if !slices.Contains(types, typ) {
				t.Fatalf("%s: logged %v, want %s", s.name, types, typ)
			}
		}
		if len(targets) == 0 {
			t.Fatalf("%s: logged %v, which name no target", s.name, types)
		}
		rep, err := e.targeted(t, targets, nil)
		if err != nil {
			t.Fatalf("%s: targeted resync of %v: %v", s.name, targets, err)
		}
		got := whats(e.newEvents(t))
		for _, w := range s.want() {
			if !slices.Contains(got, w) {
				t.Errorf("%s: targeted resync published %d events, missing %q", s.name, len(got), w)
			}
		}
		// A full read finds nothing the targeted run missed. A standard
		// role no one holds any more is left to full reads (doc).
		e.mustSync(t, syncOpts{opts: &full})
		rest := slices.DeleteFunc(whats(e.newEvents(t)), func(s string) bool { return strings.HasPrefix(s, "standard_role.deleted ") })
		if len(rest) > 0 {
			t.Errorf("%s: after the targeted resync (%d calls) a full read published %v", s.name, total(rep.APICalls), rest)
		}
	}
}

// TestTargetedResyncIdempotent: a target read again, or read after an
// older delivery, publishes nothing: the event is a hint, the read is the
// truth.
func TestTargetedResyncIdempotent(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	lt := e.tail(t)
	v := e.view(t)
	org, by := e.run.Org, e.actor()
	g, u := v.quietGroups()[0].ID, v.loneUsers()[0].ID
	firstSync := len(e.access.Messages())
	mustOK(t)(org.AddMember(by, g, u))
	_, addTargets := lt.next(t)
	mustOK(t)(org.RemoveMember(by, g, u))
	_, removeTargets := lt.next(t)
	// The removal's delivery first, then the addition's (out of order),
	// then both again (replayed).
	for i, ts := range [][]*eventsv1.SyncTarget{removeTargets, addTargets, removeTargets, addTargets} {
		if _, err := e.targeted(t, ts, nil); err != nil {
			t.Fatal(err)
		}
		if got := whats(e.newEvents(t)); len(got) > 0 && i > 0 {
			t.Errorf("delivery %d published %v", i, got)
		} else if i == 0 && !slices.Contains(got, "group.upserted "+g) {
			// Only the group's stats moved: the member came and went.
			t.Errorf("first delivery published %v", got)
		}
	}
	// The member never shows up: no stale state was published.
	for _, c := range e.access.Messages()[firstSync:] {
		if strings.Contains(string(c.Data()), u) && strings.Contains(c.Subject(), "grant.added") {
			t.Fatalf("a stale membership of %s was published on %s", u, c.Subject())
		}
	}
}

// TestTargetedBurstCostsAFewCalls: a thousand membership events of one
// group become one whole read of the group, not a thousand.
func TestTargetedBurstCostsAFewCalls(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	var big okta.Group
	for _, g := range v.groups {
		if g.Type == "OKTA_GROUP" && len(v.members[g.ID]) > len(v.members[big.ID]) {
			big = g
		}
	}
	var targets []*eventsv1.SyncTarget
	for i := range 1000 {
		u := v.users[i%len(v.users)].ID
		targets = append(targets, &eventsv1.SyncTarget{Kind: eventsv1.SyncTarget_KIND_GROUP_MEMBERS, Id: big.ID,
			Member: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: u}})
	}
	rep, err := e.targeted(t, targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := total(rep.APICalls); n > 5 {
		t.Errorf("1,000 membership targets of one group cost %d calls (%v), want a handful", n, rep.APICalls)
	}
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Errorf("nothing changed, yet %v", whats(evs))
	}
}

// TestTargetedNeedsFull: before any full sync, after an option change and
// for a resource set change, a targeted run asks for a full sync and
// publishes nothing.
func TestTargetedNeedsFull(t *testing.T) {
	e := newEnv(t)
	user := []*eventsv1.SyncTarget{{Kind: eventsv1.SyncTarget_KIND_USER, Id: e.run.Generated.Admins.SuperAdmin}}
	if _, err := e.targeted(t, user, nil); !errors.Is(err, fullsync.ErrNeedFull) {
		t.Fatalf("before a full sync: %v, want ErrNeedFull", err)
	}
	custom := fullsync.DefaultOptions()
	custom.SyncCustomRoles = true
	e.mustSync(t, syncOpts{opts: &custom})
	e.newEvents(t)
	if _, err := e.targeted(t, user, nil); !errors.Is(err, fullsync.ErrNeedFull) {
		t.Fatalf("options changed: %v, want ErrNeedFull", err)
	}
	rs := []*eventsv1.SyncTarget{{Kind: eventsv1.SyncTarget_KIND_RESOURCE_SET, Id: "any"}}
	if _, err := e.targeted(t, rs, &custom); !errors.Is(err, fullsync.ErrNeedFull) {
		t.Fatalf("resource set: %v, want ErrNeedFull", err)
	}
	if _, err := e.targeted(t, user, &custom); err != nil {
		t.Fatalf("same options: %v", err)
	}
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Errorf("published %v", whats(evs))
	}
}
