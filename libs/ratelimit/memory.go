package ratelimit

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is a Store for one process: the all-in-one mode without Redis.
type MemoryStore struct {
	mu     sync.Mutex
	tat    map[string]time.Time            // org/bucket -> next due admission
	limits map[string]int                  // org/bucket -> learned ceiling
	slots  map[string]map[string]time.Time // org -> slot id -> expiry
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		tat:    map[string]time.Time{},
		limits: map[string]int{},
		slots:  map[string]map[string]time.Time{},
	}
}

func memKey(org, bucket string) string { return org + "\x00" + bucket }

// Take implements Store.
func (m *MemoryStore) Take(_ context.Context, r TakeRequest) (TakeResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	key := memKey(r.Org, r.Bucket)
	if tat := m.tat[key]; tat.After(now) {
		return TakeResult{Wait: tat.Sub(now), Blocker: BlockedByRate}, nil
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
	limit := r.DefaultLimit
	if l, ok := m.limits[key]; ok {
		limit = l
	}
	m.tat[key] = now.Add(interval(r.Period, r.Share, limit))
	return TakeResult{OK: true}, nil
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
	m.limits[memKey(org, bucket)] = limit
	return nil
}

// Pause implements Store.
func (m *MemoryStore) Pause(_ context.Context, org, bucket string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := memKey(org, bucket)
	if until := time.Now().Add(d); until.After(m.tat[key]) {
		m.tat[key] = until
	}
	return nil
}
