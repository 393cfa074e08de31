package fullsync_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
)

// TestIncrementalResyncChanges: after a first sync, each kind of change
// the incremental reads must learn from the System Log or a lastUpdated
// filter (a user deleted, roles granted and revoked to a user and to a
// group, a role inherited through a new membership, an app deleted, a new
// user) is published exactly, by an incremental run.
func TestIncrementalResyncChanges(t *testing.T) {
	e := newEnv(t)
	first := e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	org, by := e.run.Org, e.actor()
	ad := e.run.Generated.Admins
	// Plain users: active, no admin, no app, in no group holding a role.
	inApps, roleHolders := map[string]bool{}, map[string]bool{}
	for _, aus := range v.appUsers {
		for _, au := range aus {
			inApps[au.UserID] = true
		}
	}
	for gid, n := range v.groupRoles {
		for _, u := range v.members[gid] {
			roleHolders[u] = roleHolders[u] || n > 0
		}
	}
	var lone []okta.User
	for _, u := range v.users {
		if u.Status == "ACTIVE" && !inApps[u.ID] && !roleHolders[u.ID] && u.ID != ad.SuperAdmin && u.ID != ad.ReadOnlyAdmin && u.ID != ad.AppGroupAdmin {
			lone = append(lone, u)
		}
	}
	if len(lone) < 3 {
		t.Fatalf("%d plain users", len(lone))
	}
	quiet := v.quietGroups()
	var want []string

	// A user deleted: deactivated first (an update), then gone.
	uDel := lone[0]
	if err := org.DeleteUser(by, uDel.ID); err != nil {
		t.Fatal(err)
	}
	for gid, ms := range v.members {
		if slices.Contains(ms, uDel.ID) {
			want = append(want, "grant.removed group_membership/"+gid+"/"+uDel.ID, "group.upserted "+gid)
		}
	}
	want = append(want, "user.deleted "+uDel.ID)
	// A standard role granted to a user, who held none.
	uRole := lone[1]
	if _, err := org.AssignRole(by, "USER", uRole.ID, "HELP_DESK_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	want = append(want, "grant.added role_assignment/user/"+uRole.ID+"/user/HELP_DESK_ADMIN")
	// A role granted to a group. Okta (and the simulator) lists a user's
	// own roles only, so its members' role grants do not change.
	gRole := quiet[0]
	if _, err := org.AssignRole(by, "GROUP", gRole.ID, "REPORT_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	want = append(want, "grant.added role_assignment/group/"+gRole.ID+"/group/REPORT_ADMIN")
	// A new member of that group.
	uJoin := lone[2]
	mustOK(t)(org.AddMember(by, gRole.ID, uJoin.ID))
	want = append(want, "grant.added group_membership/"+gRole.ID+"/"+uJoin.ID, "group.upserted "+gRole.ID)
	// A new user.
	nu, err := org.CreateUser(by, oktasim.UserProfile{Login: "new.person@example.com", Email: "new.person@example.com", FirstName: "New", LastName: "Person"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "user.upserted "+nu.ID)
	for _, g := range v.groups {
		if g.Type == "BUILT_IN" {
			want = append(want, "grant.added group_membership/"+g.ID+"/"+nu.ID, "group.upserted "+g.ID)
		}
	}
	// An app deleted: its assignments, then the app.
	var app string
	for _, a := range v.apps {
		if a.Status == "INACTIVE" {
			app = a.ID
			break
		}
	}
	if app == "" {
		t.Fatal("no inactive app in the small org")
	}
	if err := org.DeleteApp(by, app); err != nil {
		t.Fatal(err)
	}
	for _, au := range v.appUsers[app] {
		want = append(want, "grant.removed app_assignment/"+app+"/user/"+au.UserID)
	}
	for _, ag := range v.appGroups[app] {
		want = append(want, "grant.removed app_assignment/"+app+"/group/"+ag.GroupID)
	}
	want = append(want, "app.deleted "+app)

	rep := e.mustSync(t, syncOpts{})
	if !rep.Incremental {
		t.Fatalf("the resync read in full: %s", rep.FullReadReason)
	}
	got := whats(e.newEvents(t))
	// The deleted user's role containers and its standard role are not
	// the point here; the role type may be new to the org.
	got = slices.DeleteFunc(got, func(s string) bool { return strings.HasPrefix(s, "standard_role.upserted ") })
	want = dedupe(want)
	sameSet(t, "incremental changes", got, want)
	if total(rep.APICalls) >= total(first.APICalls) {
		t.Errorf("incremental resync made %d calls, first sync %d", total(rep.APICalls), total(first.APICalls))
	}

	// A full read now finds nothing more.
	opts := fullsync.DefaultOptions()
	opts.FullResyncEvery = -1
	rep = e.mustSync(t, syncOpts{opts: &opts})
	if rep.Incremental {
		t.Fatal("FullResyncEvery -1 read incrementally")
	}
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("full read after the incremental one published %v", whats(evs))
	}
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// TestIncrementalFallsBackWhenLogUnreadable: with the System Log failing,
// the run reads in full, says why, and still publishes the change.
func TestIncrementalFallsBackWhenLogUnreadable(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	g := v.quietGroups()[0]
	u := v.members[g.ID][0]
	mustOK(t)(e.run.Org.RemoveMember(e.actor(), g.ID, u))
	base := http.DefaultTransport.(*http.Transport).Clone()
	e.transports = append(e.transports, base)
	rep := e.mustSync(t, syncOpts{rt: &failingPath{prefix: "/api/v1/logs", base: base}})
	if rep.Incremental || !strings.Contains(rep.FullReadReason, "System Log") {
		t.Fatalf("incremental %v, reason %q", rep.Incremental, rep.FullReadReason)
	}
	sameSet(t, "full read", whats(e.newEvents(t)), []string{"grant.removed group_membership/" + g.ID + "/" + u, "group.upserted " + g.ID})
}

// TestUnchangedResyncCostMedium measures the first sync and an unchanged
// resync of the medium org (slow: skipped with -short).
func TestUnchangedResyncCostMedium(t *testing.T) {
	if testing.Short() {
		t.Skip("medium org: slow")
	}
	e := newEnvProfile(t, "medium")
	first := e.mustSync(t, syncOpts{})
	second := e.mustSync(t, syncOpts{})
	t.Logf("medium: first sync %d calls %v; unchanged resync %d calls %v (incremental %v)",
		total(first.APICalls), first.APICalls, total(second.APICalls), second.APICalls, second.Incremental)
	if !second.Incremental || 4*total(second.APICalls) > total(first.APICalls) {
		t.Fatalf("unchanged resync: %d calls, first %d", total(second.APICalls), total(first.APICalls))
	}
}
