package catalog_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/catalog"
)

// counter starts the assignment counter as the service runs it; stop it
// early with the returned function (it is stopped at the end anyway).
func (e *env) counter(t *testing.T, d *catalog.Discovery) func() {
	t.Helper()
	c, err := d.FollowAssignments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := c.Stop(context.Background()); err != nil {
				t.Errorf("stop the counter: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) publishApp(t *testing.T, connector string, a *eventsv1.App) {
	t.Helper()
	ev := &eventsv1.ResourceUpserted{Kind: eventsv1.ResourceKind_RESOURCE_KIND_APP, Id: a.GetId(),
		Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_App{App: a}}}
	if _, err := e.bus.Publish(context.Background(), "access."+connector+".resource.app.upserted", subjects.MsgID("t", connector, a.GetId(), a.GetLabel()), ev); err != nil {
		t.Fatal(err)
	}
}

// publishGrant publishes a grant change at revision rev as the sync does;
// again makes a republish that the stream does not drop (as after the
// dedupe window).
func (e *env) publishGrant(t *testing.T, connector string, rev uint64, added bool, g *eventsv1.Grant, again ...string) {
	t.Helper()
	cc := &eventsv1.ChangeContext{ConnectorId: connector, Revision: rev, Cause: eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC}
	verb, ev := subjects.VerbRemoved, proto.Message(&eventsv1.GrantRemoved{Context: cc, Grant: g})
	if added {
		verb, ev = subjects.VerbAdded, &eventsv1.GrantAdded{Context: cc, Grant: g}
	}
	id := subjects.MsgID(append([]string{subjects.DomainAccess, connector, subjects.EntityGrant, g.GetKey(), verb, strconv.FormatUint(rev, 10)}, again...)...)
	if _, err := e.bus.Publish(context.Background(), "access."+connector+".grant."+verb, id, ev); err != nil {
		t.Fatal(err)
	}
}

func appUser(app, user string, scope eventsv1.AppAssignment_Scope, via ...string) *eventsv1.Grant {
	return &eventsv1.Grant{Key: "app_assignment/" + app + "/user/" + user,
		Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: user},
		Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{AppId: app, Scope: scope, ViaGroupIds: via}}}
}

func appGroup(app, group string) *eventsv1.Grant {
	return &eventsv1.Grant{Key: "app_assignment/" + app + "/group/" + group,
		Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: group},
		Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{AppId: app}}}
}

func membership(group, user string) *eventsv1.Grant {
	return &eventsv1.Grant{Key: "group_membership/" + group + "/" + user,
		Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: user},
		Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: group}}}
}

const (
	direct  = eventsv1.AppAssignment_SCOPE_USER
	inGroup = eventsv1.AppAssignment_SCOPE_GROUP
)

// waitCounts waits until the application has exactly users and groups.
func waitCounts(t *testing.T, d *catalog.Discovery, appID string, users, groups int64) *eventsv1.Application {
	t.Helper()
	var app *eventsv1.Application
	waitUntil(t, "application "+appID+" counts "+strconv.FormatInt(users, 10)+" users and "+strconv.FormatInt(groups, 10)+" groups", func() bool {
		var err error
		app, err = d.Application(context.Background(), appID)
		if err != nil {
			t.Fatal(err)
		}
		return app.GetUserAssignmentCount() == users && app.GetGroupAssignmentCount() == groups
	})
	return app
}

