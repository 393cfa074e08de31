// Package changes turns the difference between a container's stored value
// and its new value into change events on the ACCESS stream, and commits
// the new value only once every event is stored.
//
// The commit of one container:
//
//  1. diff the stored value with the new one; nothing to publish and an
//     equal value: done;
//  2. record the new value in the state journal (state.Store.PutPending);
//  3. publish the events, GrantRemoved first, then GrantAdded, then the
//     resource's own event, and wait until the stream acked every one;
//  4. write (or delete) the container, then clear the journal entry.
//
// Every event of a container is derived from the container's revision
// before the commit (prev): ChangeContext.revision is prev+1 and the
// Nats-Msg-Id is subjects.MsgID as docs/events.md lists it with that
// revision. A process killed anywhere in 2-4 leaves the journal entry; the
// next run (Recover) publishes the same events again with the same ids,
// which the stream's dedupe window drops, and then commits. So no change
// is lost, none is duplicated within the window, and an event published
// before a crash is never contradicted by a later diff that does not know
// of it.
//
// Publishing: with an AsyncPublisher (*bus.Bus is one) a container's
// events are sent without waiting for each ack, in order on one connection,
// so the stream stores them in that order; the commit still waits for
// every ack before step 4, so the guarantees above are unchanged. A
// committer keeps at most its publish window of events unacked, across all
// the containers it commits at once: a sync of a large org then costs its
// read, not a round trip per event. A failed ack fails the commit: the
// journal entry stays and the next run publishes the container's events
// again (the stream drops those it already stored). Events of one container
// concern distinct grants, so a republished one stored after a later one
// contradicts nothing.
//
// Batches: CommitBatch commits several containers with one journal entry
// for them all (state.Store.PutJournal): the same steps, each over the
// whole batch, so a process killed anywhere leaves one entry whose
// containers the next run's Recover finishes (those not written since)
// exactly as it finishes a single one.
//
// Revisions: prev+1 is strictly larger than every revision published
// before for the same container, and no larger than the container's
// revision once committed, so a snapshot may hand out the container's KV
// revision as the revision of every item in it. Revisions grow per
// container (hence per resource and per grant), which is what consumers
// compare; they are not one counter across the whole connector.
package changes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Publisher publishes one event and waits for the stream's ack; *bus.Bus
// is one.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error)
}

// AsyncPublisher is a Publisher that can also send without waiting for the
// ack; *bus.Bus is one. Messages it sends reach the stream in send order.
type AsyncPublisher interface {
	Publisher
	PublishAsync(ctx context.Context, subject, msgID string, payload proto.Message) (jetstream.PubAckFuture, error)
}

// BatchPublisher is an AsyncPublisher that can also store many events
// through one fast batch (bus.Bus.PublishBatch); *bus.Bus is one.
type BatchPublisher interface {
	AsyncPublisher
	PublishBatch(ctx context.Context, events iter.Seq[bus.Event]) (bus.BatchResult, error)
}

// MinBatch is the fewest new events a commit publishes as one fast batch
// (with a BatchPublisher); fewer go one by one, asynchronously, since a
// batch costs two round trips of its own.
const MinBatch = 32

// DefaultPublishWindow is how many events a Committer keeps unacked at
// most. Far below JetStream's own limit of pending asynchronous publishes
// (4,000 per JetStream context by default), so that a few runs sharing one
// connection never reach it, and large enough that the acks, not the round
// trips, set the pace.
const DefaultPublishWindow = 512

// Counts are what a committer published, per kind.
type Counts struct {
	// Seen counts objects read (set by the caller through Seen).
	Seen int64
	// Added counts new resources (upserted) and new grants (added).
	Added int64
	// Updated counts changed resources (upserted) and grants whose
	// attributes changed (added with attributes_changed).
	Updated int64
	// Removed counts deleted resources and removed grants.
	Removed int64
}

