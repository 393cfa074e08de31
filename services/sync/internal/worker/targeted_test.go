package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

func targetedRequest(id, connector string, targets ...*eventsv1.SyncTarget) *eventsv1.SyncRequest {
	return &eventsv1.SyncRequest{RequestId: id, ConnectorId: connector, Mode: eventsv1.SyncMode_SYNC_MODE_TARGETED,
		Targets: targets, RequestedBy: "hooks"}
}

func membersOf(group, user string) *eventsv1.SyncTarget {
	return &eventsv1.SyncTarget{Kind: eventsv1.SyncTarget_KIND_GROUP_MEMBERS, Id: group,
		Member: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: user}}
}

// TestTargetedRequestsThroughTheQueue: targeted requests on the work queue
// publish exactly their changes and leave the run history alone; one that
// comes before any full sync runs a full sync instead.
func TestTargetedRequestsThroughTheQueue(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	w := e.worker(t, worker.Config{TargetedRetry: 50 * time.Millisecond})
	ctx := context.Background()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	publish := func(r *eventsv1.SyncRequest) {
		t.Helper()
		subj, err := subjects.SyncRequest("c1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.bus.Publish(ctx, subj, r.GetRequestId(), r); err != nil {
			t.Fatal(err)
		}
	}
	org := e.sim.Org
	by := &oktasim.LogActor{ID: e.sim.Generated.Admins.SuperAdmin, Type: "User"}
	grp, err := org.CreateGroup(by, "OKTA_GROUP", "Targeted", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	usr, err := org.CreateUser(by, oktasim.UserProfile{Login: "w.t@example.com", Email: "w.t@example.com", FirstName: "W", LastName: "T"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	g, u := grp.ID, usr.ID

	// Before any full sync: the request becomes one.
	publish(targetedRequest("t0", "c1", membersOf(g, u)))
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.completed") == 1 })
	runs, err := e.runs.List(ctx, "c1", 10)
	if err != nil || len(runs) != 1 || !strings.Contains(runs[0].GetReason(), "no full sync has completed") {
		t.Fatalf("runs %v (%v), want one full run saying why", runs, err)
	}
	first := len(e.access.Messages())

	// A membership added in Okta, then three targeted requests for it.
	if ok, err := org.AddMember(by, g, u); err != nil || !ok {
		t.Fatalf("add member: %v %v", ok, err)
	}
	for _, id := range []string{"t1", "t2", "t3"} {
		publish(targetedRequest(id, "c1", membersOf(g, u)))
	}
	want := "access.c1.grant.added"
	waitUntil(t, e.access, func(ms []jetstream.Msg) bool { return count(ms[first:], want) >= 1 })
	time.Sleep(300 * time.Millisecond) // a duplicate would come now
	if n := count(e.access.Messages()[first:], want); n != 1 {
		t.Fatalf("%d grant.added events for one membership", n)
	}
	if runs, _ := e.runs.List(ctx, "c1", 10); len(runs) != 1 {
		t.Fatalf("targeted runs were recorded in the run history: %d runs", len(runs))
	}
	if n := count(e.syncs.Messages(), "sync.c1.run.started"); n != 1 {
		t.Errorf("targeted runs published run events: %d run.started", n)
	}
}
