package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

// recordingSink is the Sink of the tests: it records each handoff, and
// fails the calls fail says to fail.
type recordingSink struct {
	mu    sync.Mutex
	calls []sinkCall
	fail  func(n int) error
	// gate, when set, blocks each call until it is closed.
	gate chan struct{}
}

type sinkCall struct {
	connector string
	work      []hooks.Work
	err       error
}

func (s *recordingSink) Resync(ctx context.Context, connector string, work []hooks.Work) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.fail != nil {
		err = s.fail(len(s.calls))
	}
	s.calls = append(s.calls, sinkCall{connector, work, err})
	return err
}

// succeeded returns the handoffs that succeeded.
func (s *recordingSink) succeeded() []sinkCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkCall
	for _, c := range s.calls {
		if c.err == nil {
			out = append(out, c)
		}
	}
	return out
}

// handedUUIDs counts, per event uuid, how many successful handoffs named it.
func (s *recordingSink) handedUUIDs() map[string]int {
	n := map[string]int{}
	for _, c := range s.succeeded() {
		for _, w := range c.work {
			for _, u := range w.EventUUIDs {
				n[u]++
			}
		}
	}
	return n
}

var testCoalescing = hooks.CoalescerOptions{Window: 100 * time.Millisecond, HandoffTimeout: 5 * time.Second}

