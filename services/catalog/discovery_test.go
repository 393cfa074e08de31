package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/catalog"
)

func (e *env) discovery(t *testing.T) *catalog.Discovery {
	t.Helper()
	d, err := catalog.OpenDiscovery(context.Background(), e.bus, 1, jetstream.MemoryStorage, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := d.Follow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	return d
}

func (e *env) publishUser(t *testing.T, connector string, u *eventsv1.User, seq int) {
	t.Helper()
	subj := "access." + connector + ".resource.user.upserted"
	ev := &eventsv1.ResourceUpserted{Kind: eventsv1.ResourceKind_RESOURCE_KIND_USER, Id: u.GetId(),
		Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: u}}}
	if _, err := e.bus.Publish(context.Background(), subj, subjects.MsgID("t", connector, u.GetId(), string(rune(seq))), ev); err != nil {
		t.Fatal(err)
	}
}

func (e *env) publishDeleted(t *testing.T, connector string, kind eventsv1.ResourceKind, token, id string) {
	t.Helper()
	ev := &eventsv1.ResourceDeleted{Kind: kind, Id: id}
	if _, err := e.bus.Publish(context.Background(), "access."+connector+".resource."+token+".deleted", subjects.MsgID("t", connector, id, "del"), ev); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdentitiesFollowOktaUsers: Okta users become platform identities, one
// per email across connectors; status follows the accounts; an email change
// moves the account; a deleted account leaves an inactive identity.
func TestIdentitiesFollowOktaUsers(t *testing.T) {
	e := newEnv(t)
	events := testkit.Record(t, e.js, subjects.StreamCatalog, "catalog.identity.>", true)
	d := e.discovery(t)
	ctx := context.Background()
	ann := catalog.IdentityID("Ann@Example.com")
	get := func(id string) *eventsv1.Identity {
		idn, err := d.Identity(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return idn
	}
	e.publishUser(t, "c1", &eventsv1.User{Id: "00u1", Email: "Ann@Example.com", FirstName: "Ann", LastName: "Lee", Status: eventsv1.User_STATUS_ACTIVE}, 1)
	e.publishUser(t, "c2", &eventsv1.User{Id: "00uA", Email: "ann@example.com", Status: eventsv1.User_STATUS_SUSPENDED}, 2)
	waitUntil(t, "ann linked to both", func() bool { return len(get(ann).GetOktaUsers()) == 2 })
	idn := get(ann)
	if idn.GetEmail() != "ann@example.com" || idn.GetDisplayName() != "Ann Lee" || idn.GetStatus() != eventsv1.Identity_STATUS_ACTIVE {
		t.Fatalf("identity %v", idn)
	}
	// Deactivated in c1: only the suspended account is left.
	e.publishUser(t, "c1", &eventsv1.User{Id: "00u1", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", Status: eventsv1.User_STATUS_DEPROVISIONED}, 3)
	waitUntil(t, "ann inactive", func() bool { return get(ann).GetStatus() == eventsv1.Identity_STATUS_INACTIVE })
	// The c2 account's email changes: it belongs to someone else now.
	bob := catalog.IdentityID("bob@example.com")
	e.publishUser(t, "c2", &eventsv1.User{Id: "00uA", Email: "bob@example.com", Status: eventsv1.User_STATUS_ACTIVE}, 4)
	waitUntil(t, "bob has the account", func() bool { return get(bob) != nil && len(get(ann).GetOktaUsers()) == 1 })
	if get(bob).GetStatus() != eventsv1.Identity_STATUS_ACTIVE {
		t.Fatalf("bob %v", get(bob))
	}
	e.publishDeleted(t, "c1", eventsv1.ResourceKind_RESOURCE_KIND_USER, "user", "00u1")
	waitUntil(t, "ann without accounts", func() bool { return len(get(ann).GetOktaUsers()) == 0 })
	// Redelivered or repeated events change nothing and publish nothing.
	n := len(events.Messages())
	e.publishUser(t, "c2", &eventsv1.User{Id: "00uA", Email: "bob@example.com", Status: eventsv1.User_STATUS_ACTIVE}, 5)
	time.Sleep(200 * time.Millisecond)
	if len(events.Messages()) != n {
		t.Fatalf("an unchanged user published %d identity events", len(events.Messages())-n)
	}
	last := &eventsv1.IdentityUpserted{}
	if err := proto.Unmarshal(events.Messages()[n-1].Data(), last); err != nil || last.GetIdentity().GetId() == "" {
		t.Fatalf("identity event %v %v", last, err)
	}
}

// TestApplicationsFollowOktaApps: apps are discovered unmanaged, with their
// sign-on mode and features; SCIM-provisioned when PUSH_* or SCIM features
// are on; deletions follow.
func TestApplicationsFollowOktaApps(t *testing.T) {
	e := newEnv(t)
	d := e.discovery(t)
	ctx := context.Background()
	publish := func(a *eventsv1.App) {
		ev := &eventsv1.ResourceUpserted{Kind: eventsv1.ResourceKind_RESOURCE_KIND_APP, Id: a.GetId(),
			Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_App{App: a}}}
		if _, err := e.bus.Publish(ctx, "access.c1.resource.app.upserted", subjects.MsgID("t", a.GetId(), a.GetLabel()), ev); err != nil {
			t.Fatal(err)
		}
	}
	publish(&eventsv1.App{Id: "0oa1", Label: "Slack", Status: eventsv1.App_STATUS_ACTIVE, SignOnMode: eventsv1.SignOnMode_SIGN_ON_MODE_SAML_2_0,
		Features: []string{"PUSH_NEW_USERS", "PUSH_USER_DEACTIVATION"}})
	publish(&eventsv1.App{Id: "0oa2", Label: "Wiki", Status: eventsv1.App_STATUS_ACTIVE, SignOnMode: eventsv1.SignOnMode_SIGN_ON_MODE_BOOKMARK})
	var apps []*eventsv1.Application
	waitUntil(t, "two apps", func() bool {
		var err error
		apps, err = d.Applications(ctx)
		return err == nil && len(apps) == 2
	})
	if a := apps[0]; a.GetName() != "Slack" || a.GetManaged() || !a.GetScimProvisioned() || a.GetSourceConnectorId() != "c1" || a.GetOktaAppId() != "0oa1" {
		t.Fatalf("slack %v", a)
	}
	if a := apps[1]; a.GetName() != "Wiki" || a.GetScimProvisioned() {
		t.Fatalf("wiki %v", a)
	}
	publish(&eventsv1.App{Id: "0oa2", Label: "Wiki 2", Status: eventsv1.App_STATUS_INACTIVE, SignOnMode: eventsv1.SignOnMode_SIGN_ON_MODE_BOOKMARK})
	waitUntil(t, "renamed", func() bool {
		a, err := d.Application(ctx, catalog.ApplicationID("c1", "0oa2"))
		return err == nil && a.GetName() == "Wiki 2" && a.GetStatus() == eventsv1.App_STATUS_INACTIVE
	})
	e.publishDeleted(t, "c1", eventsv1.ResourceKind_RESOURCE_KIND_APP, "app", "0oa1")
	waitUntil(t, "slack gone", func() bool {
		a, err := d.Application(ctx, catalog.ApplicationID("c1", "0oa1"))
		return err == nil && a == nil
	})
}
