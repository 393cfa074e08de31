// Package ratelimit is the per-org, per-bucket Okta rate budget that every
// Okta call goes through. A connector uses at most its share of each bucket's
// ceiling per window, spread evenly (GCRA with a burst of one), and at most
// its share of the org's concurrency limit, so the customer's other
// integrations keep the rest. The budget is shared by every replica of every
// service through a Store: Redis in production, memory in the all-in-one mode.
//
// The budget learns from Okta's answers: X-Rate-Limit-Limit is the real
// ceiling of the bucket, and a 429 (or an exhausted window) stops the bucket
// until X-Rate-Limit-Reset. Reset is read against the response's Date, never
// the local clock, so a time-scaled simulator paces correctly.
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
	// Window is Okta's rate-limit window on the org's clock; default 60 s.
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
	// Logger receives 429s and store failures; default discards.
	Logger *slog.Logger
}

const (
	defaultShare   = 0.5
	defaultWindow  = time.Minute
	defaultSlotTTL = 2 * time.Minute
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
	log      *slog.Logger

	mu       sync.Mutex
	locks    map[string]chan struct{} // one waiter per org/bucket polls the store
	released chan struct{}            // closed and replaced when a local permit is done
	learned  map[string]learned
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case !(opts.Share > 0 && opts.Share <= 1):
		return nil, fmt.Errorf("new rate budget: share %v not in (0, 1]: %w", opts.Share, ErrInvalidOptions)
	case opts.Window < 0 || opts.TimeScale < 0 || math.IsNaN(opts.TimeScale) || opts.Concurrency < 0 || opts.SlotTTL < 0:
		return nil, fmt.Errorf("new rate budget: negative window, time scale, concurrency or slot TTL: %w", ErrInvalidOptions)
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
		log:      opts.Logger,
		locks:    map[string]chan struct{}{},
		released: make(chan struct{}),
		learned:  map[string]learned{},
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
	defer func() { <-lock }()
	id, err := newSlotID()
	if err != nil {
		return nil, fmt.Errorf("acquire rate budget of %s %s: %w", org, bucket, err)
	}
	req := TakeRequest{
		Org: org, Bucket: bucket, DefaultLimit: def, Share: b.share, Period: b.period,
		MaxSlots: b.maxSlots, SlotTTL: b.slotTTL, SlotID: id,
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
			b.count(bucket, func(s *BucketStats) { s.Acquired++; s.Waited += time.Since(start) })
			return &Permit{b: b, org: org, bucket: bucket, slotID: id}, nil
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
	}
	remaining, hasRemaining := headerInt(h, "X-Rate-Limit-Remaining")
	switch {
	case status == http.StatusTooManyRequests:
		d := b.untilReset(h)
		b.count(bucket, func(s *BucketStats) { s.RateLimited++ })
		b.log.Warn("okta rate limit hit, pausing bucket", "org", org, "bucket", bucket, "pause", d)
		b.pause(ctx, org, bucket, d)
	case hasRemaining && remaining <= 0:
		// Others in the org drained the window: the next call would be a 429.
		b.pause(ctx, org, bucket, b.untilReset(h))
	}
}

// untilReset is the real time until the bucket's window resets. Reset and
// Date are both whole seconds of the org's clock, so one second is added
// (as Okta's SDK does) to be after the reset whatever the truncation.
func (b *Budget) untilReset(h http.Header) time.Duration {
	d := b.window
	reset, okReset := headerInt(h, "X-Rate-Limit-Reset")
	date, errDate := http.ParseTime(h.Get("Date"))
	if okReset && errDate == nil {
		d = min(max(time.Duration(int64(reset)-date.Unix()+1)*time.Second, time.Second), b.window+time.Second)
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
