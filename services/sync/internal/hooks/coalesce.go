package hooks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Work is one target to re-read and the System Log events that named it.
type Work struct {
	// Target is what to re-read.
	Target *eventsv1.SyncTarget
	// EventUUIDs are the uuids of the events behind it, sorted and unique
	// (ChangeContext.okta_event_uuids of the changes the read finds).
	EventUUIDs []string
}

// Sink receives coalesced work: the lead's targeted resync. Resync must
// re-read each target from Okta and publish what changed; it returns only
// once that is done (or failed), since the deliveries behind the work are
// acknowledged only after it returned nil.
type Sink interface {
	// Resync re-reads work's targets of connector. work is sorted by
	// target, holds each target once, and is never empty. An error marked
	// bus.Permanent dead-letters the deliveries behind it; any other error
	// has them retried later.
	Resync(ctx context.Context, connector string, work []Work) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, connector string, work []Work) error

// Resync calls f.
func (f SinkFunc) Resync(ctx context.Context, connector string, work []Work) error {
	return f(ctx, connector, work)
}

// Coalescer turns bursts of work into few handoffs: all work submitted for a
// connector within one window (opened by the first submission) is handed to
// the Sink once, at the window's end, each target once.
type Coalescer interface {
	// Submit adds work for connector and returns once a handoff that covers
	// it has succeeded: nil; or with an error wrapping ErrHandoff (the
	// handoff failed or was never confirmed), ErrClosed, or the context's
	// error. On an error the caller must submit the work again later: no
	// work is lost by a failed handoff as long as the caller does so.
	Submit(ctx context.Context, connector string, work []Work) error
	// Close refuses new work and waits for the handoffs of open windows.
	Close() error
}

// Defaults of CoalescerOptions.
const (
	DefaultWindow         = 250 * time.Millisecond
	DefaultWidenAbove     = 10
	DefaultHandoffTimeout = 2 * time.Minute
)

// CoalescerOptions tune a Coalescer. Zero values take the defaults.
type CoalescerOptions struct {
	// Window is how long a connector's window stays open after its first
	// submission (default 250 ms).
	Window time.Duration
	// WidenAbove: when more than this many members of one group (or app)
	// are named in a window, the whole group's members (or app's
	// assignments) are re-read instead, one listing instead of one read per
	// member (default 10; negative never widens).
	WidenAbove int
	// HandoffTimeout bounds one call of the Sink (default 2 min).
	HandoffTimeout time.Duration
}

func (o CoalescerOptions) withDefaults() CoalescerOptions {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WidenAbove == 0 {
		o.WidenAbove = DefaultWidenAbove
	}
	if o.HandoffTimeout <= 0 {
		o.HandoffTimeout = DefaultHandoffTimeout
	}
	return o
}

// pending is the work of one window, by target key.
type pending map[string]*pendingItem

type pendingItem struct {
	target *eventsv1.SyncTarget
	uuids  map[string]struct{}
}

func (p pending) add(t *eventsv1.SyncTarget, uuids ...string) {
	k := TargetKey(t)
	it := p[k]
	if it == nil {
		it = &pendingItem{target: proto.CloneOf(t), uuids: map[string]struct{}{}}
		p[k] = it
	}
	for _, u := range uuids {
		it.uuids[u] = struct{}{}
	}
}

// compact turns a window's work into the Sink's: members of a group or app
// that is re-read whole are folded into it, and more than widenAbove
// members of one group or app become the whole group or app.
func (p pending) compact(widenAbove int) []Work {
	type container struct {
		kind eventsv1.SyncTarget_Kind
		id   string
	}
	narrow := map[container][]*pendingItem{}
	whole := map[container]*pendingItem{}
	var rest []*pendingItem
	for _, it := range p {
		k := it.target.GetKind()
		if k != eventsv1.SyncTarget_KIND_GROUP_MEMBERS && k != eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS {
			rest = append(rest, it)
			continue
		}
		c := container{k, it.target.GetId()}
		if it.target.GetMember() == nil {
			whole[c] = it
		} else {
			narrow[c] = append(narrow[c], it)
		}
	}
	for c, items := range narrow {
		w := whole[c]
		if w == nil && (widenAbove < 0 || len(items) <= widenAbove) {
			rest = append(rest, items...)
			continue
		}
		if w == nil {
			w = &pendingItem{target: &eventsv1.SyncTarget{Kind: c.kind, Id: c.id}, uuids: map[string]struct{}{}}
			whole[c] = w
		}
		for _, it := range items {
			for u := range it.uuids {
				w.uuids[u] = struct{}{}
			}
		}
	}
	for _, w := range whole {
		rest = append(rest, w)
	}
	out := make([]Work, 0, len(rest))
	for _, it := range rest {
		uuids := make([]string, 0, len(it.uuids))
		for u := range it.uuids {
			uuids = append(uuids, u)
		}
		slices.Sort(uuids)
		out = append(out, Work{Target: it.target, EventUUIDs: uuids})
	}
	slices.SortFunc(out, func(a, b Work) int { return compareTargets(a.Target, b.Target) })
	return out
}

// handoff calls the sink with the window's work, bounded by the timeout.
func handoff(sink Sink, timeout time.Duration, connector string, work []Work) error {
	if len(work) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := sink.Resync(ctx, connector, work); err != nil {
		// Keep the sink's classification (bus.Permanent) reachable.
		return fmt.Errorf("%w: resync %d targets of connector %s: %w", ErrHandoff, len(work), connector, err)
	}
	return nil
}

// memoryCoalescer is the Coalescer of one process.
type memoryCoalescer struct {
	sink Sink
	opts CoalescerOptions

	mu     sync.Mutex
	open   map[string]*memWindow
	closed bool
	wg     sync.WaitGroup
}

// memWindow is one connector's open window.
type memWindow struct {
	work pending
	done chan struct{}
	err  error
}

// NewMemoryCoalescer returns a Coalescer that coalesces within this process
// only: right for one replica, wrong for several (use NewRedisCoalescer).
func NewMemoryCoalescer(sink Sink, opts CoalescerOptions) Coalescer {
	return &memoryCoalescer{sink: sink, opts: opts.withDefaults(), open: map[string]*memWindow{}}
}

func (m *memoryCoalescer) Submit(ctx context.Context, connector string, work []Work) error {
	if len(work) == 0 {
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("submit work of connector %s: %w", connector, ErrClosed)
	}
	w := m.open[connector]
	if w == nil {
		w = &memWindow{work: pending{}, done: make(chan struct{})}
		m.open[connector] = w
		m.wg.Add(1)
		time.AfterFunc(m.opts.Window, func() { m.flush(connector, w) })
	}
	for _, wk := range work {
		w.work.add(wk.Target, wk.EventUUIDs...)
	}
	m.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("wait for the handoff of connector %s: %w", connector, ctx.Err())
	}
}

// flush closes the window, so that later work opens a new one, then hands
// its work off and wakes its submitters.
func (m *memoryCoalescer) flush(connector string, w *memWindow) {
	defer m.wg.Done()
	m.mu.Lock()
	if m.open[connector] == w {
		delete(m.open, connector)
	}
	work := w.work.compact(m.opts.WidenAbove)
	m.mu.Unlock()
	w.err = handoff(m.sink, m.opts.HandoffTimeout, connector, work)
	close(w.done)
}

func (m *memoryCoalescer) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}
