package worker_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"

	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

// recorder notes when each request left, per rate-limit bucket.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	at   map[string][]time.Time
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b := ratelimit.BucketOf(req.Method, req.URL.Path)
	r.mu.Lock()
	r.at[b] = append(r.at[b], time.Now())
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestHalfShareNeverExceedsHalfInAnyWindow: a connector at the default 50%
// share never sends more than half of a bucket's limit in any window. The
// org has Integrator Free limits (apps 20, groups 100 a minute) so that the
// small org's sync needs several windows in the busiest buckets; the
// simulator's clock runs 100 times faster (a window lasts 0.6 s).
func TestHalfShareNeverExceedsHalfInAnyWindow(t *testing.T) {
	ctx := context.Background()
	const scale = 100
	e := newEnvWith(t, oktasim.Config{Profile: "small", Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.Free, TimeScale: scale})
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	rec := &recorder{next: e.tr, at: map[string][]time.Time{}}
	w, err := worker.New(worker.Deps{Bus: e.bus, Connectors: e.conns, State: e.state, Runs: e.runs, Leases: lease.New(e.leases, "t", nil),
		RateStore: ratelimit.NewMemoryStore()}, worker.Config{ScheduleEvery: -1, TimeScale: scale, HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := w.Run(ctx, request("c1"))
	if err != nil || run.GetState() != syncv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("run: %v %s", err, run.GetMessage())
	}
	if run.GetHttp_429() != 0 {
		t.Errorf("%d 429s at a 50%% share", run.GetHttp_429())
	}
	window := time.Minute / scale
	busy := 0
	for bucket, limit := range oktasim.Free.PerMinute {
		times := rec.at[bucket]
		half := limit / 2
		if len(times) > half {
			busy++
		}
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		// One request of slack: the permit is granted on the budget's
		// schedule, the request leaves a goroutine switch later.
		if got := maxInWindow(times, window); got > half+1 {
			t.Errorf("bucket %s: %d requests in one %s window, half the limit is %d", bucket, got, window, half)
		}
	}
	if busy < 2 {
		t.Fatalf("only %d buckets needed more than one window: the test shows nothing", busy)
	}
}

// maxInWindow is the most times in any window [t, t+w).
func maxInWindow(times []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