// Committer commits containers of one connector for one run. It is safe for
// concurrent use on distinct containers.
type Committer struct {
	pub       Publisher
	store     *state.Store
	connector string
	runID     string
	cause     eventsv1.ChangeCause
	now       func() time.Time
	// window holds a token per event sent and not yet acked.
	window chan struct{}
	// journalPrefix and journalSeq name the shared journal entries of
	// CommitBatch: random per committer, so runs never share one.
	journalPrefix string
	journalSeq    atomic.Int64

	// noBatch is set once the stream refused fast batches.
	noBatch atomic.Bool

	mu        sync.Mutex
	resources map[eventsv1.ResourceKind]*Counts
	grants    map[eventsv1.GrantKind]*Counts
	lastSeq   uint64
	published int64
}

// New returns a Committer for connector's run runID.
func New(pub Publisher, store *state.Store, connector, runID string, cause eventsv1.ChangeCause) *Committer {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read does not fail
	return &Committer{
		pub: pub, store: store, connector: connector, runID: runID, cause: cause, now: time.Now,
		window:        make(chan struct{}, DefaultPublishWindow),
		journalPrefix: hex.EncodeToString(rnd[:]),
		resources:     map[eventsv1.ResourceKind]*Counts{}, grants: map[eventsv1.GrantKind]*Counts{},
	}
}

// SetPublishWindow sets how many events the committer keeps unacked at most
// (at least 1) in place of DefaultPublishWindow. Call it before any commit.
func (c *Committer) SetPublishWindow(n int) {
	c.window = make(chan struct{}, max(n, 1))
}

// SeenResources adds n to the objects read of a resource kind.
func (c *Committer) SeenResources(kind eventsv1.ResourceKind, n int) {
	c.count(kind, 0, func(x *Counts) { x.Seen += int64(n) })
}

// SeenGrants adds n to the objects read of a grant kind.
func (c *Committer) SeenGrants(kind eventsv1.GrantKind, n int) {
	c.count(0, kind, func(x *Counts) { x.Seen += int64(n) })
}

// ResourceCounts returns a copy of the counts per resource kind.
func (c *Committer) ResourceCounts() map[eventsv1.ResourceKind]Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[eventsv1.ResourceKind]Counts{}
	for k, v := range c.resources {
		out[k] = *v
	}
	return out
}

// GrantCounts returns a copy of the counts per grant kind.
func (c *Committer) GrantCounts() map[eventsv1.GrantKind]Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[eventsv1.GrantKind]Counts{}
	for k, v := range c.grants {
		out[k] = *v
	}
	return out
}

// LastSequence is the largest ACCESS sequence an ack named; 0 if none.
func (c *Committer) LastSequence() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// Published is how many events were published (duplicates included).
func (c *Committer) Published() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.published
}

