package oktasim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bucket names: Okta's rate-limit buckets (shared/okta/FACTS.md).
const (
	BucketApps       = "apps"        // /api/v1/apps and /api/v1/apps/* except the next
	BucketAppByID    = "app_by_id"   // /api/v1/apps/{id}
	BucketGroups     = "groups"      // /api/v1/groups and sub-paths except the next
	BucketGroupByID  = "group_by_id" // /api/v1/groups/{id}
	BucketUsersList  = "users"       // GET or POST /api/v1/users
	BucketUserByID   = "user_by_id"  // GET /api/v1/users/{idOrLogin}
	BucketUserWrites = "user_writes" // POST/PUT/DELETE /api/v1/users/{id}
	BucketLogs       = "logs"        // /api/v1/logs
	BucketOther      = "other"       // every other /api/v1 path
)

// Buckets lists every bucket name.
var Buckets = []string{BucketApps, BucketAppByID, BucketGroups, BucketGroupByID, BucketUsersList, BucketUserByID, BucketUserWrites, BucketLogs, BucketOther}

// RateLimits are the per-minute limits of one profile.
type RateLimits struct {
	Name string
	// PerMinute by bucket; a profile without limits has none.
	PerMinute   map[string]int
	Concurrency int
}

// Rate-limit profiles from FACTS.md.
var (
	Workforce = RateLimits{Name: "workforce", Concurrency: 75, PerMinute: map[string]int{
		BucketApps: 100, BucketAppByID: 500, BucketGroups: 500, BucketGroupByID: 1000,
		BucketUsersList: 600, BucketUserByID: 2000, BucketUserWrites: 600, BucketLogs: 120, BucketOther: 1200,
	}}
	Enterprise = RateLimits{Name: "enterprise", Concurrency: 75, PerMinute: map[string]int{
		BucketApps: 100, BucketAppByID: 600, BucketGroups: 600, BucketGroupByID: 600,
		BucketUsersList: 600, BucketUserByID: 1000, BucketUserWrites: 600, BucketLogs: 50, BucketOther: 600,
	}}
	Free = RateLimits{Name: "free", Concurrency: 35, PerMinute: map[string]int{
		BucketApps: 20, BucketAppByID: 100, BucketGroups: 100, BucketGroupByID: 100,
		BucketUsersList: 100, BucketUserByID: 100, BucketUserWrites: 100, BucketLogs: 20, BucketOther: 100,
	}}
	NoLimits = RateLimits{Name: "none"}
)

// RateLimitProfile returns the profile with that name.
func RateLimitProfile(name string) (RateLimits, error) {
	switch strings.ToLower(name) {
	case "", "workforce":
		return Workforce, nil
	case "enterprise":
		return Enterprise, nil
	case "free":
		return Free, nil
	case "none":
		return NoLimits, nil
	}
	return RateLimits{}, fmt.Errorf("rate-limit profile %q: use workforce, enterprise, free or none", name)
}

// BucketOf classifies a request into its bucket.
func BucketOf(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return BucketOther
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	switch parts[0] {
	case "apps":
		if len(parts) == 2 {
			return BucketAppByID
		}
		return BucketApps
	case "groups":
		if len(parts) == 2 {
			return BucketGroupByID
		}
		return BucketGroups
	case "users":
		switch {
		case len(parts) == 1 && (method == http.MethodGet || method == http.MethodPost):
			return BucketUsersList
		case len(parts) == 2 && method == http.MethodGet:
			return BucketUserByID
		case len(parts) == 2:
			return BucketUserWrites
		}
	case "logs":
		return BucketLogs
	}
	return BucketOther
}

// window is one bucket's current rate-limit window.
type window struct {
	start time.Time
	used  int
}

// limiter enforces a profile on the simulated clock and counts requests.
type limiter struct {
	mu       sync.Mutex
	limits   RateLimits
	clock    *Clock
	windows  map[string]*window
	inFlight int
	counts   map[string]int64
	limited  map[string]int64
}

func newLimiter(l RateLimits, clock *Clock) *limiter {
	return &limiter{limits: l, clock: clock, windows: map[string]*window{}, counts: map[string]int64{}, limited: map[string]int64{}}
}

// windowLength is the simulated length of a window.
const windowLength = time.Minute

// admit counts a request in its bucket, sets the rate-limit headers and
// reports whether it may proceed; release must be called when it is done.
func (l *limiter) admit(h http.Header, bucket string) (ok bool, concurrency bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.counts[bucket]++
	limit, limited := l.limits.PerMinute[bucket]
	if !limited {
		return true, false
	}
	w := l.windows[bucket]
	if w == nil || now.Sub(w.start) >= windowLength {
		w = &window{start: now}
		l.windows[bucket] = w
	}
	reset := w.start.Add(windowLength)
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if l.limits.Concurrency > 0 && l.inFlight >= l.limits.Concurrency {
		h.Set("X-Rate-Limit-Limit", "0")
		h.Set("X-Rate-Limit-Remaining", "0")
		l.limited[bucket]++
		return false, true
	}
	if w.used >= limit {
		h.Set("X-Rate-Limit-Remaining", "0")
		l.limited[bucket]++
		return false, false
	}
	w.used++
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(limit-w.used))
	l.inFlight++
	return true, false
}

func (l *limiter) release(bucket string) {
	if _, limited := l.limits.PerMinute[bucket]; !limited {
		return
	}
	l.mu.Lock()
	l.inFlight--
	l.mu.Unlock()
}

// Counts are the requests the simulator received per bucket, and how many
// of them it answered 429.
type Counts struct {
	Requests map[string]int64 `json:"requests"`
	Limited  map[string]int64 `json:"limited"`
}

func (l *limiter) snapshot() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Counts{Requests: map[string]int64{}, Limited: map[string]int64{}}
	for k, v := range l.counts {
		c.Requests[k] = v
	}
	for k, v := range l.limited {
		c.Limited[k] = v
	}
	return c
}
