package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
)

func open(t *testing.T) *ledger.Store {
	t.Helper()
	js := testkit.StartNATS(t).JetStream(t)
	s, err := ledger.Open(context.Background(), js, ledger.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(id string) *eventsv1.ProvisioningRequest {
	return &eventsv1.ProvisioningRequest{RequestId: id, ConnectorId: "c1", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT}
}

// TestBeginOnceAcrossReplicas: concurrent deliveries of one request make
// one record; each counts as an attempt; a completed record is returned
// as it is.
func TestBeginOnceAcrossReplicas(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Begin(ctx, req("any id: with spaces / and dots.")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rec, rev, err := s.Get(ctx, "c1", "any id: with spaces / and dots.")
	if err != nil || rec.GetAttempts() != 8 || rec.GetState() != provv1.RequestState_REQUEST_STATE_RECEIVED {
		t.Fatalf("record %v rev %d: %v", rec, rev, err)
	}
	rec.State = provv1.RequestState_REQUEST_STATE_COMPLETED
	rec.Result = &eventsv1.ProvisioningResult{RequestId: "any id: with spaces / and dots.", Outcome: eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED}
	if _, err := s.Update(ctx, rec, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, rec, rev); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	again, _, err := s.Begin(ctx, req("any id: with spaces / and dots."))
	if err != nil || again.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED || again.GetAttempts() != 8 {
		t.Fatalf("begin of a completed request: %v %v", again, err)
	}
	if _, _, err := s.Get(ctx, "c1", "never"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	list, err := s.List(ctx, "c1", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
}

// TestWaitSeesCompletion: Wait returns once the record is completed.
func TestWaitSeesCompletion(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	done := make(chan *provv1.RequestRecord, 1)
	go func() {
		rec, err := s.Wait(ctx, "c1", "r1")
		if err != nil {
			t.Error(err)
		}
		done <- rec
	}()
	time.Sleep(50 * time.Millisecond)
	rec, rev, err := s.Begin(ctx, req("r1"))
	if err != nil {
		t.Fatal(err)
	}
	rec.State = provv1.RequestState_REQUEST_STATE_COMPLETED
	if _, err := s.Update(ctx, rec, rev); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED {
			t.Fatalf("wait returned %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return")
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(wctx, "c1", "r-never"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("wait for a request never received: %v", err)
	}
}

// TestGrants: timers are listed soonest first, replaced by key, and
// deleted only by the request that made them when asked so.
func TestGrants(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	put := func(key, reqID string, in time.Duration) {
		t.Helper()
		if err := s.PutGrant(ctx, &provv1.TimeBoundGrant{ConnectorId: "c1", GrantKey: key, RequestId: reqID, ExpiresAt: timestamppb.New(now.Add(in))}); err != nil {
			t.Fatal(err)
		}
	}
	put("group_membership/g1/u1", "r1", 2*time.Hour)
	put("group_membership/g1/u2", "r2", time.Hour)
	put("group_membership/g1/u1", "r3", 3*time.Hour) // a new grant replaces the timer
	gs, err := s.Grants(ctx, "c1")
	if err != nil || len(gs) != 2 || gs[0].GetRequestId() != "r2" || gs[1].GetRequestId() != "r3" {
		t.Fatalf("grants %v %v", gs, err)
	}
	if err := s.DeleteGrant(ctx, "c1", "group_membership/g1/u1", "r1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetGrant(ctx, "c1", "group_membership/g1/u1"); err != nil {
		t.Fatalf("the old request ended the new timer: %v", err)
	}
	if err := s.DeleteGrant(ctx, "c1", "group_membership/g1/u1", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetGrant(ctx, "c1", "group_membership/g1/u1"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteGrant(ctx, "c1", "group_membership/g1/u1", ""); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	all, err := s.Grants(ctx, "")
	if err != nil || len(all) != 1 {
		t.Fatalf("all connectors: %v %v", all, err)
	}
}