func (c *Committer) count(rk eventsv1.ResourceKind, gk eventsv1.GrantKind, f func(*Counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m *Counts
	if rk != 0 {
		if m = c.resources[rk]; m == nil {
			m = &Counts{}
			c.resources[rk] = m
		}
	} else {
		if m = c.grants[gk]; m == nil {
			m = &Counts{}
			c.grants[gk] = m
		}
	}
	f(m)
}

// event is one change to publish.
type event struct {
	subject string
	msgID   string
	payload proto.Message
	// counted when the event is stored
	rk    eventsv1.ResourceKind
	gk    eventsv1.GrantKind
	apply func(*Counts)
}

// Commit brings container key from prev to next (nil: delete it) and
// returns the container's entry afterwards. A container that is absent and
// stays absent is left alone.
func (c *Committer) Commit(ctx context.Context, key string, prev state.Entry, next []byte) (state.Entry, error) {
	return c.commit(ctx, key, prev, next, decoded{})
}

// CommitGrants is Commit of a grant container whose new value is set,
// encoded as next (EncodeGrants): the diff reads set instead of decoding
// next again.
func (c *Committer) CommitGrants(ctx context.Context, key string, prev state.Entry, set *GrantSet, next []byte) (state.Entry, error) {
	return c.commit(ctx, key, prev, next, decoded{grants: set})
}

// CommitResource is Commit of a resource container whose new value is res,
// encoded as next (EncodeResource).
func (c *Committer) CommitResource(ctx context.Context, key string, prev state.Entry, res *eventsv1.Resource, next []byte) (state.Entry, error) {
	return c.commit(ctx, key, prev, next, decoded{resource: res})
}

// decoded is a container's new value as the caller built it, when it did:
// the diff then skips decoding the encoded value.
type decoded struct {
	grants   *GrantSet
	resource *eventsv1.Resource
}

func (c *Committer) commit(ctx context.Context, key string, prev state.Entry, next []byte, dec decoded) (state.Entry, error) {
	del := next == nil
	if del && !prev.Exists() {
		return prev, nil
	}
	events, err := c.diff(key, prev, next, dec)
	if err != nil {
		return prev, err
	}
	if events.len() == 0 && !del && prev.Exists() && string(prev.Value) == string(next) {
		return prev, nil
	}
	if events.len() > 0 {
		if err := c.store.PutPending(ctx, key, state.Pending{Prev: prev.Revision, Delete: del, Value: next}); err != nil {
			return prev, err
		}
	}
	return c.finish(ctx, key, prev, next, events, true)
}

// Recover finishes the commits a previous run journaled but did not
// complete, updating snap's containers; run it before diffing anything.
func (c *Committer) Recover(ctx context.Context, snap *state.Snapshot) error {
	for key, p := range snap.Pending {
		prev := snap.Containers[key]
		if prev.Revision != p.Prev {
			// The container was written; only the journal entry was left.
			if p.Journal == "" {
				if err := c.store.DeletePending(ctx, key); err != nil {
					return err
				}
			}
			delete(snap.Pending, key)
			continue
		}
		next := p.Value
		if p.Delete {
			next = nil
		} else if next == nil {
			next = []byte{}
		}
		events, err := c.diff(key, prev, next, decoded{})
		if err != nil {
			return fmt.Errorf("recover journaled change of %s: %w", key, err)
		}
		var ent state.Entry
		if p.Journal == "" {
			ent, err = c.finish(ctx, key, prev, next, events, false)
		} else if err = c.publish(ctx, key, []diffResult{events}, false); err == nil {
			ent, err = c.write(ctx, key, prev, next)
		}
		if err != nil {
			return fmt.Errorf("recover journaled change of %s: %w", key, err)
		}
		snap.Containers[key] = ent
		delete(snap.Pending, key)
	}
	// Every container of a shared entry is written now.
	for _, id := range snap.Journals {
		if err := c.store.DeleteJournal(ctx, c.connector, id); err != nil {
			return err
		}
	}
	snap.Journals = nil
	return nil
}

// finish publishes a container's events and writes it; fresh says that the
// events were never published before (not a recovery).
func (c *Committer) finish(ctx context.Context, key string, prev state.Entry, next []byte, events diffResult, fresh bool) (state.Entry, error) {
	if err := c.publish(ctx, key, []diffResult{events}, fresh); err != nil {
		return prev, err
	}
	ent, err := c.write(ctx, key, prev, next)
	if err != nil {
		return prev, err
	}
	if events.len() > 0 {
		if err := c.store.DeletePending(ctx, key); err != nil {
			return ent, fmt.Errorf("commit %s: %w", key, err)
		}
	}
	return ent, nil
}

// write writes container key's new value (nil: deletes it).
func (c *Committer) write(ctx context.Context, key string, prev state.Entry, next []byte) (state.Entry, error) {
	if next == nil {
		if err := c.store.Delete(ctx, key); err != nil {
			return prev, fmt.Errorf("commit %s: %w", key, err)
		}
		// The delete marker's own revision is only known on the next Load;
		// prev+1 is a lower bound, enough for a later commit in this run.
		return state.Entry{Revision: prev.Revision + 1, Deleted: true}, nil
	}
	rev, err := c.store.Put(ctx, key, next)
	if err != nil {
		return prev, fmt.Errorf("commit %s: %w", key, err)
	}
	return state.Entry{Value: next, Revision: rev}, nil
}

// Item is one container of a CommitBatch: Commit's arguments, and the new
// value as the caller built it when it did (Grants or Resource), which
// spares decoding Next again.
type Item struct {
	Key      string
	Prev     state.Entry
	Next     []byte
	Grants   *GrantSet
	Resource *eventsv1.Resource
}

// MaxBatchJournal bounds the bytes of new values a CommitBatch journals in
// one entry, far below a NATS message's default limit of 1 MiB.
const MaxBatchJournal = 256 << 10

// CommitBatch commits distinct containers together, with Commit's
// guarantees and one write of the journal for them all instead of one per
// container: one journal entry holds the new value of every container that
// has events (state.Store.PutJournal), then their events are published and
// acked, then the containers are written (together: state.Store.PutMany),
// then the entry is cleared. A
// process killed anywhere in between leaves the entry, and the next run's
// Recover finishes every container in it that was not written. Keep the
// journaled values under MaxBatchJournal.
func (c *Committer) CommitBatch(ctx context.Context, items []Item) error {
	var (
		todo    []*Item
		all     []diffResult
		entries = map[string]state.Pending{}
	)
	for i := range items {
		it := &items[i]
		del := it.Next == nil
		if del && !it.Prev.Exists() {
			continue
		}
		events, err := c.diff(it.Key, it.Prev, it.Next, decoded{grants: it.Grants, resource: it.Resource})
		if err != nil {
			return err
		}
		if events.len() == 0 && !del && it.Prev.Exists() && string(it.Prev.Value) == string(it.Next) {
			continue
		}
		if events.len() > 0 {
			entries[it.Key] = state.Pending{Prev: it.Prev.Revision, Delete: del, Value: it.Next}
			all = append(all, events)
		}
		todo = append(todo, it)
	}
	var journal, single string
	switch len(entries) {
	case 0:
	case 1:
		for key, p := range entries {
			single = key
			if err := c.store.PutPending(ctx, key, p); err != nil {
				return err
			}
		}
	default:
		journal = fmt.Sprintf("%s-%d", c.journalPrefix, c.journalSeq.Add(1))
		if err := c.store.PutJournal(ctx, c.connector, journal, entries); err != nil {
			return err
		}
	}
	label := fmt.Sprintf("a batch of %d containers", len(todo))
	if len(todo) == 1 {
		label = todo[0].Key
	}
	if err := c.publish(ctx, label, all, true); err != nil {
		return err
	}
	// The new values are written together, the deletions one by one.
	puts := make([]state.KeyValue, 0, len(todo))
	for _, it := range todo {
		if it.Next == nil {
			if _, err := c.write(ctx, it.Key, it.Prev, it.Next); err != nil {
				return err
			}
			continue
		}
		puts = append(puts, state.KeyValue{Key: it.Key, Value: it.Next})
	}
	if err := c.store.PutMany(ctx, puts); err != nil {
		return fmt.Errorf("commit %s: %w", label, err)
	}
	switch {
	case journal != "":
		if err := c.store.DeleteJournal(ctx, c.connector, journal); err != nil {
			return fmt.Errorf("commit %s: %w", label, err)
		}
	case single != "":
		if err := c.store.DeletePending(ctx, single); err != nil {
			return fmt.Errorf("commit %s: %w", label, err)
		}
	}
	return nil
}

// failedAckWait bounds how long a failed commit waits for the answers
// to the events it sent before the failure.
const failedAckWait = 5 * time.Second

// publish stores the events of every diff, in order, and returns once each
// is acked. Events are built as they are sent, so that a container of a
// hundred thousand grants never holds them all at once.
func (c *Committer) publish(ctx context.Context, key string, diffs []diffResult, fresh bool) error {
	if fresh {
		if done, err := c.publishBatch(ctx, key, diffs); done || err != nil {
			return err
		}
	}
	ap, async := c.pub.(AsyncPublisher)
	if !async {
		for _, d := range diffs {
			for i := range d.len() {
				ev := d.at(i)
				ack, err := c.pub.Publish(ctx, ev.subject, ev.msgID, ev.payload)
				if err != nil {
					return fmt.Errorf("commit %s: %w", key, err)
				}
				c.acked(&ev, ack)
			}
		}
		return nil
	}
	// pending[head:] are sent and not yet acked, each holding a window
	// token; the acked ones before head are dropped now and then.
	type sent struct {
		ev  event
		fut jetstream.PubAckFuture
	}
	var pending []sent
	head := 0
	defer func() {
		// On failure the unacked events give their tokens back, once each
		// has its answer (the client retries a publish that found no
		// stream): nothing sent is still on its way when the commit
		// returns, so a retried commit or Recover races nothing. The wait
		// is bounded, as an answer can be lost with the connection.
		deadline := time.NewTimer(failedAckWait)
		defer deadline.Stop()
		waiting := true
		for ; head < len(pending); head++ {
			if waiting {
				select {
				case <-pending[head].fut.Ok():
				case <-pending[head].fut.Err():
				case <-deadline.C:
					waiting = false
				case <-ctx.Done():
					waiting = false
				}
			}
			<-c.window
		}
	}()
	// settle takes the oldest pending ack, or the first of wake (a free
	// token) when wake is set: it waits on its own oldest ack while it
	// waits for a token, so that committers holding every token still make
	// progress.
	settle := func(wake chan struct{}) (bool, error) {
		p := &pending[head]
		select {
		case ack := <-p.fut.Ok():
			c.acked(&p.ev, ack)
			*p = sent{}
			head++
			<-c.window
			if head >= 256 && head*2 >= len(pending) {
				n := copy(pending, pending[head:])
				clear(pending[n:])
				pending, head = pending[:n], 0
			}
			return false, nil
		case err := <-p.fut.Err():
			// Answered: its token goes back now.
			head++
			<-c.window
			return false, fmt.Errorf("commit %s: publish to %s (id %s): %w", key, p.ev.subject, p.ev.msgID, err)
		case wake <- struct{}{}:
			return true, nil
		case <-ctx.Done():
			return false, fmt.Errorf("commit %s: wait for acks: %w", key, ctx.Err())
		}
	}
	for _, d := range diffs {
		for i := range d.len() {
			for got := false; !got; {
				if head == len(pending) {
					select {
					case c.window <- struct{}{}:
						got = true
					case <-ctx.Done():
						return fmt.Errorf("commit %s: wait for the publish window: %w", key, ctx.Err())
					}
					continue
				}
				var err error
				if got, err = settle(c.window); err != nil {
					return err
				}
			}
			ev := d.at(i)
			fut, err := ap.PublishAsync(ctx, ev.subject, ev.msgID, ev.payload)
			if err != nil {
				<-c.window
				return fmt.Errorf("commit %s: %w", key, err)
			}
			pending = append(pending, sent{ev, fut})
		}
	}
	for head < len(pending) {
		if _, err := settle(nil); err != nil {
			return err
		}
	}
	return nil
}

// publishBatch publishes fresh events (never published before, so none is
// a duplicate that would end a fast batch at once) as one fast batch, when
// the publisher and the stream take batches and there are at least
// MinBatch of them; done says whether it did.
func (c *Committer) publishBatch(ctx context.Context, key string, diffs []diffResult) (done bool, err error) {
	bp, ok := c.pub.(BatchPublisher)
	if !ok || c.noBatch.Load() {
		return false, nil
	}
	n := 0
	for _, d := range diffs {
		n += d.len()
	}
	if n < MinBatch {
		return false, nil
	}
	// Counted once the whole batch is acked, like the events of Publish.
	resources := map[eventsv1.ResourceKind]*Counts{}
	grants := map[eventsv1.GrantKind]*Counts{}
	events := func(yield func(bus.Event) bool) {
		for _, d := range diffs {
			for i := range d.len() {
				ev := d.at(i)
				if ev.rk != 0 {
					ev.apply(countsOf(resources, ev.rk))
				} else {
					ev.apply(countsOf(grants, ev.gk))
				}
				if !yield(bus.Event{Subject: ev.subject, MsgID: ev.msgID, Payload: ev.payload}) {
					return
				}
			}
		}
	}
	res, err := bp.PublishBatch(ctx, events)
	if errors.Is(err, bus.ErrBatchUnavailable) {
		c.noBatch.Store(true)
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("commit %s: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.published += int64(res.Count)
	c.lastSeq = max(c.lastSeq, res.LastSequence)
	for k, v := range resources {
		addCounts(countsOf(c.resources, k), v)
	}
	for k, v := range grants {
		addCounts(countsOf(c.grants, k), v)
	}
	return true, nil
}

// countsOf returns m[k], made when missing.
func countsOf[K comparable](m map[K]*Counts, k K) *Counts {
	x := m[k]
	if x == nil {
		x = &Counts{}
		m[k] = x
	}
	return x
}

// addCounts adds the published counts of d to x.
func addCounts(x, d *Counts) {
	x.Added += d.Added
	x.Updated += d.Updated
	x.Removed += d.Removed
}

// acked counts an event the stream stored (or dropped as a duplicate).
func (c *Committer) acked(ev *event, ack *jetstream.PubAck) {
	c.mu.Lock()
	c.published++
	if ack != nil && ack.Sequence > c.lastSeq {
		c.lastSeq = ack.Sequence
	}
	c.mu.Unlock()
	c.count(ev.rk, ev.gk, ev.apply)
}

func (c *Committer) changeContext(rev uint64) *eventsv1.ChangeContext {
	return &eventsv1.ChangeContext{
		ConnectorId: c.connector,
		ObservedAt:  timestamppb.New(c.now()),
		RunId:       c.runID,
		Cause:       c.cause,
		Revision:    rev,
	}
}

// diffResult is what takes one container from its stored value to its
// new one: a resource's event (events, at most one), or a grant
// container's removals then additions (grants), built one at a time by at.
type diffResult struct {
	events []event
	grants *grantDiff
}

func (d diffResult) len() int {
	if d.grants != nil {
		return len(d.grants.removed) + len(d.grants.added)
	}
	return len(d.events)
}

func (d diffResult) at(i int) event {
	if d.grants != nil {
		return d.grants.at(i)
	}
	return d.events[i]
}

// grantDiff is the difference between two grant sets: the keys of the
// grants removed and of those added or changed, each sorted, from which
// at builds the events.
type grantDiff struct {
	c                      *Committer
	old, new               *GrantSet
	removed, added         []string
	revs                   string
	cc                     *eventsv1.ChangeContext
	ccWire                 []byte // cc encoded as the events' field 1
	addedSubj, removedSubj string
}

// at is the i-th event: the removals first, then the additions.
func (d *grantDiff) at(i int) event {
	c := d.c
	if i < len(d.removed) {
		k := d.removed[i]
		g := d.old.Grants[k]
		return event{
			subject: d.removedSubj,
			msgID:   subjects.MsgID(subjects.DomainAccess, c.connector, subjects.EntityGrant, k, subjects.VerbRemoved, d.revs),
			payload: grantRemovedWire(d.ccWire, d.cc, g),
			gk:      grantKind(g), apply: func(x *Counts) { x.Removed++ },
		}
	}
	k := d.added[i-len(d.removed)]
	g := d.new.Grants[k]
	_, existed := d.old.Grants[k]
	apply := func(x *Counts) { x.Added++ }
	if existed {
		apply = func(x *Counts) { x.Updated++ }
	}
	return event{
		subject: d.addedSubj,
		msgID:   subjects.MsgID(subjects.DomainAccess, c.connector, subjects.EntityGrant, k, subjects.VerbAdded, d.revs),
		payload: grantAddedWire(d.ccWire, d.cc, g, existed),
		gk:      grantKind(g), apply: apply,
	}
}

// diff computes the events that take container key from prev to next (nil:
// deleted). Their order: grant removals, grant additions, resource event.
func (c *Committer) diff(key string, prev state.Entry, next []byte, dec decoded) (diffResult, error) {
	kind, id, ok := state.SplitKey(c.connector, key)
	if !ok {
		return diffResult{}, fmt.Errorf("diff %s: not a container of connector %s: %w", key, c.connector, state.ErrInvalidKey)
	}
	rev := prev.Revision + 1
	var old []byte
	if prev.Exists() {
		old = prev.Value
	}
	if isResourceKind(kind) {
		evs, err := c.diffResource(kind, id, rev, prev.Exists(), old, next, dec.resource)
		return diffResult{events: evs}, err
	}
	d, err := c.diffGrants(kind, id, rev, old, next, dec.grants)
	if err != nil {
		return diffResult{}, err
	}
	return diffResult{grants: d}, nil
}

func (c *Committer) diffResource(kind, id string, rev uint64, existed bool, old, next []byte, newRes *eventsv1.Resource) ([]event, error) {
	rk := resourceKind(kind)
	tok, err := subjects.KindToken(rk)
	if err != nil {
		return nil, err
	}
	oldRes, err := DecodeResource(old)
	if err != nil {
		return nil, fmt.Errorf("diff %s %s: stored: %w", kind, id, err)
	}
	revs := fmt.Sprint(rev)
	if next == nil {
		subj, err := subjects.ResourceDeleted(c.connector, rk)
		if err != nil {
			return nil, err
		}
		return []event{{
			subject: subj,
			msgID:   subjects.MsgID(subjects.DomainAccess, c.connector, subjects.EntityResource, tok, id, subjects.VerbDeleted, revs),
			payload: &eventsv1.ResourceDeleted{Context: c.changeContext(rev), Kind: rk, Id: id, LastKnown: oldRes},
			rk:      rk, apply: func(x *Counts) { x.Removed++ },
		}}, nil
	}
	if newRes == nil {
		if newRes, err = DecodeResource(next); err != nil {
			return nil, fmt.Errorf("diff %s %s: new: %w", kind, id, err)
		}
	}
	if existed && proto.Equal(oldRes, newRes) {
		return nil, nil
	}
	subj, err := subjects.ResourceUpserted(c.connector, rk)
	if err != nil {
		return nil, err
	}
	apply := func(x *Counts) { x.Added++ }
	if existed {
		apply = func(x *Counts) { x.Updated++ }
	}
	return []event{{
		subject: subj,
		msgID:   subjects.MsgID(subjects.DomainAccess, c.connector, subjects.EntityResource, tok, id, subjects.VerbUpserted, revs),
		payload: &eventsv1.ResourceUpserted{Context: c.changeContext(rev), Kind: rk, Id: id, Resource: newRes},
		rk:      rk, apply: apply,
	}}, nil
}

func (c *Committer) diffGrants(kind, id string, rev uint64, old, next []byte, newSet *GrantSet) (*grantDiff, error) {
	oldSet, err := DecodeGrants(kind, id, old)
	if err != nil {
		return nil, fmt.Errorf("diff %s %s: stored: %w", kind, id, err)
	}
	switch {
	case next == nil:
		newSet = NewGrantSet("")
	case newSet == nil:
		if newSet, err = DecodeGrants(kind, id, next); err != nil {
			return nil, fmt.Errorf("diff %s %s: new: %w", kind, id, err)
		}
	}
	addedSubj, err := subjects.GrantAdded(c.connector)
	if err != nil {
		return nil, err
	}
	removedSubj, err := subjects.GrantRemoved(c.connector)
	if err != nil {
		return nil, err
	}
	d := &grantDiff{c: c, old: oldSet, new: newSet, revs: fmt.Sprint(rev), addedSubj: addedSubj, removedSubj: removedSubj}
	if len(oldSet.Grants) > 0 {
		for k := range oldSet.Grants {
			if _, ok := newSet.Grants[k]; !ok {
				d.removed = append(d.removed, k)
			}
		}
		slices.Sort(d.removed)
	}
	d.added = make([]string, 0, len(newSet.Grants))
	for k, g := range newSet.Grants {
		if was, existed := oldSet.Grants[k]; existed && proto.Equal(was, g) {
			continue
		}
		d.added = append(d.added, k)
	}
	slices.Sort(d.added)
	if len(d.removed)+len(d.added) > 0 {
		// One context for every event of the container: they share it
		// (marshalling only reads it), which spares two allocations an
		// event.
		d.cc = c.changeContext(rev)
		if d.ccWire, err = encodeContextField(d.cc); err != nil {
			return nil, fmt.Errorf("diff %s %s: %w", kind, id, err)
		}
	}
	return d, nil
}
