package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/testkit"
)

// One suite, run against every Store: what the budget promises must not
// depend on where its state lives.
func TestBudget(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) Store
	}{
		{"memory", func(*testing.T) Store { return NewMemoryStore() }},
		{"redis", func(t *testing.T) Store {
			rdb, prefix := testkit.Redis(t)
			return NewRedisStore(rdb, prefix)
		}},
	}
	suite := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"ShareHoldsInEveryWindowAndIsSpread", testShareOneReplica},
		{"TwoReplicasTogetherStayWithinShare", testShareTwoReplicas},
		{"ConcurrencyShareAcrossReplicas", testConcurrencyShare},
		{"LearnedLimitPacesEveryReplica", testLearnedLimit},
		{"RateLimitedStopsBucketUntilReset", testPauseOn429},
		{"ExhaustedWindowStopsBucketUntilReset", testPauseOnRemainingZero},
		{"ConcurrencyViolationIsNotALimit", testConcurrencyViolation},
		{"ContextCancellation", testCancel},
		{"DeadHoldersSlotExpires", testSlotTTL},
		{"DoneTwiceReleasesOnce", testDoneTwice},
		{"WholeBucketKeepsOneRequestOfHeadroom", testHeadroom},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, st.open(t)) })
			}
		})
	}
}

const org = "acme.okta.com"

