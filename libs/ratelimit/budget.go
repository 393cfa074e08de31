// Package ratelimit is the per-org, per-bucket Okta rate budget that every
// Okta call goes through. A connector uses at most its share of each bucket's
// ceiling per window, spread evenly (GCRA with a burst of one), and at most
// its share of the org's concurrency limit, so the customer's other
// integrations keep the rest. The budget is shared by every replica of every
// service through a Store: Redis in production, memory in the all-in-one mode.
//
// The budget learns from Okta's answers: X-Rate-Limit-Limit is the real
// ceiling of the bucket, X-Rate-Limit-Reset against the response's Date
// bounds the length of its window (learnWindow), and a 429 (or an exhausted
// window) stops the bucket until X-Rate-Limit-Reset. Reset is read against
// the response's Date, never the local clock, so a time-scaled simulator
// paces correctly.
//
// How a bucket is paced (the Store's rule, store.go): one request per
// interval, so nothing bunches, each taking its turn up to Options.Lead
// before its time; a request admitted late (a timer firing
// late on a busy host) by less than Options.CatchUp or one interval keeps
// the schedule, so the time is made up rather than lost; and no window's
// length of time (plus Options.Margin) ever holds more requests than the
// share, whatever the schedule says.
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configure a Budget. The zero value of each field selects its default.
type Options struct {
	// Share is the part of each ceiling the connector may use, in (0, 1];
	// default 0.5.
	Share float64
	// Window is Okta's rate-limit window on the org's clock until the
	// headers tell another (learnWindow); default 60 s.
	Window time.Duration
	// TimeScale is how many times faster than the wall clock the org's
	// clock runs (a time-scaled simulator); default 1. A window lasts
	// Window/TimeScale of real time, and so does a pause read from headers.
	TimeScale float64
	// DefaultLimits are the requests per window of each bucket until a
	// response tells the real ceiling; buckets missing here take
	// WorkforceLimits.
	DefaultLimits map[string]int
	// Concurrency is the org's limit of requests in flight; default 75.
	Concurrency int
	// SlotTTL frees the concurrency slot of a holder that never calls Done
	// (a crashed replica). It must exceed the longest Okta request, as a
	// live holder past it no longer counts; default 2 minutes.
	SlotTTL time.Duration
	// CatchUp is how late, in real time, a request may be admitted and
	// still keep its bucket's schedule (the store uses at least one
	// interval); default 20 ms. At Okta's own scale an interval is longer
	// (30 ms for a 2,000-a-minute bucket), so a late request keeps the
	// schedule when less than one interval late; it matters on a
	// time-scaled org, where an interval is as short as a busy host's
	// timer precision. The requests that make up for a late one come at
	// twice the pace at most.
	CatchUp time.Duration
	// Lead is how long, in real time, before its due time a request may
	// take its turn: it then waits for that time on its own, outside the
	// queue of the bucket's waiters, and the next one takes its turn
	// meanwhile; default 5 ms. Without it, one waiter after the other has
	// to wake up and ask, which on a busy host can take longer than a fast
	// bucket's interval on a time-scaled org; the concurrency slot is held
	// from the turn.
	Lead time.Duration
	// Margin is how much longer than the window, in real time, the budget
	// counts one in when it caps the requests a window may hold at the
	// share: a request delayed on its way to Okta by up to Margin more
	// than another still never puts more than the share in one of Okta's
	// windows; default 15 ms (0.025% of a minute at scale 1).
	Margin time.Duration
	// Logger receives 429s and store failures; default discards.
	Logger *slog.Logger
}

const (
	defaultShare   = 0.5
	defaultWindow  = time.Minute
	defaultSlotTTL = 2 * time.Minute
	defaultCatchUp = 20 * time.Millisecond
	defaultMargin  = 15 * time.Millisecond
	defaultLead    = 5 * time.Millisecond
	// maxWindow bounds a window read from headers: a Reset - Date beyond
	// it is taken as a broken header, not a window.
	maxWindow = time.Hour
	// slotPoll bounds a wait for a concurrency slot, since slots freed by
	// other replicas raise no local signal.
	slotPoll = 20 * time.Millisecond
	// learnRefresh rewrites an unchanged learned ceiling now and then, so the
	// store's copy never expires while the org keeps answering.
	learnRefresh = time.Minute
	// doneTimeout bounds Done's store calls: it has no context of its own.
	doneTimeout = 5 * time.Second
)

// BucketStats count what a Budget did in one bucket (all orgs together).
type BucketStats struct {
	// Acquired is how many permits were granted.
	Acquired int64
	// Waited is the total time Acquire spent waiting before granting them.
	Waited time.Duration
	// RateLimited is how many 429s over the bucket's ceiling were seen.
	RateLimited int64
	// ConcurrencyLimited is how many 429s for too many requests in flight
	// (X-Rate-Limit-Limit 0) were seen.
	ConcurrencyLimited int64
}

