// Package lease gives one holder at a time a named, expiring lease: the sync
// service takes one per connector so that two replicas never sync the same
// connector at once. A holder renews its lease while it works; a holder that
// dies stops renewing and its lease expires after its TTL, so the work moves
// on without a person.
//
// Two stores serve the same contract: Redis (SET NX PX, renew and release
// only by the token that took the lease, in Lua) for several replicas, and
// memory for one process. One test suite runs against both.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrHeld is returned by Acquire while another holder has the lease.
	ErrHeld = errors.New("lease is held by another holder")
	// ErrLost is the cause of a held context's cancellation when the lease
	// could not be renewed (it expired, or the store failed for longer than
	// the TTL allows).
	ErrLost = errors.New("lease lost")
	// ErrInvalid is returned for an empty name or a TTL under one second.
	ErrInvalid = errors.New("invalid lease request")
)

// Store keeps leases. Implementations: Memory and Redis.
type Store interface {
	// TryAcquire takes name for token for ttl if nobody holds it.
	TryAcquire(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// Renew extends name's lease if token still holds it.
	Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// Release frees name if token holds it.
	Release(ctx context.Context, name, token string) error
	// Holder returns the token holding name, or "" when free.
	Holder(ctx context.Context, name string) (string, error)
}

// Manager hands out leases from one store.
type Manager struct {
	store Store
	owner string
	log   *slog.Logger
}

// New returns a Manager. owner names this process in lease tokens (for
// example the host name), so a person can tell who holds a lease.
func New(store Store, owner string, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, owner: owner, log: log}
}

// Lease is one held lease.
type Lease struct {
	m      *Manager
	name   string
	token  string
	ttl    time.Duration
	cancel context.CancelCauseFunc
	done   chan struct{}
	once   sync.Once
}

// Acquire takes the lease name for ttl, or returns ErrHeld. The returned
// context is ctx, cancelled with cause ErrLost if the lease cannot be
// renewed: work done under it must stop, since another holder may start.
// The lease is renewed every ttl/3 until Release.
func (m *Manager) Acquire(ctx context.Context, name string, ttl time.Duration) (context.Context, *Lease, error) {
	if name == "" || ttl < time.Second {
		return nil, nil, fmt.Errorf("lease %q for %s: %w: want a name and a TTL of at least 1s", name, ttl, ErrInvalid)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := m.owner + "/" + hex.EncodeToString(b)
	ok, err := m.store.TryAcquire(ctx, name, token, ttl)
	if err != nil {
		return nil, nil, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("acquire lease %s: %w", name, ErrHeld)
	}
	hctx, cancel := context.WithCancelCause(ctx)
	l := &Lease{m: m, name: name, token: token, ttl: ttl, cancel: cancel, done: make(chan struct{})}
	go l.renew(hctx)
	return hctx, l, nil
}

// renew extends the lease every ttl/3. A failed renewal is retried until
// the lease would have expired; then the holder's context is cancelled.
func (l *Lease) renew(ctx context.Context) {
	every := l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-l.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every)
		ok, err := l.m.store.Renew(rctx, l.name, l.token, l.ttl)
		cancel()
		switch {
		case err == nil && ok:
			lastOK = time.Now()
		case err == nil && !ok:
			l.m.log.Warn("lease taken over or expired; stopping its work", "lease", l.name)
			l.cancel(fmt.Errorf("lease %s: %w: another holder has it", l.name, ErrLost))
			return
		default:
			if time.Since(lastOK) >= l.ttl-every {
				l.m.log.Warn("lease could not be renewed before it expires; stopping its work", "lease", l.name, "err", err)
				l.cancel(fmt.Errorf("lease %s: %w: renew: %w", l.name, ErrLost, err))
				return
			}
			l.m.log.Warn("lease renewal failed; retrying", "lease", l.name, "err", err)
		}
	}
}

// Release stops renewing and frees the lease. Safe to call more than once.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.cancel(context.Canceled)
		err = l.m.store.Release(context.WithoutCancel(ctx), l.name, l.token)
		if err != nil {
			err = fmt.Errorf("release lease %s: %w", l.name, err)
		}
	})
	return err
}

// Held reports whether anybody holds the lease name now.
func (m *Manager) Held(ctx context.Context, name string) (bool, error) {
	h, err := m.store.Holder(ctx, name)
	if err != nil {
		return false, fmt.Errorf("read lease %s: %w", name, err)
	}
	return h != "", nil
}

// Memory is a Store for one process.
type Memory struct {
	mu     sync.Mutex
	leases map[string]memLease
}

type memLease struct {
	token   string
	expires time.Time
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{leases: map[string]memLease{}} }

func (s *Memory) live(name string) (memLease, bool) {
	l, ok := s.leases[name]
	if ok && time.Now().After(l.expires) {
		delete(s.leases, name)
		return memLease{}, false
	}
	return l, ok
}

// TryAcquire implements Store.
func (s *Memory) TryAcquire(_ context.Context, name, token string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(name); ok {
		return false, nil
	}
	s.leases[name] = memLease{token: token, expires: time.Now().Add(ttl)}
	return true, nil
}

// Renew implements Store.
func (s *Memory) Renew(_ context.Context, name, token string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.live(name)
	if !ok || l.token != token {
		return false, nil
	}
	s.leases[name] = memLease{token: token, expires: time.Now().Add(ttl)}
	return true, nil
}

// Release implements Store.
func (s *Memory) Release(_ context.Context, name, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.live(name); ok && l.token == token {
		delete(s.leases, name)
	}
	return nil
}

// Holder implements Store.
func (s *Memory) Holder(_ context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, _ := s.live(name)
	return l.token, nil
}
