package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

// TestStopCutsARunShortAndItResumes: Stop does not wait for a long full
// sync beyond its grace period: the run is cut short (recorded as failed,
// not completed), Stop reports no error, the request is handed back, and a
// worker started afterwards runs it to completion.
func TestStopCutsARunShortAndItResumes(t *testing.T) {
	// Every Okta answer takes 150 ms: the small org's sync takes far longer
	// than the grace period below.
	e := newEnvWith(t, oktasim.Config{Profile: "small", Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.NoLimits,
		Faults: oktasim.Faults{Latency: 150 * time.Millisecond}})
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	ctx := context.Background()
	w := e.worker(t, worker.Config{Concurrency: 1, StopGrace: 100 * time.Millisecond, BusyRetry: 100 * time.Millisecond})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.Request(ctx, e.bus, request("c1")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.started") >= 1 })
	// A minute would let the run finish; the grace cuts it short first.
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Stop(sctx); err != nil {
		t.Fatalf("Stop after the grace period: %v, want nil", err)
	}
	if sctx.Err() != nil {
		t.Fatal("Stop waited for its whole context instead of the grace period")
	}
	rs, err := e.runs.List(ctx, "c1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].GetState() != syncv1.RunState_RUN_STATE_FAILED {
		t.Fatalf("runs after Stop: %v, want one failed (cut short) run", rs)
	}
	if n := count(e.syncs.Messages(), "sync.c1.run.completed"); n != 0 {
		t.Fatalf("%d runs completed before Stop returned, want 0", n)
	}
	// The request was handed back: a new worker takes it and completes it.
	w2 := e.worker(t, worker.Config{Concurrency: 1})
	if err := w2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w2.Stop(ctx) }()
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.completed") >= 1 })
}
