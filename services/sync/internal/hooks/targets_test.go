package hooks_test

import (
	"strings"
	"testing"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

var (
	tUser   = hooks.Actor{ID: "00u1", Type: "User", AlternateID: "ann@example.com"}
	tUser2  = hooks.Actor{ID: "00u2", Type: "User"}
	tGroup  = hooks.Actor{ID: "00g1", Type: "UserGroup", AlternateID: "unknown"}
	tApp    = hooks.Actor{ID: "0oa1", Type: "AppInstance"}
	tAppU   = hooks.Actor{ID: "0ua1", Type: "AppUser"}
	tRole   = hooks.Actor{ID: "cr01", Type: "CUSTOM_ROLE"}
	tRS     = hooks.Actor{ID: "iam1", Type: "RESOURCE_SET"}
	tPerm   = hooks.Actor{ID: "okta.users.read", Type: "PERMISSION"}
	user    = eventsv1.PrincipalType_PRINCIPAL_TYPE_USER
	group   = eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP
	kGM     = eventsv1.SyncTarget_KIND_GROUP_MEMBERS
	kAA     = eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS
	kUser   = eventsv1.SyncTarget_KIND_USER
	kGroup  = eventsv1.SyncTarget_KIND_GROUP
	kApp    = eventsv1.SyncTarget_KIND_APP
	kURoles = eventsv1.SyncTarget_KIND_USER_ROLES
	kGRoles = eventsv1.SyncTarget_KIND_GROUP_ROLES
	kRS     = eventsv1.SyncTarget_KIND_RESOURCE_SET
)

func tgt(k eventsv1.SyncTarget_Kind, id string) *eventsv1.SyncTarget {
	return &eventsv1.SyncTarget{Kind: k, Id: id}
}

func narrow(k eventsv1.SyncTarget_Kind, id string, pt eventsv1.PrincipalType, pid string) *eventsv1.SyncTarget {
	return &eventsv1.SyncTarget{Kind: k, Id: id, Member: &eventsv1.Principal{Type: pt, Id: pid}}
}

func keys(ts []*eventsv1.SyncTarget) string {
	var s []string
	for _, t := range ts {
		s = append(s, hooks.TargetKey(t))
	}
	return strings.Join(s, " | ")
}

// TestEveryGovernanceEventTypeMapsToItsTarget covers every governance
// event type of shared/okta/FACTS.md, with target[] in the order Okta
// (the simulator) sends it and reversed: the mapping must not rely on it.
func TestEveryGovernanceEventTypeMapsToItsTarget(t *testing.T) {
	cases := []struct {
		types   []string
		targets []hooks.Actor
		want    []*eventsv1.SyncTarget
	}{
		{[]string{"group.user_membership.add", "group.user_membership.remove"},
			[]hooks.Actor{tUser, tGroup}, []*eventsv1.SyncTarget{narrow(kGM, "00g1", user, "00u1")}},
		{[]string{"application.user_membership.add", "application.user_membership.remove", "application.user_membership.update"},
			[]hooks.Actor{tAppU, tApp, tUser}, []*eventsv1.SyncTarget{narrow(kAA, "0oa1", user, "00u1")}},
		{[]string{"group.application_assignment.add", "group.application_assignment.remove", "group.application_assignment.update"},
			[]hooks.Actor{tGroup, tApp}, []*eventsv1.SyncTarget{narrow(kAA, "0oa1", group, "00g1")}},
		{[]string{"user.lifecycle.create", "user.lifecycle.activate", "user.lifecycle.deactivate", "user.lifecycle.suspend",
			"user.lifecycle.unsuspend", "user.lifecycle.reactivate", "user.lifecycle.delete.initiated", "user.lifecycle.delete.completed",
			"user.account.update_profile", "user.account.lock", "user.account.unlock", "user.account.unlock_by_admin"},
			[]hooks.Actor{tUser}, []*eventsv1.SyncTarget{tgt(kUser, "00u1")}},
		{[]string{"group.lifecycle.create", "group.lifecycle.delete", "group.profile.update"},
			[]hooks.Actor{tGroup}, []*eventsv1.SyncTarget{tgt(kGroup, "00g1")}},
		{[]string{"application.lifecycle.create", "application.lifecycle.update", "application.lifecycle.activate",
			"application.lifecycle.deactivate", "application.lifecycle.delete"},
			[]hooks.Actor{tApp}, []*eventsv1.SyncTarget{tgt(kApp, "0oa1")}},
		{[]string{"user.account.privilege.grant", "user.account.privilege.revoke"},
			[]hooks.Actor{tUser}, []*eventsv1.SyncTarget{tgt(kURoles, "00u1")}},
		{[]string{"group.privilege.grant", "group.privilege.revoke"},
			[]hooks.Actor{tGroup}, []*eventsv1.SyncTarget{tgt(kGRoles, "00g1")}},
		{[]string{"iam.resourceset.create", "iam.resourceset.update", "iam.resourceset.delete",
			"iam.resourceset.resources.add", "iam.resourceset.resources.delete", "iam.resourceset.resources.update"},
			[]hooks.Actor{tRS}, []*eventsv1.SyncTarget{tgt(kRS, "iam1")}},
		// A binding changes the resource set and the role assignments of
		// every principal it names.
		{[]string{"iam.resourceset.bindings.add", "iam.resourceset.bindings.delete"},
			[]hooks.Actor{tRS, tRole, tUser, tGroup, tUser2},
			[]*eventsv1.SyncTarget{tgt(kURoles, "00u1"), tgt(kURoles, "00u2"), tgt(kGRoles, "00g1"), tgt(kRS, "iam1")}},
		// Custom role definitions: governed, but no SyncTarget kind re-reads
		// a custom role, so only a full sync picks them up (see docs/realtime.md).
		{[]string{"iam.role.create", "iam.role.update", "iam.role.delete", "iam.role.permissions.add", "iam.role.permissions.delete"},
			[]hooks.Actor{tRole, tPerm}, nil},
	}
	for _, c := range cases {
		for _, typ := range c.types {
			t.Run(typ, func(t *testing.T) {
				wantClass := hooks.Governed
				if c.want == nil {
					wantClass = hooks.GovernedUnmapped
				}
				if got := hooks.Classify(typ); got != wantClass {
					t.Fatalf("Classify = %s, want %s", got, wantClass)
				}
				ev := hooks.LogEvent{UUID: "u", EventType: typ, Outcome: hooks.Outcome{Result: "SUCCESS"}, Targets: c.targets}
				if got, want := keys(hooks.Targets(ev)), keys(c.want); got != want {
					t.Fatalf("Targets = %s, want %s", got, want)
				}
				rev := make([]hooks.Actor, len(c.targets))
				for i, a := range c.targets {
					rev[len(rev)-1-i] = a
				}
				ev.Targets = rev
				if got, want := keys(hooks.Targets(ev)), keys(c.want); got != want {
					t.Fatalf("with target[] reversed: Targets = %s, want %s", got, want)
				}
			})
		}
	}
}

func TestTargetsOfOddEvents(t *testing.T) {
	for name, c := range map[string]struct {
		ev   hooks.LogEvent
		want []*eventsv1.SyncTarget
	}{
		"irrelevant type": {hooks.LogEvent{EventType: "user.session.start", Targets: []hooks.Actor{tUser}}, nil},
		"rule events are not membership events": {
			hooks.LogEvent{EventType: "group.user_membership.rule.trigger", Targets: []hooks.Actor{tUser, tGroup}}, nil},
		"failed outcome": {hooks.LogEvent{EventType: "group.user_membership.add", Outcome: hooks.Outcome{Result: "FAILURE"},
			Targets: []hooks.Actor{tUser, tGroup}}, nil},
		"no outcome is taken as success": {hooks.LogEvent{EventType: "group.profile.update", Targets: []hooks.Actor{tGroup}},
			[]*eventsv1.SyncTarget{tgt(kGroup, "00g1")}},
		"membership without the user re-reads the group": {
			hooks.LogEvent{EventType: "group.user_membership.remove", Targets: []hooks.Actor{tGroup}},
			[]*eventsv1.SyncTarget{tgt(kGM, "00g1")}},
		"membership without the group": {hooks.LogEvent{EventType: "group.user_membership.add", Targets: []hooks.Actor{tUser}}, nil},
		"target without id":            {hooks.LogEvent{EventType: "user.lifecycle.suspend", Targets: []hooks.Actor{{Type: "User"}}}, nil},
		"repeated targets": {hooks.LogEvent{EventType: "user.lifecycle.suspend", Targets: []hooks.Actor{tUser, tUser}},
			[]*eventsv1.SyncTarget{tgt(kUser, "00u1")}},
		"no targets": {hooks.LogEvent{EventType: "application.lifecycle.update"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if got, want := keys(hooks.Targets(c.ev)), keys(c.want); got != want {
				t.Fatalf("Targets = %s, want %s", got, want)
			}
		})
	}
	if hooks.Classify("user.session.start") != hooks.Irrelevant || hooks.Classify("") != hooks.Irrelevant {
		t.Fatal("Classify of irrelevant types")
	}
	for c, s := range map[hooks.Class]string{hooks.Irrelevant: "irrelevant", hooks.Governed: "governed", hooks.GovernedUnmapped: "governed_unmapped"} {
		if c.String() != s {
			t.Fatalf("%d.String() = %s", c, c.String())
		}
	}
}
