package ratelimit

import (
	"context"
	"errors"
	"fmt"
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
		{"LateAdmissionKeepsTheSchedule", testCatchUp},
		{"CatchUpNeverFillsAWindowPastTheShare", testWindowCap},
		{"LongerWindowIsLearnedFromResetMinusDate", testLearnLongerWindow},
		{"ShorterWindowIsLearnedFromTwoResets", testLearnShorterWindow},
		{"MinuteWindowIsNotRelearned", testLearnMinute},
		{"TurnTakenAheadOfItsTime", testLead},
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

// admissions wraps a Store and notes when each Take admitted a request:
// as close to the store's own decision as a caller can see it.
type admissions struct {
	Store
	mu    sync.Mutex
	times []time.Time
}

func (a *admissions) Take(ctx context.Context, r TakeRequest) (TakeResult, error) {
	res, err := a.Store.Take(ctx, r)
	if err == nil && res.OK {
		now := time.Now()
		a.mu.Lock()
		a.times = append(a.times, now)
		a.mu.Unlock()
	}
	return res, err
}

func (a *admissions) sorted() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.times)
	slices.SortFunc(out, func(x, y time.Time) int { return x.Compare(y) })
	return out
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

// checkPaced asserts the limit (never more than perWindow admissions in any
// window of the simulated clock, as the store admitted them) and the spread
// of the grants (no burst: k+1 grants never come within less than k-4
// intervals, where an even pace puts them k intervals apart: a late
// grant's catch-up brings the next ones up to an interval closer, the lead
// takes a turn a little early, and a loaded machine that runs the first of
// them late squeezes the rest; a burst would put them within a few
// microseconds. The median gap is about one interval).
func checkPaced(t *testing.T, times, admitted []time.Time, window time.Duration, perWindow int, d time.Duration) {
	t.Helper()
	iv := window / time.Duration(perWindow)
	if got := maxInWindow(admitted, window); got > perWindow {
		t.Errorf("%d admissions in one window, share allows %d", got, perWindow)
	}
	if ideal := int(d / iv); len(times) < ideal*4/10 {
		t.Fatalf("only %d grants in %v, pace allows %d: budget stalls", len(times), d, ideal)
	}
	const k = 10
	for i := 0; i+k < len(times); i++ {
		if gap := times[i+k].Sub(times[i]); gap < (k-4)*iv {
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
	adm := &admissions{Store: s}
	times := run(t, []*Budget{newBudget(t, adm, paced)}, 6, BucketUsers, d)
	checkPaced(t, times, adm.sorted(), pacedWindow, 30, d)
}

func testShareTwoReplicas(t *testing.T, s Store) {
	d := 1200 * time.Millisecond
	adm := &admissions{Store: s}
	a, b := newBudget(t, adm, paced), newBudget(t, adm, paced)
	times := run(t, []*Budget{a, b}, 3, BucketUsers, d)
	checkPaced(t, times, adm.sorted(), pacedWindow, 30, d)
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

// takeUntilOK takes one admission of req, waiting as told, and returns when
// it was admitted.
func takeUntilOK(t *testing.T, s Store, req TakeRequest) time.Time {
	t.Helper()
	for {
		res, err := s.Take(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK {
			return time.Now()
		}
		time.Sleep(res.Wait)
	}
}

// tries runs a timing scenario up to three times, each on an org of its
// own, and fails with the last attempt's problems when none had none: a
// host busy enough to oversleep by most of an interval must not fail what
// the scenario shows when it does not.
func tries(t *testing.T, scenario func(org string) []string) {
	t.Helper()
	var problems []string
	for i := range 3 {
		if problems = scenario(fmt.Sprintf("%s-%d", t.Name(), i)); len(problems) == 0 {
			return
		}
		t.Logf("attempt %d: %v", i+1, problems)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// An admission less than the tolerance late keeps the schedule: the next
// one is due an interval after the one missed. Later than that, the
// schedule restarts from the late admission.
func testCatchUp(t *testing.T, s Store) {
	// 100 per 20 s: one every 200 ms; the tolerance is one interval.
	const iv = 200 * time.Millisecond
	tries(t, func(org string) (problems []string) {
		req := TakeRequest{Org: org, Bucket: BucketApps, DefaultLimit: 101, Share: 1, Period: 20 * time.Second,
			MaxSlots: 10, SlotTTL: time.Minute}
		next := func(id string) TakeResult {
			req.SlotID = id
			res, err := s.Take(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		req.SlotID = "a"
		start := takeUntilOK(t, s, req)
		// Due at start+iv; admitted half an interval late.
		time.Sleep(time.Until(start.Add(iv + iv/2)))
		if res := next("b"); !res.OK {
			return []string{fmt.Sprintf("late take refused: %+v", res)}
		}
		// Kept: the next is due at start+2iv, about half an interval from now.
		if res := next("c"); res.OK || res.Wait > iv*3/4 {
			problems = append(problems, fmt.Sprintf("after a take half an interval late: %+v, want a wait of about half an interval (%v)", res, iv/2))
		}
		// Two intervals late: the schedule restarts from now.
		req.SlotID = "d"
		at := takeUntilOK(t, s, req)
		time.Sleep(time.Until(at.Add(3 * iv)))
		if res := next("e"); !res.OK {
			return append(problems, fmt.Sprintf("late take refused: %+v", res))
		}
		if res := next("f"); res.OK || res.Wait < iv*3/4 {
			problems = append(problems, fmt.Sprintf("after a take two intervals late: %+v, want a wait of about an interval (%v)", res, iv))
		}
		return problems
	})
}

// With a tolerance longer than an interval, a late admission followed by
// the schedule would put pace+1 admissions in one window: the log of the
// last admissions holds the last one back until a window and the margin
// after the late one.
func testWindowCap(t *testing.T, s Store) {
	// 3 per 600 ms (one every 200 ms), tolerance 300 ms, margin 50 ms.
	const (
		period = 600 * time.Millisecond
		iv     = 200 * time.Millisecond
		margin = 50 * time.Millisecond
	)
	tries(t, func(org string) (problems []string) {
		req := TakeRequest{Org: org, Bucket: BucketGroups, DefaultLimit: 4, Share: 1, Period: period,
			CatchUp: 300 * time.Millisecond, Margin: margin, MaxSlots: 10, SlotTTL: time.Minute}
		var at []time.Time
		for i := range 5 {
			req.SlotID = strconv.Itoa(i)
			if i == 1 {
				// Due at +200 ms, admitted at +350 ms: late, within the tolerance.
				time.Sleep(time.Until(at[0].Add(iv + 150*time.Millisecond)))
			}
			at = append(at, takeUntilOK(t, s, req))
		}
		// The schedule kept: the third was due at +400 ms, and comes half an
		// interval after the late one, at +450 ms, not at +550 ms.
		if d := at[2].Sub(at[0]); d > 2*iv+iv/2+50*time.Millisecond {
			problems = append(problems, fmt.Sprintf("third admission at +%v, want about +%v: the late one did not keep the schedule", d, 2*iv+iv/2))
		}
		if d := at[2].Sub(at[1]); d < iv/2-5*time.Millisecond {
			problems = append(problems, fmt.Sprintf("third admission %v after the late second, want at least half an interval (%v)", d, iv/2))
		}
		// The schedule would admit the fifth at +850 ms, in the window
		// [+350, +950) that already holds three: it waits until +1000 ms.
		if d := at[4].Sub(at[1]); d < period+margin-5*time.Millisecond {
			problems = append(problems, fmt.Sprintf("fifth admission %v after the late second, want at least a window and the margin (%v)", d, period+margin))
		}
		if got := maxInWindow(at, period+margin-5*time.Millisecond); got > 3 {
			problems = append(problems, fmt.Sprintf("%d admissions in one window, the pace is 3", got))
		}
		return problems
	})
}

// rlHeaderAt is rlHeader at date + at, its window resetting at date + reset.
func rlHeaderAt(limit int, at, reset int64) http.Header {
	date := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Date", date.Add(time.Duration(at)*time.Second).Format(http.TimeFormat))
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(limit-1))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(date.Unix()+reset, 10))
	return h
}

// learnedInterval has budget b learn from each header in turn, then
// returns the store's interval for the bucket: the wait between two
// admissions straight after each other.
func learnedInterval(t *testing.T, s Store, b *Budget, hs ...http.Header) time.Duration {
	t.Helper()
	for _, h := range hs {
		p, err := b.Acquire(t.Context(), org, BucketApps)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(h, http.StatusOK)
	}
	req := TakeRequest{Org: org, Bucket: BucketApps, DefaultLimit: 101, Share: 1, Period: b.period, TimeScale: b.scale,
		MaxSlots: 100, SlotTTL: time.Minute, SlotID: "probe-1"}
	// Past the schedule by more than any interval here, so the first
	// probe restarts it (no catch-up) however late the host wakes us.
	time.Sleep(500 * time.Millisecond)
	takeUntilOK(t, s, req)
	req.SlotID = "probe-2"
	res, err := s.Take(t.Context(), req)
	if err != nil || res.OK {
		t.Fatalf("take straight after another: %+v, %v", res, err)
	}
	return res.Wait
}

// A minute window at scale 6 lasts 10 s: 100 per window is one every 100 ms.
var windowed = Options{Share: 1, TimeScale: 6, DefaultLimits: map[string]int{BucketApps: 101}}

// near says whether got is want, less a round trip to the store on a busy
// host: the intervals compared differ by a factor of two or more.
func near(got, want time.Duration) bool { return got > want*6/10 && got <= want*102/100 }

func testLearnLongerWindow(t *testing.T, s Store) {
	b := newBudget(t, s, windowed)
	// The first response of a two-minute window: Reset - Date is 120 s.
	if iv := learnedInterval(t, s, b, rlHeaderAt(101, 0, 120)); !near(iv, 200*time.Millisecond) {
		t.Errorf("interval %v after a response 120 s before its reset, want 200 ms (a two-minute window)", iv)
	}
	// Another replica on the store paces by it too.
	if iv := learnedInterval(t, s, newBudget(t, s, windowed)); !near(iv, 200*time.Millisecond) {
		t.Errorf("another replica's interval %v, want the learned 200 ms", iv)
	}
}

func testLearnShorterWindow(t *testing.T, s Store) {
	b := newBudget(t, s, windowed)
	// Windows resetting 30 s apart last at most 31 s: 100 per 31/6 s.
	iv := learnedInterval(t, s, b, rlHeaderAt(101, 0, 30), rlHeaderAt(101, 30, 60))
	if want := 31 * time.Second / 6 / 100; !near(iv, want) {
		t.Errorf("interval %v after resets 30 s apart, want %v (a window of at most 31 s)", iv, want)
	}
}

func testLearnMinute(t *testing.T, s Store) {
	b := newBudget(t, s, windowed)
	// Okta's minute: a response mid-window and resets 60 s apart.
	iv := learnedInterval(t, s, b, rlHeaderAt(101, 0, 60), rlHeaderAt(101, 25, 60), rlHeaderAt(101, 60, 120))
	if !near(iv, 100*time.Millisecond) {
		t.Errorf("interval %v under a minute window, want 100 ms", iv)
	}
}

// failingWindows is a store whose first SetWindow fails.
type failingWindows struct {
	Store
	calls atomic.Int32
}

func (f *failingWindows) SetWindow(ctx context.Context, org, bucket string, w time.Duration) error {
	if f.calls.Add(1) == 1 {
		return errors.New("store unavailable")
	}
	return f.Store.SetWindow(ctx, org, bucket, w)
}

// A window the store failed to record is recorded on the next response.
func TestLearnedWindowRetriedAfterStoreFailure(t *testing.T) {
	s := &failingWindows{Store: NewMemoryStore()}
	b := newBudget(t, s, windowed)
	if iv := learnedInterval(t, s, b, rlHeaderAt(101, 0, 120)); !near(iv, 100*time.Millisecond) {
		t.Errorf("interval %v after a failed write, want the default 100 ms", iv)
	}
	if iv := learnedInterval(t, s, b, rlHeaderAt(101, 1, 121)); !near(iv, 200*time.Millisecond) {
		t.Errorf("interval %v after the next response, want the learned 200 ms", iv)
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("%d SetWindow calls, want the failed one and its retry", n)
	}
}

// A request may take its turn up to Lead before its time: it is admitted
// for that time, and the one after it waits for its own.
func testLead(t *testing.T, s Store) {
	ctx := t.Context()
	// 100 per 10 s: one every 100 ms; turns up to 150 ms ahead. The
	// figures are measured from the first take: a scenario that a loaded
	// machine delays between takes is tried again on a fresh bucket.
	const iv = 100 * time.Millisecond
	tries(t, func(org string) []string {
		req := TakeRequest{Org: org, Bucket: BucketUsers, DefaultLimit: 101, Share: 1, Period: 10 * time.Second,
			Lead: 150 * time.Millisecond, MaxSlots: 10, SlotTTL: time.Minute}
		take := func(id string) TakeResult {
			t.Helper()
			req.SlotID = id
			res, err := s.Take(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		var problems []string
		if res := take("a"); !res.OK || res.Delay != 0 {
			problems = append(problems, fmt.Sprintf("first take: %+v, want admitted now", res))
		}
		if res := take("b"); !res.OK || res.Delay < iv*8/10 || res.Delay > iv {
			problems = append(problems, fmt.Sprintf("second take: %+v, want admitted for an interval from now", res))
		}
		// Due two intervals from now, 50 ms beyond the lead.
		if res := take("c"); res.OK || res.Blocker != BlockedByRate || res.Wait > 50*time.Millisecond || res.Wait < 30*time.Millisecond {
			problems = append(problems, fmt.Sprintf("third take: %+v, want a wait of about 50 ms", res))
		}
		return problems
	})
}
