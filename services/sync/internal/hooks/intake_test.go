package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// pipeline is an env with an Intake consuming OKTA_HOOKS into a sink.
type pipeline struct {
	*env
	sink   *recordingSink
	intake *hooks.Intake
	sub    *bus.Subscription
	co     hooks.Coalescer
	// mk makes the Coalescer (default: in memory).
	mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer
}

func newPipeline(t *testing.T, sink *recordingSink) *pipeline {
	t.Helper()
	return newPipelineWith(t, sink, nil)
}

func newPipelineWith(t *testing.T, sink *recordingSink, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) *pipeline {
	t.Helper()
	if mk == nil {
		mk = hooks.NewMemoryCoalescer
	}
	p := &pipeline{env: newEnv(t, hooks.ReceiverOptions{}), sink: sink, mk: mk}
	p.start(t)
	return p
}

// start runs a fresh Intake and Coalescer on the env, as a restarted
// process would.
func (p *pipeline) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p.co = p.mk(p.sink, testCoalescing)
	in, err := hooks.NewIntake(ctx, p.bus, p.co, hooks.IntakeOptions{Storage: jetstream.MemoryStorage, RetryBase: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := in.Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.intake, p.sub = in, sub
	t.Cleanup(func() { p.stop(t) })
}

func (p *pipeline) stop(t *testing.T) {
	if p.sub == nil {
		return
	}
	if err := p.sub.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	_ = p.co.Close()
	p.sub = nil
}

func (p *pipeline) post(t *testing.T, body []byte) {
	t.Helper()
	if status, resp := p.call(t, http.MethodPost, "c1", hookSecret, body); status != http.StatusOK {
		t.Fatalf("delivery answered %d %s", status, resp)
	}
}

// waitFor polls cond until it holds; it fails the test after a generous
// deadline, which bounds a hang and asserts no speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDuplicatedAndReplayedEventsAreHandedOffOnce: an event that comes again
// in another delivery, later or after a restart, is not handed off again.
func TestDuplicatedAndReplayedEventsAreHandedOffOnce(t *testing.T) {
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	e1 := membershipEvent("e1", "group.user_membership.add", "00g1", "00u1")
	e2 := ev{UUID: "e2", EventType: "user.lifecycle.suspend", Outcome: hooks.Outcome{Result: "SUCCESS"}, Target: []hooks.Actor{{ID: "00u2", Type: "User"}}}
	// The same event twice in one delivery counts once.
	p.post(t, delivery(t, "d1", e1, e2, e1))
	waitFor(t, "e1 and e2 handed off", func() bool { h := sink.handedUUIDs(); return h["e1"] == 1 && h["e2"] == 1 })

	e3 := membershipEvent("e3", "group.user_membership.remove", "00g1", "00u3")
	p.post(t, delivery(t, "d2", e1, e3))
	waitFor(t, "e3 handed off", func() bool { return sink.handedUUIDs()["e3"] == 1 })
	waitFor(t, "d2 acked", func() bool { return p.intake.Stats().Deliveries == 2 })
	if h := sink.handedUUIDs(); h["e1"] != 1 {
		t.Fatalf("e1 handed off %d times", h["e1"])
	}
	// A restart (new process state, same JetStream) remembers it too.
	p.stop(t)
	p.start(t)
	p.post(t, delivery(t, "d3", e1, e2, e3))
	waitFor(t, "d3 acked", func() bool { return p.intake.Stats().Deliveries == 1 })
	if st := p.intake.Stats(); st.Duplicates != 3 || st.HandedOff != 0 {
		t.Fatalf("after restart: %+v", st)
	}
	for u, n := range sink.handedUUIDs() {
		if n != 1 {
			t.Fatalf("%s handed off %d times", u, n)
		}
	}
	// What was handed off is what the events name.
	var got []*eventsv1.SyncTarget
	for _, c := range sink.succeeded() {
		for _, w := range c.work {
			got = append(got, w.Target)
		}
	}
	want := []*eventsv1.SyncTarget{narrow(kGM, "00g1", user, "00u1"), tgt(kUser, "00u2"), narrow(kGM, "00g1", user, "00u3")}
	if len(got) != len(want) {
		t.Fatalf("handed off %s, want %s", keys(got), keys(want))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || proto.Equal(g, w)
		}
		if !found {
			t.Fatalf("handed off %s, missing %s", keys(got), hooks.TargetKey(w))
		}
	}
}

// TestFailedHandoffIsRetriedFromTheStream: the delivery is not acked while
// its handoff fails, and its events are handed off when the sink recovers.
func TestFailedHandoffIsRetriedFromTheStream(t *testing.T) {
	sink := &recordingSink{fail: func(n int) error {
		if n < 2 {
			return errors.New("okta answered 503")
		}
		return nil
	}}
	p := newPipeline(t, sink)
	p.post(t, delivery(t, "d1", membershipEvent("e1", "group.user_membership.add", "00g1", "00u1")))
	waitFor(t, "e1 handed off after two failures", func() bool { return sink.handedUUIDs()["e1"] == 1 })
	waitFor(t, "d1 acked", func() bool { return p.intake.Stats().Deliveries == 1 })
	sink.mu.Lock()
	calls := len(sink.calls)
	sink.mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d sink calls, want 2 failures and 1 success", calls)
	}
}

