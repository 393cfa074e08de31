package ratelimit

import (
	"context"
	"math"
	"time"
)

// Store keeps the shared state of budgets: each bucket's pace and learned
// ceiling, and each org's concurrency slots. Every replica of every service
// that talks to one org must use the same Store (Redis) for the share to
// hold; MemoryStore is right for one process only.
//
// Implementations decide admissions atomically on their own clock, so that
// replicas with skewed clocks still pace one shared schedule, and by the
// same rule:
//
//   - a request is admitted for the time it is due, up to TakeRequest.Lead
//     before that time (TakeResult.Delay): the caller waits for it on its
//     own, and the next request takes its turn meanwhile instead of after;
//     every rule below applies to the time admitted for;
//   - a bucket is paced at one admission per interval (GCRA), so requests
//     are spread, never bunched at the start of a window;
//   - an admission that comes late, by less than the catch-up tolerance
//     (TakeRequest.CatchUp, at least one interval), keeps the schedule: the
//     next one is due an interval after the one missed, not after the late
//     one, though never less than half an interval after this one, so that
//     time lost to a timer firing late on a busy host is made up, at twice
//     the pace at most, instead of lost. Later than that, the schedule
//     restarts from now;
//   - and whatever the schedule says, no window's length of time, counted
//     TakeRequest.Margin longer than it is, ever holds more admissions than
//     the pace: each store keeps the times of the bucket's last admissions
//     (as many as the pace) and admits a request only a window and the
//     margin after the oldest of them. So the requests that make up for a
//     late one never put more than the share in one of Okta's windows,
//     even when some are delayed on their way by up to the margin: Okta's
//     window opens at whichever request arrives first.
type Store interface {
	// Take admits one request in r's bucket when both the bucket's pace and
	// the org's concurrency slots allow it, taking a slot named r.SlotID.
	// Otherwise it reports how long to wait and what blocked the request.
	Take(ctx context.Context, r TakeRequest) (TakeResult, error)
	// Release frees a slot taken by Take; releasing a freed slot is a no-op.
	Release(ctx context.Context, org, slotID string) error
	// SetLimit records the real per-window ceiling of an org's bucket, which
	// then paces every budget using the store in place of the default.
	SetLimit(ctx context.Context, org, bucket string, limit int) error
	// SetWindow records the length of an org's bucket's window on the
	// org's clock, learned from Okta's headers, which then paces every
	// budget using the store in place of the default (TakeRequest.Window).
	SetWindow(ctx context.Context, org, bucket string, window time.Duration) error
	// Pause admits nothing in an org's bucket for d from now.
	Pause(ctx context.Context, org, bucket string, d time.Duration) error
}

// TakeRequest asks a Store for one admission.
type TakeRequest struct {
	// Org and Bucket name the paced bucket.
	Org, Bucket string
	// DefaultLimit is the requests per window used while no ceiling was learned.
	DefaultLimit int
	// Share is the part of the ceiling this connector may use, in (0, 1].
	Share float64
	// Period is the real-time length of a window (the window over the time
	// scale) while no window was learned (SetWindow).
	Period time.Duration
	// TimeScale converts a learned window (org clock) to real time: how many
	// times faster than the wall clock the org's clock runs; 0 means 1.
	TimeScale float64
	// CatchUp is how late, in real time, an admission may come and still
	// keep the bucket's schedule; the store uses at least one interval.
	CatchUp time.Duration
	// Margin is how much longer than the window the store counts one in,
	// in real time, when it caps the admissions a window holds.
	Margin time.Duration
	// Lead is how long before its due time a request may be admitted: the
	// store then admits it for that time (TakeResult.Delay), so that the
	// caller waits for it on its own while the next request takes its turn.
	Lead time.Duration
	// MaxSlots is how many requests of the org may be in flight at once.
	MaxSlots int
	// SlotTTL frees a slot whose holder never released it (a dead replica).
	SlotTTL time.Duration
	// SlotID names the slot to take; unique per request.
	SlotID string
}

// Blocker says what kept a request from being admitted.
type Blocker int

const (
	// BlockedByRate means the bucket's pace (or a pause) is not due yet.
	BlockedByRate Blocker = iota
	// BlockedBySlots means the org has no free concurrency slot.
	BlockedBySlots
)

// TakeResult is a Store's answer to a TakeRequest.
type TakeResult struct {
	// OK is true when the request was admitted and the slot taken.
	OK bool
	// Wait is, when not OK, how long until the blocker may clear: the next
	// due time of the pace, or the expiry of the oldest slot.
	Wait time.Duration
	// Blocker is what kept the request back when not OK.
	Blocker Blocker
	// Delay is, when OK, how long after the answer the request is due: it
	// must not be sent before (at most TakeRequest.Lead).
	Delay time.Duration
}

// interval is the spacing of admissions that keeps share×limit per period:
// GCRA with a burst of one, so nothing bunches at the start of a window.
// A share that claims (nearly) the whole bucket is paced at one request
// per window less: Okta's window opens at whichever request arrives first,
// so a request delayed on its way could otherwise open a window that then
// holds limit+1 of ours and answers the last one 429. One request of
// headroom absorbs a delay of up to one interval, for about 1% of a
// 100-request bucket's pace.
func interval(period time.Duration, share float64, limit int) time.Duration {
	return time.Duration(float64(period) / paceOf(share, limit))
}

// paceOf is the requests per window a share of limit is paced at.
func paceOf(share float64, limit int) float64 {
	pace := share * float64(limit)
	if limit > 1 && pace > float64(limit-1) {
		pace = float64(limit - 1)
	}
	return pace
}

// capOf is the most admissions a window may hold at a pace: the pace,
// rounded down, at least one.
func capOf(pace float64) int {
	return max(1, int(math.Floor(pace+1e-9)))
}

// realPeriod is the real-time length of a window of the org's clock at a
// time scale (0 means 1).
func realPeriod(window time.Duration, scale float64) time.Duration {
	if scale <= 0 {
		scale = 1
	}
	return time.Duration(float64(window) / scale)
}
