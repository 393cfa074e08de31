package executor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/provisioning/internal/expiry"
	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// scheduler starts an expiry scheduler as replica name on the shared lease
// store; stop ends it.
func (e *env) scheduler(t *testing.T, store lease.Store, name string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &expiry.Scheduler{Bus: e.bus, Ledger: e.ledger, Leases: lease.New(store, name, nil), Every: 20 * time.Millisecond, LeaseTTL: 3 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func (e *env) waitNoTimer(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := e.ledger.GetGrant(context.Background(), "c1", key); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer of %s is still there", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExpiryRevokesOnceWithTwoReplicas: a grant for 1.5 s is warned about
// (at half its life), then revoked by exactly one of two schedulers, with
// one revoke request and one result; the ledger lists it while active.
func TestExpiryRevokesOnceWithTwoReplicas(t *testing.T) {
	e := newEnv(t, envOptions{cfg: Config{WarnBefore: time.Hour}})
	expiring := testkit.Record(t, e.js, subjects.StreamProvisioning, "provisioning.*.expiring", true)
	requests := testkit.Record(t, e.js, subjects.StreamProvisioning, "provisioning.*.request", true)
	store := lease.NewMemory()
	e.scheduler(t, store, "replica-a")
	e.scheduler(t, store, "replica-b")
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	res := e.do(t, forDuration(newRequest("tb", "c1", grant, membership(u, g)), 1500*time.Millisecond))
	wantSuccess(t, res, false)
	if res.GetExpiresAt() == nil {
		t.Fatal("a time-bound grant's result has no expires_at")
	}
	active, err := e.ledger.Grants(context.Background(), "c1")
	if err != nil || len(active) != 1 || active[0].GetRequestId() != "tb" {
		t.Fatalf("active grants %v %v", active, err)
	}
	rev := e.result(t, request.ExpiryRequestID("tb"))
	wantSuccess(t, rev, false)
	if rev.GetAction() != revoke || rev.GetRequestedBy() != request.ExpiryRequester {
		t.Fatalf("expiry result %v", rev)
	}
	if at := rev.GetCompletedAt().AsTime(); at.Before(res.GetExpiresAt().AsTime()) {
		t.Fatalf("revoked at %s, before the expiry %s", at, res.GetExpiresAt().AsTime())
	}
	e.waitNoTimer(t, res.GetGrantKey())
	time.Sleep(300 * time.Millisecond) // a second revoke or warning would be stored by now
	if n := len(e.resultsOf(t, request.ExpiryRequestID("tb"))); n != 1 {
		t.Fatalf("%d expiry results", n)
	}
	n := 0
	for _, m := range requests.Messages() {
		r := &eventsv1.ProvisioningRequest{}
		_ = proto.Unmarshal(m.Data(), r)
		if r.GetRequestId() == request.ExpiryRequestID("tb") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d revoke requests stored", n)
	}
	warnings := expiring.Messages()
	if len(warnings) != 1 {
		t.Fatalf("%d expiring warnings", len(warnings))
	}
	w := &eventsv1.ProvisioningExpiring{}
	if err := proto.Unmarshal(warnings[0].Data(), w); err != nil || w.GetRequestId() != "tb" || w.GetGrantee().GetId() != u ||
		w.GetGrantKey() != res.GetGrantKey() || !w.GetExpiresAt().AsTime().Equal(res.GetExpiresAt().AsTime()) {
		t.Fatalf("warning %v %v", w, err)
	}
}

// TestExpiryAcrossRestart: no scheduler runs when the grant expires; the
// one started later revokes it.
func TestExpiryAcrossRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	store := lease.NewMemory()
	stop := e.scheduler(t, store, "before")
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	wantSuccess(t, e.do(t, forDuration(newRequest("tb-restart", "c1", grant, membership(u, g)), time.Second)), false)
	stop()
	time.Sleep(1500 * time.Millisecond)
	if rs := e.resultsOf(t, request.ExpiryRequestID("tb-restart")); len(rs) != 0 {
		t.Fatal("revoked with no scheduler running")
	}
	e.scheduler(t, store, "after")
	wantSuccess(t, e.result(t, request.ExpiryRequestID("tb-restart")), false)
}

// TestTimerReplacedOrEnded: a new grant of the same access replaces the
// timer (the old one's expiry revokes nothing), a manual revoke ends it,
// and a removal in Okta (a grant.removed on ACCESS) ends it too.
func TestTimerReplacedOrEnded(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	g := e.org.oktaGroups[0]
	u := e.freeUser(t, g, "")
	key := request.GrantKey(membership(u, g))

	wantSuccess(t, e.do(t, forDuration(newRequest("short", "c1", grant, membership(u, g)), time.Hour)), false)
	wantSuccess(t, e.do(t, newRequest("permanent", "c1", grant, membership(u, g))), true)
	if _, _, err := e.ledger.GetGrant(ctx, "c1", key); err == nil {
		t.Fatal("a grant without expiry left the old timer")
	}
	// The old timer's revoke, had it been queued already, does nothing.
	late := newRequest(request.ExpiryRequestID("short"), "c1", revoke, membership(u, g))
	late.RequestedBy = request.ExpiryRequester
	res := e.do(t, late)
	wantSuccess(t, res, true)
	if !strings.Contains(res.GetMessage(), "replaced") {
		t.Errorf("late expiry revoke: %s", res.GetMessage())
	}

	wantSuccess(t, e.do(t, forDuration(newRequest("tb2", "c1", grant, membership(u, g)), time.Hour)), true)
	if _, _, err := e.ledger.GetGrant(ctx, "c1", key); err != nil {
		t.Fatalf("the new time-bound grant has no timer: %v", err)
	}
	wantSuccess(t, e.do(t, newRequest("manual-revoke", "c1", revoke, membership(u, g))), false)
	if _, _, err := e.ledger.GetGrant(ctx, "c1", key); err == nil {
		t.Fatal("a manual revoke left the timer")
	}

	// Removed in Okta: the sync publishes grant.removed; the follower ends
	// the timer.
	wantSuccess(t, e.do(t, forDuration(newRequest("tb3", "c1", grant, membership(u, g)), time.Hour)), false)
	sub, err := expiry.Follow(ctx, e.bus, e.ledger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(ctx) }()
	subj := "access.c1.grant.removed"
	old := &eventsv1.GrantRemoved{Context: &eventsv1.ChangeContext{ConnectorId: "c1", ObservedAt: tsAgo(time.Hour)},
		Grant: &eventsv1.Grant{Key: key}}
	if _, err := e.bus.Publish(ctx, subj, "old-removal", old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, _, err := e.ledger.GetGrant(ctx, "c1", key); err != nil {
		t.Fatal("a removal older than the grant ended its timer")
	}
	now := &eventsv1.GrantRemoved{Context: &eventsv1.ChangeContext{ConnectorId: "c1", ObservedAt: tsAgo(0)},
		Grant: &eventsv1.Grant{Key: key}}
	if _, err := e.bus.Publish(ctx, subj, "removal", now); err != nil {
		t.Fatal(err)
	}
	e.waitNoTimer(t, key)
	if _, _, err := e.ledger.GetGrant(ctx, "c1", key); err != ledger.ErrNotFound && err == nil {
		t.Fatal("timer still there")
	}
}

func tsAgo(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(-d)) }
