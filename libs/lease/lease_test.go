package lease_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/testkit"
)

// stores runs f against every Store implementation.
func stores(t *testing.T, f func(t *testing.T, s lease.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, lease.NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testkit.Redis(t)
		f(t, lease.NewRedis(rdb, prefix))
	})
}

func TestOneHolderAtATime(t *testing.T) {
	stores(t, func(t *testing.T, s lease.Store) {
		ctx := context.Background()
		a, b := lease.New(s, "a", nil), lease.New(s, "b", nil)
		_, la, err := a.Acquire(ctx, "connector-1", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Acquire(ctx, "connector-1", 3*time.Second); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("second holder: got %v, want ErrHeld", err)
		}
		if _, lo, err := b.Acquire(ctx, "connector-2", 3*time.Second); err != nil {
			t.Fatalf("another name must be free: %v", err)
		} else {
			_ = lo.Release(ctx)
		}
		if held, _ := b.Held(ctx, "connector-1"); !held {
			t.Fatal("Held says free while a holds it")
		}
		if err := la.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := la.Release(ctx); err != nil {
			t.Fatalf("second release: %v", err)
		}
		_, lb, err := b.Acquire(ctx, "connector-1", 3*time.Second)
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		_ = lb.Release(ctx)
	})
}

// TestRenewalOutlivesTTL: a holder working longer than the TTL keeps its
// lease because it renews it.
func TestRenewalOutlivesTTL(t *testing.T) {
	stores(t, func(t *testing.T, s lease.Store) {
		ctx := context.Background()
		a, b := lease.New(s, "a", nil), lease.New(s, "b", nil)
		hctx, la, err := a.Acquire(ctx, "c", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		time.Sleep(2500 * time.Millisecond)
		if hctx.Err() != nil {
			t.Fatalf("holder's context ended: %v", context.Cause(hctx))
		}
		if _, _, err := b.Acquire(ctx, "c", time.Second); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("after 2.5 TTLs of renewals: got %v, want ErrHeld", err)
		}
	})
}

// TestDeadHolderExpires: a holder that stops renewing (a crashed replica)
// loses its lease after the TTL, and a stale token cannot free or renew the
// new holder's lease.
func TestDeadHolderExpires(t *testing.T) {
	stores(t, func(t *testing.T, s lease.Store) {
		ctx := context.Background()
		if ok, err := s.TryAcquire(ctx, "c", "dead/1", time.Second); err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		b := lease.New(s, "b", nil)
		deadline := time.Now().Add(5 * time.Second)
		var lb *lease.Lease
		for {
			_, l, err := b.Acquire(ctx, "c", 2*time.Second)
			if err == nil {
				lb = l
				break
			}
			if !errors.Is(err, lease.ErrHeld) || time.Now().After(deadline) {
				t.Fatalf("dead holder's lease never expired: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		defer lb.Release(ctx)
		if ok, _ := s.Renew(ctx, "c", "dead/1", time.Second); ok {
			t.Fatal("a stale token renewed the new holder's lease")
		}
		if err := s.Release(ctx, "c", "dead/1"); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.Holder(ctx, "c"); h == "" || h == "dead/1" {
			t.Fatalf("stale release freed the new holder's lease: holder %q", h)
		}
	})
}

// TestTakenOverCancelsWork: when the store says the lease is gone, the
// holder's context is cancelled with ErrLost.
func TestTakenOverCancelsWork(t *testing.T) {
	stores(t, func(t *testing.T, s lease.Store) {
		ctx := context.Background()
		hctx, l, err := lease.New(s, "a", nil).Acquire(ctx, "c", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		h, _ := s.Holder(ctx, "c")
		if err := s.Release(ctx, "c", h); err != nil { // as if it expired
			t.Fatal(err)
		}
		if ok, _ := s.TryAcquire(ctx, "c", "other/1", 5*time.Second); !ok {
			t.Fatal("could not take the freed lease")
		}
		select {
		case <-hctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("holder kept working after losing its lease")
		}
		if !errors.Is(context.Cause(hctx), lease.ErrLost) {
			t.Fatalf("cause %v, want ErrLost", context.Cause(hctx))
		}
	})
}

// TestContendedNeverOverlaps: many holders racing for one lease never hold
// it at the same time.
func TestContendedNeverOverlaps(t *testing.T) {
	stores(t, func(t *testing.T, s lease.Store) {
		ctx := context.Background()
		var inside, maxInside, rounds atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			m := lease.New(s, string(rune('a'+i)), nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 30 {
					_, l, err := m.Acquire(ctx, "c", 2*time.Second)
					if err != nil {
						time.Sleep(time.Millisecond)
						continue
					}
					n := inside.Add(1)
					if n > maxInside.Load() {
						maxInside.Store(n)
					}
					time.Sleep(time.Millisecond)
					inside.Add(-1)
					rounds.Add(1)
					_ = l.Release(ctx)
				}
			}()
		}
		wg.Wait()
		if maxInside.Load() != 1 {
			t.Fatalf("%d holders at once", maxInside.Load())
		}
		if rounds.Load() == 0 {
			t.Fatal("nobody ever held the lease")
		}
	})
}

func TestInvalid(t *testing.T) {
	m := lease.New(lease.NewMemory(), "a", nil)
	if _, _, err := m.Acquire(context.Background(), "", time.Minute); !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if _, _, err := m.Acquire(context.Background(), "c", time.Millisecond); !errors.Is(err, lease.ErrInvalid) {
		t.Fatalf("tiny TTL: %v", err)
	}
}