// TestAssignmentCounts: an application counts its users, whether assigned
// directly or through a group, and its groups, from the sync's grant
// events; removals count down; memberships and roles are not counted; an
// older event, a redelivered one or an attribute change changes nothing;
// every change of the counts is published.
func TestAssignmentCounts(t *testing.T) {
	e := newEnv(t)
	apps := testkit.Record(t, e.js, subjects.StreamCatalog, subjects.CatalogAppUpserted, true)
	d := e.discovery(t)
	e.counter(t, d)
	slack, wiki := catalog.ApplicationID("c1", "0oa1"), catalog.ApplicationID("c1", "0oa2")
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa1", Label: "Slack", Status: eventsv1.App_STATUS_ACTIVE, Features: []string{"PUSH_NEW_USERS"}})
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa2", Label: "Wiki", Status: eventsv1.App_STATUS_ACTIVE})

	e.publishGrant(t, "c1", 1, true, appUser("0oa1", "00u1", direct))
	e.publishGrant(t, "c1", 2, true, appUser("0oa1", "00u2", inGroup, "00g1"))
	e.publishGrant(t, "c1", 3, true, appGroup("0oa1", "00g1"))
	e.publishGrant(t, "c1", 4, true, membership("00g1", "00u2"))
	e.publishGrant(t, "c1", 5, true, &eventsv1.Grant{Key: "role_assignment/user/00u1/user/SUPER_ADMIN",
		Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u1"},
		Entitlement: &eventsv1.Grant_RoleAssignment{RoleAssignment: &eventsv1.RoleAssignment{RoleType: "SUPER_ADMIN"}}})
	e.publishGrant(t, "c1", 6, true, appUser("0oa2", "00u1", direct))
	// The same app on another connector is another application.
	e.publishGrant(t, "c2", 1, true, appUser("0oa1", "00u9", direct))
	a := waitCounts(t, d, slack, 2, 1)
	if a.GetName() != "Slack" || !a.GetScimProvisioned() {
		t.Fatalf("the counts changed the rest of the record: %v", a)
	}
	waitCounts(t, d, wiki, 1, 0)

	// The counts are published with the application.
	waitUntil(t, "an app event with the counts", func() bool {
		for _, m := range apps.Messages() {
			ev := &eventsv1.ApplicationUpserted{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			if a := ev.GetApplication(); a.GetId() == slack && a.GetUserAssignmentCount() == 2 && a.GetGroupAssignmentCount() == 1 {
				return true
			}
		}
		return false
	})

	// A removal counts down.
	e.publishGrant(t, "c1", 7, false, appUser("0oa1", "00u1", direct))
	waitCounts(t, d, slack, 1, 1)

	// Older, repeated and attribute-only changes: nothing moves. The
	// events are handled in order, so once the last one (a second group)
	// shows, the earlier ones were applied, and the user count is exact.
	e.publishGrant(t, "c1", 7, false, appUser("0oa1", "00u1", direct), "redelivered")
	e.publishGrant(t, "c1", 1, true, appUser("0oa1", "00u1", direct), "redelivered")
	e.publishGrant(t, "c1", 2, true, appUser("0oa1", "00u2", inGroup, "00g1"), "redelivered")
	e.publishGrant(t, "c1", 8, true, appUser("0oa1", "00u2", direct))
	e.publishGrant(t, "c1", 9, false, appUser("0oa1", "00u7", direct)) // never assigned
	e.publishGrant(t, "c1", 10, true, appGroup("0oa1", "00g2"))
	waitCounts(t, d, slack, 1, 2)

	// A group's removal counts its group down; its users are their own grants.
	e.publishGrant(t, "c1", 11, false, appGroup("0oa1", "00g1"))
	e.publishGrant(t, "c1", 12, false, appUser("0oa1", "00u2", inGroup, "00g1"))
	waitCounts(t, d, slack, 0, 1)
}

// TestAssignmentCountsAcrossRestarts: events handled while the counter is
// stopped count when it starts again; a consumer that replays the whole
// stream (every event delivered again) leaves the counts as they are; an
// application discovered after its assignments were counted gets them.
func TestAssignmentCountsAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	d := e.discovery(t)
	stop := e.counter(t, d)
	app := catalog.ApplicationID("c1", "0oa1")
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa1", Label: "Slack", Status: eventsv1.App_STATUS_ACTIVE})
	e.publishGrant(t, "c1", 1, true, appUser("0oa1", "00u1", direct))
	e.publishGrant(t, "c1", 2, true, appUser("0oa1", "00u2", direct))
	waitCounts(t, d, app, 2, 0)

	stop()
	e.publishGrant(t, "c1", 3, false, appUser("0oa1", "00u1", direct))
	e.publishGrant(t, "c1", 4, true, appUser("0oa1", "00u3", inGroup, "00g1"))
	e.publishGrant(t, "c1", 5, true, appGroup("0oa1", "00g1"))
	stop = e.counter(t, d)
	waitCounts(t, d, app, 2, 1)

	// Every event once more, as after a lost consumer: nothing changes.
	// The fence is a new app's assignment, published last.
	stop()
	if err := e.js.DeleteConsumer(context.Background(), subjects.StreamAccess, catalog.AssignmentConsumer); err != nil {
		t.Fatal(err)
	}
	e.counter(t, d)
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa2", Label: "Wiki", Status: eventsv1.App_STATUS_ACTIVE})
	e.publishGrant(t, "c1", 6, true, appUser("0oa2", "00u1", direct))
	waitCounts(t, d, catalog.ApplicationID("c1", "0oa2"), 1, 0)
	waitCounts(t, d, app, 2, 1)

	// Assignments counted before their application exists: the
	// application, once discovered, is recounted.
	e.publishGrant(t, "c1", 7, true, appUser("0oa3", "00u1", direct))
	e.publishGrant(t, "c1", 8, true, appGroup("0oa3", "00g1"))
	waitUntil(t, "the counter has handled every grant", func() bool {
		cons, err := e.js.Consumer(context.Background(), subjects.StreamAccess, catalog.AssignmentConsumer)
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return ci.NumPending == 0 && ci.NumAckPending == 0
	})
	if a, err := d.Application(context.Background(), catalog.ApplicationID("c1", "0oa3")); err != nil || a != nil {
		t.Fatalf("application before discovery: %v %v", a, err)
	}
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa3", Label: "Payroll", Status: eventsv1.App_STATUS_ACTIVE})
	waitCounts(t, d, catalog.ApplicationID("c1", "0oa3"), 1, 1)
}