type learned struct {
	limit int
	at    time.Time
}

// windowBounds is what the headers told of one org's bucket's window, on
// the org's clock (learnWindow).
type windowBounds struct {
	lastReset int64         // the latest X-Rate-Limit-Reset seen (Unix s)
	lower     time.Duration // the longest Reset - Date seen
	upper     time.Duration // the shortest gap between two resets, plus 1 s; 0: none yet
	stored    time.Duration // the window last written to the store; 0: none yet
	at        time.Time     // when it was written
}

// Budget paces one connector's Okta calls. It is safe for concurrent use;
// every replica builds its own on a shared Store.
type Budget struct {
	store    Store
	share    float64
	window   time.Duration
	scale    float64
	period   time.Duration // Window in real time
	limits   map[string]int
	maxSlots int
	slotTTL  time.Duration
	catchUp  time.Duration
	margin   time.Duration
	lead     time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	locks    map[string]chan struct{} // one waiter per org/bucket polls the store
	released chan struct{}            // closed and replaced when a local permit is done
	learned  map[string]learned
	windows  map[string]*windowBounds
	stats    map[string]*BucketStats
}

// New returns a Budget on store, or ErrInvalidOptions.
func New(store Store, opts Options) (*Budget, error) {
	if store == nil {
		return nil, fmt.Errorf("new rate budget: no store: %w", ErrInvalidOptions)
	}
	if opts.Share == 0 {
		opts.Share = defaultShare
	}
	if opts.Window == 0 {
		opts.Window = defaultWindow
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.SlotTTL == 0 {
		opts.SlotTTL = defaultSlotTTL
	}
	if opts.CatchUp == 0 {
		opts.CatchUp = defaultCatchUp
	}
	if opts.Margin == 0 {
		opts.Margin = defaultMargin
	}
	if opts.Lead == 0 {
		opts.Lead = defaultLead
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case !(opts.Share > 0 && opts.Share <= 1):
		return nil, fmt.Errorf("new rate budget: share %v not in (0, 1]: %w", opts.Share, ErrInvalidOptions)
	case opts.Window < 0 || opts.TimeScale < 0 || math.IsNaN(opts.TimeScale) || opts.Concurrency < 0 || opts.SlotTTL < 0 || opts.CatchUp < 0 || opts.Margin < 0 || opts.Lead < 0:
		return nil, fmt.Errorf("new rate budget: negative window, time scale, concurrency, slot TTL, catch-up, margin or lead: %w", ErrInvalidOptions)
	}
	limits := WorkforceLimits()
	for b, l := range opts.DefaultLimits {
		if l <= 0 {
			return nil, fmt.Errorf("new rate budget: limit %d of bucket %s: %w", l, b, ErrInvalidOptions)
		}
		limits[b] = l
	}
	period := time.Duration(float64(opts.Window) / opts.TimeScale)
	if period <= 0 {
		return nil, fmt.Errorf("new rate budget: window %v at time scale %v is shorter than a nanosecond: %w", opts.Window, opts.TimeScale, ErrInvalidOptions)
	}
	return &Budget{
		store:    store,
		share:    opts.Share,
		window:   opts.Window,
		scale:    opts.TimeScale,
		period:   period,
		limits:   limits,
		maxSlots: max(1, int(opts.Share*float64(opts.Concurrency))),
		slotTTL:  opts.SlotTTL,
		catchUp:  opts.CatchUp,
		margin:   opts.Margin,
		lead:     opts.Lead,
		log:      opts.Logger,
		locks:    map[string]chan struct{}{},
		released: make(chan struct{}),
		learned:  map[string]learned{},
		windows:  map[string]*windowBounds{},
		stats:    map[string]*BucketStats{},
	}, nil
}

// Permit is the right to send one request; call Done when its response (or
// failure) is known.
type Permit struct {
	b           *Budget
	org, bucket string
	slotID      string
	once        sync.Once
}

// Acquire blocks until the connector may send one request in org's bucket,
// or ctx ends. The caller must call Done on the returned Permit.
func (b *Budget) Acquire(ctx context.Context, org, bucket string) (*Permit, error) {
	if org == "" {
		return nil, fmt.Errorf("acquire rate budget for bucket %s: %w", bucket, ErrNoOrg)
	}
	def, ok := b.limits[bucket]
	if !ok {
		return nil, fmt.Errorf("acquire rate budget of %s for bucket %q: %w", org, bucket, ErrUnknownBucket)
	}
	start := time.Now()
	// Local waiters of one bucket queue here rather than all polling the
	// store at each due time: only one per replica contends.
	lock := b.lock(org, bucket)
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, ctx.Err())
	}
	locked := true
	unlock := func() {
		if locked {
			<-lock
			locked = false
		}
	}
	defer unlock()
	id, err := newSlotID()
	if err != nil {
		return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, err)
	}
	req := TakeRequest{
		Org: org, Bucket: bucket, DefaultLimit: def, Share: b.share, Period: b.period, TimeScale: b.scale,
		CatchUp: b.catchUp, Margin: b.margin, Lead: b.lead, MaxSlots: b.maxSlots, SlotTTL: b.slotTTL, SlotID: id,
	}
	for {
		// Taken before Take so a release in between still wakes us.
		released := b.releasedSignal()
		res, err := b.store.Take(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, err)
		}
		if res.OK {
			p := &Permit{b: b, org: org, bucket: bucket, slotID: id}
			if res.Delay > 0 {
				// Admitted ahead of its time: the next waiter takes its
				// turn while this one waits for it.
				unlock()
				if err := sleep(ctx, res.Delay); err != nil {
					p.Done(nil, 0)
					return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, err)
				}
			}
			b.count(bucket, func(s *BucketStats) { s.Acquired++; s.Waited += time.Since(start) })
			return p, nil
		}
		wait, wake := res.Wait, (<-chan struct{})(nil)
		if res.Blocker == BlockedBySlots {
			wait, wake = min(wait, slotPoll), released
		}
		timer := time.NewTimer(max(wait, 50*time.Microsecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, ctx.Err())
		case <-timer.C:
		case <-wake:
			timer.Stop()
		}
	}
}