// coalescers runs f against every Coalescer: in memory and in Redis. mk
// makes another coalescer of the same kind; for Redis, one sharing the
// same keys, as another replica would.
func coalescers(t *testing.T, f func(t *testing.T, mk func(sink hooks.Sink, opts hooks.CoalescerOptions) hooks.Coalescer)) {
	t.Run("memory", func(t *testing.T) {
		f(t, func(sink hooks.Sink, opts hooks.CoalescerOptions) hooks.Coalescer {
			c := hooks.NewMemoryCoalescer(sink, opts)
			t.Cleanup(func() { _ = c.Close() })
			return c
		})
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testkit.Redis(t)
		f(t, func(sink hooks.Sink, opts hooks.CoalescerOptions) hooks.Coalescer {
			c, err := hooks.NewRedisCoalescer(rdb, prefix, sink, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		})
	})
}

func memberWork(group string, i int) hooks.Work {
	return hooks.Work{Target: narrow(kGM, group, user, fmt.Sprintf("00u%04d", i)), EventUUIDs: []string{fmt.Sprintf("ev-%s-%04d", group, i)}}
}

// TestBurstOnOneGroupIsAHandfulOfHandoffs: 1,000 membership events on one
// group, in deliveries of 50 arriving together, become one or a few
// handoffs that re-read the whole group, not 1,000 reads of one member.
func TestBurstOnOneGroupIsAHandfulOfHandoffs(t *testing.T) {
	coalescers(t, func(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
		sink := &recordingSink{}
		co := mk(sink, testCoalescing)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for d := range 20 {
			wg.Go(func() {
				var work []hooks.Work
				for i := d * 50; i < (d+1)*50; i++ {
					work = append(work, memberWork("00g1", i))
				}
				errs <- co.Submit(context.Background(), "c1", work)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		calls := sink.succeeded()
		if len(calls) == 0 || len(calls) > 5 {
			t.Fatalf("%d handoffs for a burst of 1,000 events on one group", len(calls))
		}
		for _, c := range calls {
			if c.connector != "c1" || len(c.work) != 1 || hooks.TargetKey(c.work[0].Target) != hooks.TargetKey(tgt(kGM, "00g1")) {
				t.Fatalf("handoff %+v: want the whole group's members", c)
			}
		}
		got := sink.handedUUIDs()
		if len(got) != 1000 {
			t.Fatalf("%d of 1,000 event uuids handed off", len(got))
		}
	})
}

// TestWindowKeepsEachTargetOnce: repeated events on one target are one
// target in the handoff, with all their uuids; a few members of a group
// stay narrow; a member of a group read whole is folded into it.
func TestWindowKeepsEachTargetOnce(t *testing.T) {
	coalescers(t, func(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
		sink := &recordingSink{}
		co := mk(sink, testCoalescing)
		var wg sync.WaitGroup
		submit := func(w ...hooks.Work) {
			wg.Go(func() {
				if err := co.Submit(context.Background(), "c1", w); err != nil {
					t.Error(err)
				}
			})
		}
		submit(hooks.Work{Target: tgt(kUser, "00u1"), EventUUIDs: []string{"a"}})
		submit(hooks.Work{Target: tgt(kUser, "00u1"), EventUUIDs: []string{"b"}}, hooks.Work{Target: narrow(kGM, "00g1", user, "00u1"), EventUUIDs: []string{"c"}})
		submit(hooks.Work{Target: tgt(kUser, "00u1"), EventUUIDs: []string{"a"}}, hooks.Work{Target: narrow(kGM, "00g2", user, "00u1"), EventUUIDs: []string{"d"}})
		submit(hooks.Work{Target: tgt(kGM, "00g2"), EventUUIDs: []string{"e"}})
		wg.Wait()
		calls := sink.succeeded()
		if len(calls) == 0 {
			t.Fatal("no handoff")
		}
		// However the submissions fell into windows, no handoff holds a
		// target twice, and every uuid was handed off.
		for _, c := range calls {
			seen := map[string]bool{}
			for _, w := range c.work {
				k := hooks.TargetKey(w.Target)
				if seen[k] {
					t.Fatalf("target %s twice in one handoff", k)
				}
				seen[k] = true
			}
		}
		if got := sink.handedUUIDs(); len(got) != 5 {
			t.Fatalf("uuids handed off: %v", got)
		}
		if len(calls) == 1 {
			want := keys([]*eventsv1.SyncTarget{narrow(kGM, "00g1", user, "00u1"), tgt(kGM, "00g2"), tgt(kUser, "00u1")})
			var got []*eventsv1.SyncTarget
			for _, w := range calls[0].work {
				got = append(got, w.Target)
			}
			if keys(got) != want {
				t.Fatalf("one window handed off %s, want %s", keys(got), want)
			}
			if u := calls[0].work[2].EventUUIDs; fmt.Sprint(u) != "[a b]" {
				t.Fatalf("uuids of the user: %v", u)
			}
			if u := calls[0].work[1].EventUUIDs; fmt.Sprint(u) != "[d e]" {
				t.Fatalf("uuids of the whole group (folded member): %v", u)
			}
		}
	})
}

// TestFailedHandoffLosesNothing: the submitters of a failed handoff get
// ErrHandoff (with the sink's classification), and their work, submitted
// again, is handed off.
func TestFailedHandoffLosesNothing(t *testing.T) {
	coalescers(t, func(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
		sink := &recordingSink{fail: func(n int) error {
			switch n {
			case 0:
				return errors.New("okta answered 503")
			case 1:
				return bus.Permanentf("connector deleted")
			}
			return nil
		}}
		co := mk(sink, testCoalescing)
		w := memberWork("00g1", 1)
		err := co.Submit(context.Background(), "c1", []hooks.Work{w})
		if !errors.Is(err, hooks.ErrHandoff) || bus.IsPermanent(err) {
			t.Fatalf("first handoff: got %v, want a transient ErrHandoff", err)
		}
		err = co.Submit(context.Background(), "c1", []hooks.Work{w})
		if !errors.Is(err, hooks.ErrHandoff) || !bus.IsPermanent(err) {
			t.Fatalf("second handoff: got %v, want a permanent ErrHandoff", err)
		}
		if err := co.Submit(context.Background(), "c1", []hooks.Work{w}); err != nil {
			t.Fatal(err)
		}
		if got := sink.handedUUIDs(); got[w.EventUUIDs[0]] != 1 {
			t.Fatalf("handed off %v", got)
		}
	})
}

func TestSubmitEndsWithItsContextAndAfterClose(t *testing.T) {
	coalescers(t, func(t *testing.T, mk func(hooks.Sink, hooks.CoalescerOptions) hooks.Coalescer) {
		sink := &recordingSink{gate: make(chan struct{})}
		co := mk(sink, testCoalescing)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- co.Submit(ctx, "c1", []hooks.Work{memberWork("00g1", 1)}) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled submit: got %v", err)
		}
		if err := co.Submit(context.Background(), "c1", nil); err != nil {
			t.Fatalf("empty submit: %v", err)
		}
		close(sink.gate)
		if err := co.Close(); err != nil {
			t.Fatal(err)
		}
		if err := co.Submit(context.Background(), "c1", []hooks.Work{memberWork("00g1", 2)}); !errors.Is(err, hooks.ErrClosed) {
			t.Fatalf("after Close: got %v, want ErrClosed", err)
		}
	})
}

// TestReplicasShareAWindow: two replicas on one Redis hand off a burst that
// reaches both of them once, and both learn the outcome.
func TestReplicasShareAWindow(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	sinkA, sinkB := &recordingSink{}, &recordingSink{}
	a, err := hooks.NewRedisCoalescer(rdb, prefix, sinkA, testCoalescing)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hooks.NewRedisCoalescer(rdb, prefix, sinkB, testCoalescing)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 40 {
		co := a
		if i%2 == 1 {
			co = b
		}
		wg.Go(func() {
			if err := co.Submit(context.Background(), "c1", []hooks.Work{memberWork("00g1", i%4)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	handoffs := len(sinkA.succeeded()) + len(sinkB.succeeded())
	if handoffs == 0 || handoffs > 3 {
		t.Fatalf("%d handoffs across two replicas", handoffs)
	}
	uuids := sinkA.handedUUIDs()
	for u, n := range sinkB.handedUUIDs() {
		uuids[u] += n
	}
	if len(uuids) != 4 {
		t.Fatalf("uuids handed off: %v", uuids)
	}

	// A failure on the replica holding the window reaches the other's submitters.
	sinkA.fail = func(int) error { return errors.New("okta down") }
	sinkB.fail = sinkA.fail
	errs := make(chan error, 2)
	for _, co := range []hooks.Coalescer{a, b} {
		wg.Go(func() { errs <- co.Submit(context.Background(), "c2", []hooks.Work{memberWork("00g9", 1)}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, hooks.ErrHandoff) {
			t.Fatalf("got %v, want ErrHandoff on both replicas", err)
		}
	}
}

// TestDeadWindowHolderIsNotWaitedForever: a replica that opened a window
// and died never reports; those that joined give up with ErrHandoff, so
// their deliveries are retried.
func TestDeadWindowHolderIsNotWaitedForever(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	opts := hooks.CoalescerOptions{Window: 20 * time.Millisecond, HandoffTimeout: 50 * time.Millisecond}
	// The dead replica's window, as its join left it.
	if err := rdb.Set(context.Background(), prefix+"hookco:{c1}:window", "dead-1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	co, err := hooks.NewRedisCoalescer(rdb, prefix, sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if err := co.Submit(context.Background(), "c1", []hooks.Work{memberWork("00g1", 1)}); !errors.Is(err, hooks.ErrHandoff) {
		t.Fatalf("got %v, want ErrHandoff", err)
	}
	if len(sink.succeeded()) != 0 {
		t.Fatal("handed off a window this replica does not hold")
	}
}