// TestUndecodableDeliveryIsDeadLettered: a stored body that is not a
// delivery (written past the receiver) goes to the DLQ with the reason.
func TestUndecodableDeliveryIsDeadLettered(t *testing.T) {
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	dlq := testkit.Record(t, p.js, subjects.StreamDLQ, "dlq.okta.>", true)
	if _, err := p.bus.PublishRaw(context.Background(), "okta.c1.hook", "garbage-1", "application/json", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	msgs := dlq.WaitFor(t, 1, 20*time.Second)
	var dl eventsv1.DeadLetter
	if err := proto.Unmarshal(msgs[0].Data(), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.GetErrorClass() != eventsv1.DeadLetter_ERROR_CLASS_UNDECODABLE || dl.GetOriginalSubject() != "okta.c1.hook" || string(dl.GetPayload()) != "not json" {
		t.Fatalf("dead letter %v", &dl)
	}
	if st := p.intake.Stats(); st.Undecodable != 1 || len(sink.succeeded()) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestIrrelevantAndUnmappedEventsAreCountedNotHandedOff.
func TestIrrelevantAndUnmappedEventsAreCountedNotHandedOff(t *testing.T) {
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	failed := membershipEvent("f1", "group.user_membership.add", "00g1", "00u1")
	failed.Outcome.Result = "FAILURE"
	p.post(t, delivery(t, "d1",
		ev{UUID: "s1", EventType: "user.session.start", Target: []hooks.Actor{{ID: "00u1", Type: "User"}}},
		ev{UUID: "r1", EventType: "iam.role.update", Target: []hooks.Actor{{ID: "cr0", Type: "CUSTOM_ROLE"}}},
		failed,
	))
	waitFor(t, "d1 acked", func() bool { return p.intake.Stats().Deliveries == 1 })
	st := p.intake.Stats()
	if st.Events != 3 || st.Irrelevant != 1 || st.Unmapped != 2 || st.HandedOff != 0 || len(sink.succeeded()) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBurstOfMembershipEventsThroughThePipeline: 1,000 membership events on
// one group, in 20 deliveries of 50 as Okta batches them, cost a handful of
// handoffs re-reading the whole group, not 1,000 member reads.
func TestBurstOfMembershipEventsThroughThePipeline(t *testing.T) {
	coalescers(t, func(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
		testBurstThroughThePipeline(t, mk)
	})
}

func testBurstThroughThePipeline(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
	sink := &recordingSink{}
	p := newPipelineWith(t, sink, mk)
	var wg sync.WaitGroup
	for d := range 20 {
		var evs []ev
		for i := d * 50; i < (d+1)*50; i++ {
			evs = append(evs, membershipEvent(fmt.Sprintf("m%04d", i), "group.user_membership.add", "00g1", fmt.Sprintf("00u%04d", i)))
		}
		body := delivery(t, fmt.Sprintf("d%02d", d), evs...)
		wg.Go(func() { p.post(t, body) })
	}
	wg.Wait()
	waitFor(t, "1,000 events handed off", func() bool { return len(sink.handedUUIDs()) == 1000 })
	calls := sink.succeeded()
	if len(calls) > 5 {
		t.Fatalf("%d handoffs for 1,000 events on one group", len(calls))
	}
	for _, c := range calls {
		if len(c.work) != 1 || !proto.Equal(c.work[0].Target, tgt(kGM, "00g1")) {
			t.Fatalf("handoff of %d targets, first %s: want the whole group", len(c.work), hooks.TargetKey(c.work[0].Target))
		}
	}
	t.Logf("1,000 events in 20 deliveries: %d handoffs", len(calls))
}

// TestHandleEventsFeedsTheSamePipeline: the System Log catch-up hands its
// events in directly; one already handed off by the hook is dropped.
func TestHandleEventsFeedsTheSamePipeline(t *testing.T) {
	sink := &recordingSink{}
	p := newPipeline(t, sink)
	p.post(t, delivery(t, "d1", membershipEvent("e1", "group.user_membership.add", "00g1", "00u1")))
	// The delivery is done once e1 is handed off and remembered (which
	// follows the handoff: a repeat costs a resync, a lost one a change).
	waitFor(t, "e1 handed off and remembered", func() bool {
		return sink.handedUUIDs()["e1"] == 1 && p.intake.Stats().Deliveries == 1
	})
	err := p.intake.HandleEvents(context.Background(), "c1", []hooks.LogEvent{
		{UUID: "e1", EventType: "group.user_membership.add", Targets: []hooks.Actor{{ID: "00u1", Type: "User"}, {ID: "00g1", Type: "UserGroup"}}},
		{UUID: "e9", EventType: "group.lifecycle.delete", Targets: []hooks.Actor{{ID: "00g1", Type: "UserGroup"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := sink.handedUUIDs(); h["e1"] != 1 || h["e9"] != 1 {
		t.Fatalf("handed off %v", h)
	}
	// A failed handoff reports an error and remembers nothing.
	sink.mu.Lock()
	sink.fail = func(int) error { return errors.New("down") }
	sink.mu.Unlock()
	ev := []hooks.LogEvent{{UUID: "e10", EventType: "group.lifecycle.create", Targets: []hooks.Actor{{ID: "00g2", Type: "UserGroup"}}}}
	if err := p.intake.HandleEvents(context.Background(), "c1", ev); !errors.Is(err, hooks.ErrHandoff) {
		t.Fatalf("got %v, want ErrHandoff", err)
	}
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	if err := p.intake.HandleEvents(context.Background(), "c1", ev); err != nil {
		t.Fatal(err)
	}
	if h := sink.handedUUIDs(); h["e10"] != 1 {
		t.Fatalf("e10 handed off %d times after a failure", h["e10"])
	}
}