func newBudget(t *testing.T, s Store, o Options) *Budget {
	t.Helper()
	b, err := New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run has workers on each budget acquire permits in bucket until d passes,
// and returns the sorted times at which permits were granted.
func run(t *testing.T, budgets []*Budget, workers int, bucket string, d time.Duration) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	for _, b := range budgets {
		for range workers {
			wg.Go(func() {
				for {
					p, err := b.Acquire(ctx, org, bucket)
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("acquire: %v", err)
						}
						return
					}
					now := time.Now()
					mu.Lock()
					times = append(times, now)
					mu.Unlock()
					p.Done(nil, 0)
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	return times
}

// maxInWindow is the largest number of times in any window [t, t+w).
func maxInWindow(times []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// checkPaced asserts the limit (never more than perWindow in any window of
// the simulated clock) and the spread (no burst: k+1 grants never come
// within less than k-1 intervals; the median gap is about one interval).
func checkPaced(t *testing.T, times []time.Time, window time.Duration, perWindow int, d time.Duration) {
	t.Helper()
	iv := window / time.Duration(perWindow)
	if got := maxInWindow(times, window); got > perWindow {
		t.Errorf("%d grants in one window, share allows %d", got, perWindow)
	}
	if ideal := int(d / iv); len(times) < ideal*4/10 {
		t.Fatalf("only %d grants in %v, pace allows %d: budget stalls", len(times), d, ideal)
	}
	const k = 10
	for i := 0; i+k < len(times); i++ {
		if gap := times[i+k].Sub(times[i]); gap < (k-1)*iv {
			t.Errorf("burst: %d grants within %v (interval %v)", k+1, gap, iv)
			break
		}
	}
	if times[2].Sub(times[0]) < iv {
		t.Errorf("burst at the start: 3 grants within %v (interval %v)", times[2].Sub(times[0]), iv)
	}
	gaps := make([]time.Duration, 0, len(times))
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med < iv/2 || med > 2*iv {
		t.Errorf("median gap %v, want about the interval %v", med, iv)
	}
}

// Limit 60/min at scale 300: a simulated minute lasts 200 ms, the 50% share
// is 30 grants per window, one every 6.7 ms.
var paced = Options{Share: 0.5, TimeScale: 300, DefaultLimits: map[string]int{BucketUsers: 60}}

const pacedWindow = 200 * time.Millisecond

func testShareOneReplica(t *testing.T, s Store) {
	d := 1200 * time.Millisecond
	times := run(t, []*Budget{newBudget(t, s, paced)}, 6, BucketUsers, d)
	checkPaced(t, times, pacedWindow, 30, d)
}

func testShareTwoReplicas(t *testing.T, s Store) {
	d := 1200 * time.Millisecond
	a, b := newBudget(t, s, paced), newBudget(t, s, paced)
	times := run(t, []*Budget{a, b}, 3, BucketUsers, d)
	checkPaced(t, times, pacedWindow, 30, d)
	if a.Stats()[BucketUsers].Acquired == 0 || b.Stats()[BucketUsers].Acquired == 0 {
		t.Errorf("a replica starved: %+v %+v", a.Stats(), b.Stats())
	}
}

func testConcurrencyShare(t *testing.T, s Store) {
	o := Options{Share: 0.5, Concurrency: 4, DefaultLimits: map[string]int{BucketGroups: 1_000_000}}
	budgets := []*Budget{newBudget(t, s, o), newBudget(t, s, o)}
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for _, b := range budgets {
		for range 5 {
			wg.Go(func() {
				for {
					p, err := b.Acquire(ctx, org, BucketGroups)
					if err != nil {
						return
					}
					n := inFlight.Add(1)
					for {
						old := peak.Load()
						if n <= old || peak.CompareAndSwap(old, n) {
							break
						}
					}
					time.Sleep(3 * time.Millisecond)
					inFlight.Add(-1)
					p.Done(nil, http.StatusOK)
				}
			})
		}
	}
	wg.Wait()
	if got := peak.Load(); got != 2 {
		t.Errorf("peak in flight %d, want exactly share×concurrency = 2", got)
	}
}

// rlHeader builds Okta's rate-limit headers on an org clock far from the
// local one, so that only Reset - Date can give the right answer.
func rlHeader(limit, remaining int, resetIn int64) http.Header {
	date := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Date", date.Format(http.TimeFormat))
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(date.Unix()+resetIn, 10))
	return h
}

func testLearnedLimit(t *testing.T, s Store) {
	// Default 600/min at scale 600: 300 per 100 ms window, one every 0.33 ms.
	o := Options{Share: 0.5, TimeScale: 600, DefaultLimits: map[string]int{BucketApps: 600}}
	a, b := newBudget(t, s, o), newBudget(t, s, o)
	p, err := a.Acquire(t.Context(), org, BucketApps)
	if err != nil {
		t.Fatal(err)
	}
	// The real ceiling is 30: 15 per window, one every 6.7 ms.
	p.Done(rlHeader(30, 29, 60), http.StatusOK)
	iv := 100 * time.Millisecond / 15
	var times []time.Time
	for i := range 8 {
		r := []*Budget{a, b}[i%2]
		p, err := r.Acquire(t.Context(), org, BucketApps)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Now())
		p.Done(nil, http.StatusOK)
	}
	if span := times[7].Sub(times[0]); span < 6*iv {
		t.Errorf("8 grants after learning a ceiling of 30 took %v, the learned pace needs at least %v", span, 7*iv)
	}
}

// pauseTest checks that after p.Done(h, status) the bucket admits nothing
// for at least want, while another bucket of the org is not held back.
func pauseTest(t *testing.T, s Store, h http.Header, status int, want time.Duration) *Budget {
	t.Helper()
	b := newBudget(t, s, Options{Share: 0.5, TimeScale: 600})
	p, err := b.Acquire(t.Context(), org, BucketUsers)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(h, status)
	start := time.Now()
	var order []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	var usersAt time.Duration
	for _, bucket := range []string{BucketUsers, BucketGroups} {
		wg.Go(func() {
			p, err := b.Acquire(t.Context(), org, bucket)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			order = append(order, bucket)
			if bucket == BucketUsers {
				usersAt = time.Since(start)
			}
			p.Done(nil, http.StatusOK)
		})
	}
	wg.Wait()
	if usersAt < want {
		t.Errorf("bucket admitted %v after the response, want not before the reset %v", usersAt, want)
	}
	if !slices.Equal(order, []string{BucketGroups, BucketUsers}) {
		t.Errorf("order %v: another bucket was held back by the pause", order)
	}
	return b
}

func testPauseOn429(t *testing.T, s Store) {
	// Reset - Date = 60 simulated seconds = 100 ms at scale 600.
	b := pauseTest(t, s, rlHeader(600, 0, 60), http.StatusTooManyRequests, 100*time.Millisecond)
	if st := b.Stats()[BucketUsers]; st.RateLimited != 1 || st.ConcurrencyLimited != 0 {
		t.Errorf("stats %+v, want one rate-limited 429", st)
	}
}

func testPauseOnRemainingZero(t *testing.T, s Store) {
	b := pauseTest(t, s, rlHeader(600, 0, 30), http.StatusOK, 50*time.Millisecond)
	if st := b.Stats()[BucketUsers]; st.RateLimited != 0 {
		t.Errorf("stats %+v, a 200 counted as a 429", st)
	}
}

func testConcurrencyViolation(t *testing.T, s Store) {
	o := Options{Share: 0.5, TimeScale: 600, DefaultLimits: map[string]int{BucketLogs: 600}}
	b := newBudget(t, s, o)
	p, err := b.Acquire(t.Context(), org, BucketLogs)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(rlHeader(0, 0, 60), http.StatusTooManyRequests)
	// A ceiling of 0 must not be learned: the bucket stays at its pace
	// (one per 0.33 ms after a short back-off), so 20 grants come quickly.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for range 20 {
		p, err := b.Acquire(ctx, org, BucketLogs)
		if err != nil {
			t.Fatalf("bucket stalled after a concurrency 429: %v", err)
		}
		p.Done(nil, http.StatusOK)
	}
	if st := b.Stats()[BucketLogs]; st.ConcurrencyLimited != 1 || st.RateLimited != 0 {
		t.Errorf("stats %+v, want one concurrency 429", st)
	}
}

func testCancel(t *testing.T, s Store) {
	b := newBudget(t, s, Options{Share: 0.5, Concurrency: 2})
	// Waiting on the pace: a 429 at scale 1 stops the bucket for a minute.
	p, err := b.Acquire(t.Context(), org, BucketUsers)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(rlHeader(600, 0, 60), http.StatusTooManyRequests)
	waiting := func(bucket string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.Acquire(ctx, org, bucket)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %v, want the context's", bucket, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: returned %v after the context ended", bucket, d)
		}
	}
	waiting(BucketUsers)
	// Waiting on the org's only concurrency slot.
	hold, err := b.Acquire(t.Context(), org, BucketGroups)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Done(nil, http.StatusOK)
	waiting(BucketApps)
	// Waiting behind another local waiter of the same bucket.
	var wg sync.WaitGroup
	wg.Go(func() { waiting(BucketLogs) })
	waiting(BucketLogs)
	wg.Wait()
}