// Done releases the permit's concurrency slot and learns from the response:
// h and status are those of the response, or nil and 0 when none came.
// Calls after the first do nothing.
func (p *Permit) Done(h http.Header, status int) {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), doneTimeout)
		defer cancel()
		// Learn before releasing, so no request slips in before a pause.
		p.b.learn(ctx, p.org, p.bucket, h, status)
		if err := p.b.store.Release(ctx, p.org, p.slotID); err != nil {
			// The slot frees itself after SlotTTL.
			p.b.log.Warn("rate budget: release concurrency slot", "org", p.org, "error", err)
		}
		p.b.signalRelease()
	})
}

// learn applies what a response says about the bucket.
func (b *Budget) learn(ctx context.Context, org, bucket string, h http.Header, status int) {
	limit, hasLimit := headerInt(h, "X-Rate-Limit-Limit")
	if status == http.StatusTooManyRequests && hasLimit && limit == 0 {
		// Too many in flight for the org, not an exhausted bucket: the
		// window's ceiling is intact, so only back off briefly.
		b.count(bucket, func(s *BucketStats) { s.ConcurrencyLimited++ })
		b.log.Warn("okta concurrency limit hit", "org", org, "bucket", bucket)
		b.pause(ctx, org, bucket, b.real(time.Second))
		return
	}
	if hasLimit && limit > 0 {
		b.setLimit(ctx, org, bucket, limit)
		b.learnWindow(ctx, org, bucket, h)
	}
	remaining, hasRemaining := headerInt(h, "X-Rate-Limit-Remaining")
	switch {
	case status == http.StatusTooManyRequests:
		d := b.untilReset(org, bucket, h)
		b.count(bucket, func(s *BucketStats) { s.RateLimited++ })
		b.log.Warn("okta rate limit hit, pausing bucket", "org", org, "bucket", bucket, "pause", d)
		b.pause(ctx, org, bucket, d)
	case hasRemaining && remaining <= 0:
		// Others in the org drained the window: the next call would be a 429.
		b.pause(ctx, org, bucket, b.untilReset(org, bucket, h))
	}
}