// TestAssignmentCountsRefuseBadEvents: a grant event that cannot be
// decoded, or an app assignment without a principal type, is dead-lettered
// with the reason; the counter goes on with the next event.
func TestAssignmentCountsRefuseBadEvents(t *testing.T) {
	e := newEnv(t)
	dlq := testkit.Record(t, e.js, subjects.StreamDLQ, "dlq.access.>", true)
	d := e.discovery(t)
	e.counter(t, d)
	e.publishApp(t, "c1", &eventsv1.App{Id: "0oa1", Label: "Slack", Status: eventsv1.App_STATUS_ACTIVE})
	if _, err := e.bus.PublishRaw(context.Background(), "access.c1.grant.added", subjects.MsgID("t", "garbage"),
		string((&eventsv1.GrantAdded{}).ProtoReflect().Descriptor().FullName()), []byte{0xff, 0x01, 0x02}); err != nil {
		t.Fatal(err)
	}
	noType := appUser("0oa1", "00u1", direct)
	noType.Principal.Type = eventsv1.PrincipalType_PRINCIPAL_TYPE_UNSPECIFIED
	e.publishGrant(t, "c1", 1, true, noType)
	e.publishGrant(t, "c1", 2, true, appUser("0oa1", "00u2", direct))
	waitCounts(t, d, catalog.ApplicationID("c1", "0oa1"), 1, 0)
	msgs := dlq.WaitFor(t, 2, wait)
	var reasons []string
	for _, m := range msgs {
		dl := &eventsv1.DeadLetter{}
		if err := proto.Unmarshal(m.Data(), dl); err != nil {
			t.Fatal(err)
		}
		if dl.GetConsumer() != catalog.AssignmentConsumer {
			continue
		}
		reasons = append(reasons, dl.GetReason())
	}
	all := strings.Join(reasons, "\n")
	if len(reasons) != 2 || !strings.Contains(all, "names no user or group principal") {
		t.Fatalf("dead letters of the counter: %q", reasons)
	}
}