func testSlotTTL(t *testing.T, s Store) {
	const ttl = 150 * time.Millisecond
	o := Options{Share: 0.5, Concurrency: 2, SlotTTL: ttl}
	dead, live := newBudget(t, s, o), newBudget(t, s, o)
	if _, err := dead.Acquire(t.Context(), org, BucketUsers); err != nil { // never Done
		t.Fatal(err)
	}
	start := time.Now()
	p, err := live.Acquire(t.Context(), org, BucketGroups)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < ttl*9/10 {
		t.Errorf("slot of a live holder taken after %v, before its TTL %v", d, ttl)
	}
	p.Done(nil, http.StatusOK)
}

func testDoneTwice(t *testing.T, s Store) {
	b := newBudget(t, s, Options{Share: 0.5, Concurrency: 2})
	p, err := b.Acquire(t.Context(), org, BucketUsers)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(nil, http.StatusOK)
	hold, err := b.Acquire(t.Context(), org, BucketGroups)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Done(nil, http.StatusOK)
	p.Done(nil, http.StatusOK) // must not free hold's slot
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, org, BucketApps); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second Done freed another holder's slot: acquire error %v", err)
	}
}

// A share of 1 is paced at limit-1 per window, a smaller share at exactly
// share x limit. The period is long, so that the time between two Takes is
// negligible against the difference measured.
func testHeadroom(t *testing.T, s Store) {
	ctx := context.Background()
	const period = time.Hour
	for _, tc := range []struct {
		bucket string
		share  float64
		pace   float64 // requests per period
	}{
		{BucketApps, 1, 99},
		{BucketGroups, 0.5, 50},
	} {
		req := TakeRequest{Org: org, Bucket: tc.bucket, DefaultLimit: 100, Share: tc.share, Period: period,
			MaxSlots: 10, SlotTTL: time.Minute, SlotID: "a"}
		if res, err := s.Take(ctx, req); err != nil || !res.OK {
			t.Fatalf("%s: first take: %+v, %v", tc.bucket, res, err)
		}
		req.SlotID = "b"
		res, err := s.Take(ctx, req)
		if err != nil || res.OK || res.Blocker != BlockedByRate {
			t.Fatalf("%s: second take: %+v, %v; want blocked by rate", tc.bucket, res, err)
		}
		want := time.Duration(float64(period) / tc.pace)
		// Between the pace asked and one request more per period.
		if lo := time.Duration(float64(period) / (tc.pace + 0.5)); res.Wait > want || res.Wait < lo {
			t.Errorf("%s share %v: wait %v, want about %v (%v per period)", tc.bucket, tc.share, res.Wait, want, tc.pace)
		}
	}
}