// learnWindow bounds the length of the bucket's window from a response's
// X-Rate-Limit-Reset and Date (whole seconds of the org's clock) and, when
// the bounds say the window is not Options.Window, paces the bucket by what
// they say, through the store:
//
//   - a window lasts at least until its reset after any request in it, so
//     it is at least Reset - Date (exactly that for a response in the
//     window's first second; never more, Reset and Date being truncated
//     alike): a window longer than Options.Window is learned as the longest
//     Reset - Date seen, which slows the bucket down;
//   - a window starts no earlier than the reset of the one before, so two
//     distinct resets R1 < R2 bound it by R2 - R1, plus 1 s for the
//     truncation: a window shorter than Options.Window by more than that
//     second is learned as the shortest such bound, which is never shorter
//     than the real window, so the share still holds.
//
// With Okta's documented minute both bounds agree with Options.Window and
// nothing is written.
func (b *Budget) learnWindow(ctx context.Context, org, bucket string, h http.Header) {
	reset, okReset := headerInt(h, "X-Rate-Limit-Reset")
	date, errDate := http.ParseTime(h.Get("Date"))
	if !okReset || errDate != nil {
		return
	}
	key := org + "\x00" + bucket
	b.mu.Lock()
	w := b.windows[key]
	if w == nil {
		w = &windowBounds{}
		b.windows[key] = w
	}
	if rd := time.Duration(int64(reset)-date.Unix()) * time.Second; rd > w.lower && rd <= maxWindow {
		w.lower = rd
	}
	if r := int64(reset); r > w.lastReset {
		if w.lastReset > 0 {
			if gap := time.Duration(r-w.lastReset+1) * time.Second; w.upper == 0 || gap < w.upper {
				w.upper = gap
			}
		}
		w.lastReset = r
	}
	window := max(b.window, w.lower)
	// Bounds that contradict each other (a clock that jumped) keep the
	// longer window.
	if w.upper > 0 && w.upper < window && w.upper >= w.lower {
		window = w.upper
	}
	// Written when it differs from what the store paces by, and now and
	// then while it was written, so the store's copy does not expire.
	var write bool
	if w.stored != 0 {
		write = window != w.stored || time.Since(w.at) >= learnRefresh
	} else {
		write = window != b.window
	}
	if write {
		w.stored, w.at = window, time.Now()
	}
	b.mu.Unlock()
	if !write {
		return
	}
	if window != b.window {
		b.log.Info("rate budget: learned a window", "org", org, "bucket", bucket, "window", window)
	}
	if err := b.store.SetWindow(ctx, org, bucket, window); err != nil {
		b.mu.Lock()
		w.stored = 0 // retry on the next response
		b.mu.Unlock()
		b.log.Warn("rate budget: record learned window", "org", org, "bucket", bucket, "error", err)
	}
}

// windowOf is the window the bucket is paced by, on the org's clock.
func (b *Budget) windowOf(org, bucket string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.windows[org+"\x00"+bucket]; w != nil && w.stored > 0 {
		return w.stored
	}
	return b.window
}

// untilReset is the real time until the bucket's window resets. Reset and
// Date are both whole seconds of the org's clock, so one second is added
// (as Okta's SDK does) to be after the reset whatever the truncation.
func (b *Budget) untilReset(org, bucket string, h http.Header) time.Duration {
	window := b.windowOf(org, bucket)
	d := window
	reset, okReset := headerInt(h, "X-Rate-Limit-Reset")
	date, errDate := http.ParseTime(h.Get("Date"))
	if okReset && errDate == nil {
		d = min(max(time.Duration(int64(reset)-date.Unix()+1)*time.Second, time.Second), window+time.Second)
	}
	return b.real(d)
}

// real converts a duration of the org's clock to wall-clock time.
func (b *Budget) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / b.scale)
}

func (b *Budget) pause(ctx context.Context, org, bucket string, d time.Duration) {
	if err := b.store.Pause(ctx, org, bucket, d); err != nil {
		b.log.Warn("rate budget: pause bucket", "org", org, "bucket", bucket, "error", err)
	}
}

func (b *Budget) setLimit(ctx context.Context, org, bucket string, limit int) {
	key := org + "\x00" + bucket
	b.mu.Lock()
	l, ok := b.learned[key]
	fresh := ok && l.limit == limit && time.Since(l.at) < learnRefresh
	if !fresh {
		b.learned[key] = learned{limit: limit, at: time.Now()}
	}
	b.mu.Unlock()
	if fresh {
		return
	}
	if err := b.store.SetLimit(ctx, org, bucket, limit); err != nil {
		b.mu.Lock()
		delete(b.learned, key) // retry on the next response
		b.mu.Unlock()
		b.log.Warn("rate budget: record learned limit", "org", org, "bucket", bucket, "error", err)
	}
}

// Stats returns a copy of the counters, by bucket.
func (b *Budget) Stats() map[string]BucketStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]BucketStats, len(b.stats))
	for k, v := range b.stats {
		out[k] = *v
	}
	return out
}

func (b *Budget) count(bucket string, f func(*BucketStats)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats[bucket]
	if s == nil {
		s = &BucketStats{}
		b.stats[bucket] = s
	}
	f(s)
}

func (b *Budget) lock(org, bucket string) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := org + "\x00" + bucket
	l := b.locks[key]
	if l == nil {
		l = make(chan struct{}, 1)
		b.locks[key] = l
	}
	return l
}

func (b *Budget) releasedSignal() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.released
}

func (b *Budget) signalRelease() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.released)
	b.released = make(chan struct{})
}

// sleep waits for d or the end of ctx.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func headerInt(h http.Header, name string) (int, bool) {
	v := h.Get(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

func newSlotID() (string, error) {
	var buf [12]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("new concurrency slot id: %w", err)
	}
	return hex.EncodeToString(buf[:]), nil
}
