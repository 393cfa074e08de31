package connectors_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

const (
	notConnected = eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED
	syncing      = eventsv1.ConnectorStatus_CONNECTOR_STATUS_SYNCING
	connected    = eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED
	errStatus    = eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func started(run string, min int) *eventsv1.SyncRunStarted {
	return &eventsv1.SyncRunStarted{ConnectorId: "c1", RunId: run, StartedAt: timestamppb.New(t0.Add(time.Duration(min) * time.Minute))}
}

func completed(run string, min int) *eventsv1.SyncRunCompleted {
	return &eventsv1.SyncRunCompleted{ConnectorId: "c1", RunId: run, StartedAt: timestamppb.New(t0.Add(time.Duration(min) * time.Minute)),
		Capabilities: &eventsv1.Capabilities{ReviewGroupMembership: true, AdminRoleTypes: []string{"READ_ONLY_ADMIN"}}}
}

func failed(run string, min int, msg string) *eventsv1.SyncRunFailed {
	return &eventsv1.SyncRunFailed{ConnectorId: "c1", RunId: run, StartedAt: timestamppb.New(t0.Add(time.Duration(min) * time.Minute)),
		Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN, Message: msg}
}

// apply applies one event and publishes (marks) its change like the catalog does.
func apply(t *testing.T, s *connectors.Store, ev any) connectors.Applied {
	t.Helper()
	ctx := context.Background()
	var res connectors.Applied
	var err error
	switch ev := ev.(type) {
	case *eventsv1.SyncRunStarted:
		res, err = s.ApplyRunStarted(ctx, ev)
	case *eventsv1.SyncRunCompleted:
		res, err = s.ApplyRunCompleted(ctx, ev)
	case *eventsv1.SyncRunFailed:
		res, err = s.ApplyRunFailed(ctx, ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Change != nil {
		if err := s.MarkPublished(ctx, res.Change); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func wantChange(t *testing.T, res connectors.Applied, prev, now eventsv1.ConnectorStatus) {
	t.Helper()
	if res.Change == nil {
		t.Fatalf("no status change, want %v -> %v (record %v)", prev, now, res.Connector)
	}
	if res.Change.Previous != prev || res.Change.Connector.GetStatus() != now {
		t.Fatalf("change %v -> %v, want %v -> %v", res.Change.Previous, res.Change.Connector.GetStatus(), prev, now)
	}
	ev := res.Change.Event()
	if ev.GetPreviousStatus() != prev || ev.GetConnector().GetRevision() == 0 || ev.GetChangedAt() == nil {
		t.Fatalf("event %v", ev)
	}
}

func TestRunLifecycle(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")

	wantChange(t, apply(t, e.store, started("r1", 0)), notConnected, syncing)
	res := apply(t, e.store, completed("r1", 0))
	wantChange(t, res, syncing, connected)
	if c := res.Connector; c.GetStatusReason() != "" || !c.GetCapabilities().GetReviewGroupMembership() {
		t.Fatalf("connected record: %v", c)
	}

	// A resync of a connected connector keeps it CONNECTED: nothing to publish.
	if res := apply(t, e.store, started("r2", 10)); res.Change != nil || res.Connector.GetStatus() != connected {
		t.Fatalf("resync start: %+v", res)
	}
	res = apply(t, e.store, failed("r2", 10, "Okta rejected the API token (E0000011): create a new token and update the connector"))
	wantChange(t, res, connected, errStatus)
	if !strings.Contains(res.Connector.GetStatusReason(), "E0000011") {
		t.Fatalf("reason %q", res.Connector.GetStatusReason())
	}
	// The same failure again (another run) changes nothing.
	if res := apply(t, e.store, failed("r2b", 11, "Okta rejected the API token (E0000011): create a new token and update the connector")); res.Change != nil {
		t.Fatalf("repeated failure published: %+v", res.Change)
	}
	// A start after an error shows SYNCING again.
	wantChange(t, apply(t, e.store, started("r3", 20)), errStatus, syncing)
	c := completed("r3", 20)
	c.RemovalsHeld, c.RemovalsHeldCount = true, 12
	res = apply(t, e.store, c)
	wantChange(t, res, syncing, connected)
	if r := res.Connector.GetStatusReason(); !strings.Contains(r, "removals held: run `accessbus sync confirm-removals --connector c1`") || !strings.Contains(r, "12") {
		t.Fatalf("removals-held reason %q", r)
	}
	// A reason change alone is published too: the held removals are cleared.
	wantChange(t, apply(t, e.store, completed("r4", 30)), connected, connected)
}

func TestRunEventsOutOfOrderAndRedelivered(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")

	// completed arrives before its started: the late started is stale.
	wantChange(t, apply(t, e.store, completed("r1", 0)), notConnected, connected)
	if res := apply(t, e.store, started("r1", 0)); !res.Stale || res.Change != nil {
		t.Fatalf("late started: %+v", res)
	}
	// An older run's failure arriving after a newer run completed is stale.
	if res := apply(t, e.store, failed("r0", -5, "old failure")); !res.Stale {
		t.Fatalf("old failure: %+v", res)
	}
	// Redelivery of the latest event, already published: nothing to publish.
	if res := apply(t, e.store, completed("r1", 0)); res.Stale || res.Change != nil || res.Connector.GetStatus() != connected {
		t.Fatalf("redelivered completed: %+v", res)
	}
	got, _ := e.store.Get(context.Background(), "c1")
	if got.GetStatus() != connected {
		t.Fatalf("status regressed to %v", got.GetStatus())
	}
}

// TestRedeliveryRepublishesUnpublishedChange: when the status change was
// stored but its publish failed (not marked), the redelivered event yields
// the same change again, with the same revision and so the same message id.
func TestRedeliveryRepublishesUnpublishedChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	first, err := e.store.ApplyRunFailed(ctx, failed("r1", 0, "bad token"))
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, first, notConnected, errStatus)
	// No MarkPublished: the publish "failed".
	again, err := e.store.ApplyRunFailed(ctx, failed("r1", 0, "bad token"))
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, again, notConnected, errStatus)
	if again.Change.MsgID() != first.Change.MsgID() {
		t.Fatal("the republished change has another message id")
	}
	if err := e.store.MarkPublished(ctx, again.Change); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.store.ApplyRunFailed(ctx, failed("r1", 0, "bad token")); res.Change != nil {
		t.Fatal("published change offered again")
	}
	// Marking an old change after a newer event landed is a no-op.
	if _, err := e.store.ApplyRunStarted(ctx, started("r2", 5)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkPublished(ctx, first.Change); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkPublished(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRunCancelled(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	cancelled := func(run string, min int) *eventsv1.SyncRunFailed {
		f := failed(run, min, "the sync service shut down during the run; it runs again")
		f.Reason = eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED
		return f
	}
	apply(t, e.store, started("r1", 0))
	wantChange(t, apply(t, e.store, cancelled("r1", 0)), syncing, notConnected)
	apply(t, e.store, completed("r2", 5))
	apply(t, e.store, started("r3", 10))
	if res := apply(t, e.store, cancelled("r3", 10)); res.Change != nil || res.Connector.GetStatus() != connected {
		t.Fatalf("cancelled resync changed a connected connector: %+v", res)
	}
}

func TestFailedMessageRedactedAndDefaulted(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	res := apply(t, e.store, failed("r1", 0, "Okta said no to SSWS "+rawToken))
	if strings.Contains(res.Connector.GetStatusReason(), rawToken) {
		t.Fatalf("token in status reason: %q", res.Connector.GetStatusReason())
	}
	res = apply(t, e.store, failed("r2", 1, ""))
	if !strings.Contains(res.Connector.GetStatusReason(), "INVALID_TOKEN") {
		t.Fatalf("empty message reason %q", res.Connector.GetStatusReason())
	}
}

func TestRunEventUnknownConnector(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.store.ApplyRunStarted(ctx, started("r1", 0)); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("unknown connector: %v", err)
	}
	bad := completed("r1", 0)
	bad.ConnectorId = "Bad.Id"
	if _, err := e.store.ApplyRunCompleted(ctx, bad); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("invalid id: %v", err)
	}
}

// TestConcurrentRunEvents applies an older and a newer run event at the same
// time from two Stores (two catalog replicas); whichever wins the races, the
// record ends at the newer event's status.
func TestConcurrentRunEvents(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	other := openStore(t, e.js, e.key)
	for i := range 10 {
		base := i * 10
		older := failed("old", base, "older failure")
		newer := completed("new", base+1)
		if i%2 == 1 { // and the other way round
			older.StartedAt, newer.StartedAt = newer.StartedAt, older.StartedAt
			older.RunId, newer.RunId = "new", "old"
		}
		done := make(chan error, 2)
		go func() { _, err := e.store.ApplyRunFailed(ctx, older); done <- err }()
		go func() { _, err := other.ApplyRunCompleted(ctx, newer); done <- err }()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		want := connected
		if i%2 == 1 {
			want = errStatus
		}
		got, _ := e.store.Get(ctx, "c1")
		if got.GetStatus() != want {
			t.Fatalf("round %d: status %v, want %v", i, got.GetStatus(), want)
		}
	}
}
