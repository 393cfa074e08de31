package delivery

import (
	"slices"
	"sync"
	"time"
)

// Limiter counts emails per recipient over a sliding window. It lives in
// the process's memory: with several replicas each counts its own sends,
// so a recipient may get up to replicas × the limit, and a restart forgets
// the counts. That is enough for its purpose, a guard against a loop or a
// storm of events flooding someone's inbox.
type Limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	sent   map[string][]time.Time
}

// NewLimiter allows limit sends per recipient in any window.
func NewLimiter(limit int, window time.Duration, now func() time.Time) *Limiter {
	return &Limiter{limit: limit, window: window, now: now, sent: map[string][]time.Time{}}
}

// Reserve takes a slot for one email to recipient, and reports false when
// the recipient's slots in the window are used up. Release gives the slot
// back when the email was not sent after all.
func (l *Limiter) Reserve(recipient string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	cut := now.Add(-l.window)
	ts := l.sent[recipient]
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.limit {
		l.sent[recipient] = ts
		return time.Time{}, false
	}
	l.sent[recipient] = append(ts, now)
	return now, true
}

// Release gives back a slot Reserve returned.
func (l *Limiter) Release(recipient string, slot time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.sent[recipient]
	if i := slices.Index(ts, slot); i >= 0 {
		ts = slices.Delete(ts, i, i+1)
	}
	if len(ts) == 0 {
		delete(l.sent, recipient)
		return
	}
	l.sent[recipient] = ts
}
