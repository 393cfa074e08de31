package fullsync_test

import (
	"slices"
	"testing"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/testkit"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
)

// actor is the admin the tests' org changes are made by: every change is in
// the System Log, as in Okta.
func (e *env) actor() *oktasim.LogActor {
	return &oktasim.LogActor{ID: e.run.Generated.Admins.SuperAdmin, Type: "User", AlternateID: "admin", DisplayName: "Test Admin"}
}

// TestRemovalGuardHoldsThenConfirmReleases: a run that would remove more
// than 20% of the grants publishes its additions and holds every removal
// (run.completed says so); a second unconfirmed run holds the same
// removals again; a confirmed run publishes exactly the held removals.
func TestRemovalGuardHoldsThenConfirmReleases(t *testing.T) {
	e := newEnv(t)
	runs := testkit.Record(t, e.js, "SYNC", "sync.c1.run.>", true)
	first := e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	by := e.actor()

	grants := 0
	for _, c := range first.Grants {
		grants += int(c.Added)
	}
	// Remove the members of the largest groups until over 20% of every grant.
	groups := slices.Clone(v.groups)
	slices.SortFunc(groups, func(a, b okta.Group) int { return len(v.members[b.ID]) - len(v.members[a.ID]) })
	var want []string
	removed := 0
	for _, g := range groups {
		if removed*5 > grants+grants/10 {
			break
		}
		if g.Type != "OKTA_GROUP" {
			continue
		}
		for _, u := range v.members[g.ID] {
			mustOK(t)(e.run.Org.RemoveMember(by, g.ID, u))
			want = append(want, "grant.removed group_membership/"+g.ID+"/"+u)
			removed++
		}
	}
	// An addition in the same run is published at once.
	lone := v.loneUsers()[0]
	quiet := v.quietGroups()[0]
	mustOK(t)(e.run.Org.AddMember(by, quiet.ID, lone.ID))

	rep := e.mustSync(t, syncOpts{})
	evs := e.newEvents(t)
	if n := countPrefix(evs, "grant.removed "); n != 0 {
		t.Fatalf("held run published %d removals", n)
	}
	if !slices.Contains(whats(evs), "grant.added group_membership/"+quiet.ID+"/"+lone.ID) {
		t.Fatalf("held run did not publish the addition: %v", whats(evs))
	}
	if !rep.RemovalsHeld || rep.RemovalsHeldCount < int64(len(want)) {
		t.Fatalf("report: held %v, count %d, want at least %d", rep.RemovalsHeld, rep.RemovalsHeldCount, len(want))
	}
	msgs := runs.WaitFor(t, 4, 5*time.Second)
	var done eventsv1.SyncRunCompleted
	if err := proto.Unmarshal(msgs[3].Data(), &done); err != nil {
		t.Fatal(err)
	}
	if !done.GetRemovalsHeld() || done.GetRemovalsHeldCount() != rep.RemovalsHeldCount {
		t.Fatalf("run.completed: held %v, count %d", done.GetRemovalsHeld(), done.GetRemovalsHeldCount())
	}

	// Unconfirmed, the next run holds the same removals and publishes nothing.
	rep = e.mustSync(t, syncOpts{})
	if evs := e.newEvents(t); len(evs) != 0 || !rep.RemovalsHeld {
		t.Fatalf("second held run: held %v, published %v", rep.RemovalsHeld, whats(evs))
	}
	held := rep.RemovalsHeldCount

	rep = e.mustSyncConnector(t, fullsync.Connector{ID: connector, Options: fullsync.DefaultOptions(), ConfirmRemovals: true})
	evs = e.newEvents(t)
	if rep.RemovalsHeld || int64(len(evs)) != held {
		t.Fatalf("confirmed run: held %v, %d events, want the %d held", rep.RemovalsHeld, len(evs), held)
	}
	sameSet(t, "confirmed removals", whats(evs), want)
	e.mustSync(t, syncOpts{})
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("after confirming: %v", whats(evs))
	}
}

// TestRemovalGuardUnderThreshold: a few removals are published at once, and
// a raised threshold lets a large removal through.
func TestRemovalGuardUnderThreshold(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	g := v.quietGroups()[0]
	u := v.members[g.ID][0]
	mustOK(t)(e.run.Org.RemoveMember(e.actor(), g.ID, u))
	rep := e.mustSync(t, syncOpts{})
	sameSet(t, "one removal", whats(e.newEvents(t)), []string{"grant.removed group_membership/" + g.ID + "/" + u, "group.upserted " + g.ID})
	if rep.RemovalsHeld {
		t.Fatal("one removal held")
	}

	// Every membership of every OKTA_GROUP, with the threshold at 100%.
	var want []string
	for _, g := range v.groups {
		if g.Type != "OKTA_GROUP" {
			continue
		}
		for _, m := range v.members[g.ID] {
			if ok, _ := e.run.Org.RemoveMember(e.actor(), g.ID, m); ok {
				want = append(want, "grant.removed group_membership/"+g.ID+"/"+m)
			}
		}
	}
	opts := fullsync.DefaultOptions()
	opts.RemovalThreshold = 1
	rep = e.mustSync(t, syncOpts{opts: &opts})
	if rep.RemovalsHeld {
		t.Fatal("held with threshold 1")
	}
	if got := countPrefix(e.newEvents(t), "grant.removed group_membership/"); got != len(want) {
		t.Fatalf("%d membership removals, want %d", got, len(want))
	}
}

// TestRemovalGuardHoldsDeletions: a deleted group's memberships and the
// group itself are held together, and released together.
func TestRemovalGuardHoldsDeletions(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	g := v.quietGroups()[0]
	if err := e.run.Org.DeleteGroup(e.actor(), g.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"group.deleted " + g.ID}
	for _, u := range v.members[g.ID] {
		want = append(want, "grant.removed group_membership/"+g.ID+"/"+u)
	}
	opts := fullsync.DefaultOptions()
	opts.RemovalThreshold = 0.0001
	rep := e.mustSync(t, syncOpts{opts: &opts})
	if evs := e.newEvents(t); len(evs) != 0 || !rep.RemovalsHeld || rep.RemovalsHeldCount != int64(len(want)) {
		t.Fatalf("held %v (%d), published %v", rep.RemovalsHeld, rep.RemovalsHeldCount, whats(evs))
	}
	e.mustSyncConnector(t, fullsync.Connector{ID: connector, Options: opts, ConfirmRemovals: true})
	sameSet(t, "confirmed", whats(e.newEvents(t)), want)
}
