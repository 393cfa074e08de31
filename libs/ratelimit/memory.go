package ratelimit

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is a Store for one process: the all-in-one mode without Redis.
type MemoryStore struct {
	mu      sync.Mutex
	buckets map[string]*memBucket           // org/bucket
	slots   map[string]map[string]time.Time // org -> slot id -> expiry
}

// memBucket is the pace of one org's bucket.
type memBucket struct {
	tat    time.Time     // next due admission
	limit  int           // learned ceiling; 0 when none
	window time.Duration // learned window (org clock); 0 when none
	// log holds the times of the last admissions, oldest first, from
	// head on: at most the pace's cap of them.
	log  []time.Time
	head int
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{buckets: map[string]*memBucket{}, slots: map[string]map[string]time.Time{}}
}

func memKey(org, bucket string) string { return org + "\x00" + bucket }

func (m *MemoryStore) bucket(org, bucket string) *memBucket {
	key := memKey(org, bucket)
	b := m.buckets[key]
	if b == nil {
		b = &memBucket{}
		m.buckets[key] = b
	}
	return b
}

// Take implements Store.
func (m *MemoryStore) Take(_ context.Context, r TakeRequest) (TakeResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	b := m.bucket(r.Org, r.Bucket)
	if b.tat.Sub(now) > r.Lead {
		return TakeResult{Wait: b.tat.Sub(now) - r.Lead, Blocker: BlockedByRate}, nil
	}
	limit, period := r.DefaultLimit, r.Period
	if b.limit > 0 {
		limit = b.limit
	}
	if b.window > 0 {
		period = realPeriod(b.window, r.TimeScale)
	}
	pace := paceOf(r.Share, limit)
	iv := time.Duration(float64(period) / pace)
	limitN := capOf(pace)
	due := later(now, b.tat)
	recent := b.log[b.head:]
	if len(recent) >= limitN {
		// The window that would hold this admission, counted Margin
		// longer, must not already hold limitN of them.
		due = later(due, recent[len(recent)-limitN].Add(period+r.Margin))
		if d := due.Sub(now); d > r.Lead {
			return TakeResult{Wait: d - r.Lead, Blocker: BlockedByRate}, nil
		}
	}
	slots := m.slots[r.Org]
	if slots == nil {
		slots = map[string]time.Time{}
		m.slots[r.Org] = slots
	}
	var oldest time.Time
	for id, exp := range slots {
		if !exp.After(now) {
			delete(slots, id)
			continue
		}
		if oldest.IsZero() || exp.Before(oldest) {
			oldest = exp
		}
	}
	if len(slots) >= r.MaxSlots {
		return TakeResult{Wait: oldest.Sub(now), Blocker: BlockedBySlots}, nil
	}
	slots[r.SlotID] = now.Add(r.SlotTTL)
	b.record(due, limitN)
	if !b.tat.IsZero() && due.Sub(b.tat) < max(iv, r.CatchUp) {
		// Kept: at most twice the pace until caught up.
		b.tat = later(b.tat.Add(iv), due.Add(iv/2))
	} else {
		b.tat = due.Add(iv)
	}
	return TakeResult{OK: true, Delay: due.Sub(now)}, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// record logs an admission, keeping the last n.
func (b *memBucket) record(now time.Time, n int) {
	b.log = append(b.log, now)
	if drop := len(b.log) - b.head - n; drop > 0 {
		b.head += drop
	}
	if b.head > 0 && b.head >= len(b.log)/2 {
		b.log = append(b.log[:0], b.log[b.head:]...)
		b.head = 0
	}
}

// Release implements Store.
func (m *MemoryStore) Release(_ context.Context, org, slotID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.slots[org], slotID)
	return nil
}

// SetLimit implements Store.
func (m *MemoryStore) SetLimit(_ context.Context, org, bucket string, limit int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bucket(org, bucket).limit = limit
	return nil
}

// SetWindow implements Store.
func (m *MemoryStore) SetWindow(_ context.Context, org, bucket string, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bucket(org, bucket).window = window
	return nil
}

// Pause implements Store.
func (m *MemoryStore) Pause(_ context.Context, org, bucket string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.bucket(org, bucket)
	if until := time.Now().Add(d); until.After(b.tat) {
		b.tat = until
	}
	return nil
}
