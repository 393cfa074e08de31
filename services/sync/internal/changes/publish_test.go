package changes_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

const conn = "c1"

type env struct {
	js    jetstream.JetStream
	bus   *bus.Bus
	store *state.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	store, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	return &env{js: js, bus: b, store: store}
}

// members encodes a members container of group g holding users.
func members(t *testing.T, g string, users ...string) []byte {
	t.Helper()
	set := changes.NewGrantSet("")
	for _, u := range users {
		set.Add(changes.Membership(g, u))
	}
	v, err := changes.EncodeGrants(state.KindMembers, set)
	if err != nil {
		t.Fatalf("encode members: %v", err)
	}
	return v
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func key(t *testing.T, kind, id string) string {
	t.Helper()
	k, err := state.Key(conn, kind, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// accessEvents reads every message of the ACCESS stream, in stream order.
func accessEvents(t *testing.T, js jetstream.JetStream) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, subjects.StreamAccess)
	if err != nil {
		t.Fatalf("access stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("access stream info: %v", err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get access message %d: %v", seq, err)
		}
		out = append(out, *m)
	}
	return out
}

// asyncOnly hides a bus's fast batches: the committer publishes each event
// asynchronously.
type asyncOnly struct{ changes.AsyncPublisher }

// Many containers committed at once through a window far smaller than
// their events: every event is stored once, removals before additions in
// each container, and every container is written with no journal left.
func TestAsyncCommitThroughASmallWindow(t *testing.T) {
	e := newEnv(t)
	testManyCommits(t, e, asyncOnly{e.bus}, 3)
}

// countingBatcher counts the fast batches of a bus, and those refused.
type countingBatcher struct {
	*bus.Bus
	stored, refused atomic.Int64
}

func (c *countingBatcher) PublishBatch(ctx context.Context, events iter.Seq[bus.Event]) (bus.BatchResult, error) {
	res, err := c.Bus.PublishBatch(ctx, events)
	switch {
	case errors.Is(err, bus.ErrBatchUnavailable):
		c.refused.Add(1)
	case err == nil:
		c.stored.Add(1)
	}
	return res, err
}

// The same through fast batches (each container has at least MinBatch
// events).
func TestBatchCommit(t *testing.T) {
	e := newEnv(t)
	pub := &countingBatcher{Bus: e.bus}
	testManyCommits(t, e, pub, 0)
	if pub.stored.Load() != 9 || pub.refused.Load() != 0 {
		t.Fatalf("%d fast batches stored, %d refused; want one per commit (9), none refused", pub.stored.Load(), pub.refused.Load())
	}
}

// A stream that does not take fast batches: the committer publishes the
// events one by one and loses none.
func TestBatchCommitFallsBackWithoutAllowBatched(t *testing.T) {
	e := newEnv(t)
	cfgs := bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})
	for i := range cfgs {
		cfgs[i].AllowBatchPublish = false
	}
	if _, err := bus.DeclareStreams(context.Background(), e.js, cfgs...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	pub := &countingBatcher{Bus: e.bus}
	testManyCommits(t, e, pub, 0)
	if pub.stored.Load() != 0 || pub.refused.Load() == 0 || pub.refused.Load() > 8 {
		t.Fatalf("%d fast batches stored, %d refused; want none stored, and the committer to stop asking once it knows", pub.stored.Load(), pub.refused.Load())
	}
}

// testManyCommits commits 8 groups of 40 members at once through pub (with
// a publish window when window > 0), then changes half of one group.
func testManyCommits(t *testing.T, e *env, pub changes.Publisher, window int) {
	t.Helper()
	ctx := context.Background()
	com := changes.New(pub, e.store, conn, "run1", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	if window > 0 {
		com.SetPublishWindow(window)
	}
	const groups, perGroup = 8, 40
	entries := make([]state.Entry, groups)
	g, gctx := errgroup.WithContext(ctx)
	for i := range groups {
		g.Go(func() error {
			gid := fmt.Sprintf("g%d", i)
			ent, err := com.Commit(gctx, key(t, state.KindMembers, gid), state.Entry{}, members(t, gid, userIDs("a", perGroup)...))
			entries[i] = ent
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	msgs := accessEvents(t, e.js)
	if len(msgs) != groups*perGroup || com.Published() != groups*perGroup {
		t.Fatalf("stored %d events, counted %d; want %d", len(msgs), com.Published(), groups*perGroup)
	}
	if got, want := com.LastSequence(), msgs[len(msgs)-1].Sequence; got != want {
		t.Fatalf("last sequence %d, want %d", got, want)
	}
	if c := com.GrantCounts()[eventsv1.GrantKind_GRANT_KIND_GROUP_MEMBERSHIP]; c.Added != groups*perGroup {
		t.Fatalf("counted %+v, want %d added", c, groups*perGroup)
	}
	snap, err := e.store.Load(ctx, conn)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(snap.Pending) != 0 || len(snap.Containers) != groups {
		t.Fatalf("state has %d containers and %d journal entries, want %d and 0", len(snap.Containers), len(snap.Pending), groups)
	}

	// A second commit of one group removes half its members and adds as
	// many: the removals are stored first.
	old := userIDs("a", perGroup)
	next := append(old[perGroup/2:], userIDs("b", perGroup/2)...)
	if _, err := com.Commit(ctx, key(t, state.KindMembers, "g0"), entries[0], members(t, "g0", next...)); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	msgs = accessEvents(t, e.js)[groups*perGroup:]
	if len(msgs) != perGroup {
		t.Fatalf("second commit stored %d events, want %d", len(msgs), perGroup)
	}
	for i, m := range msgs {
		want := "removed"
		if i >= perGroup/2 {
			want = "added"
		}
		if sub := m.Subject; sub != "access."+conn+".grant."+want {
			t.Fatalf("event %d is %s, want grant.%s (removals first)", i, sub, want)
		}
	}
}

// A publish the stream never acks (the ACCESS stream is gone) fails the
// commit: the container is not written and its journal entry stays, so a
// later Recover publishes the same events and commits.
func TestAsyncCommitFailedAckKeepsTheJournal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, subjects.StreamAccess); err != nil {
		t.Fatalf("delete access stream: %v", err)
	}
	com := changes.New(e.bus, e.store, conn, "run1", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	com.SetPublishWindow(2)
	k := key(t, state.KindMembers, "g1")
	if _, err := com.Commit(ctx, k, state.Entry{}, members(t, "g1", userIDs("a", 5)...)); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("commit without a stream: %v, want ErrNoStreamResponse", err)
	}
	snap, err := e.store.Load(ctx, conn)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(snap.Containers) != 0 || len(snap.Pending) != 1 {
		t.Fatalf("after a failed commit: %d containers, %d journal entries; want 0 and 1", len(snap.Containers), len(snap.Pending))
	}
	if _, err := bus.DeclareStreams(ctx, e.js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	// The failed commit gave its window back: a window of 2 still carries
	// the five events.
	if err := com.Recover(ctx, snap); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if n := len(accessEvents(t, e.js)); n != 5 {
		t.Fatalf("recovered %d events, want 5", n)
	}
	if snap, err = e.store.Load(ctx, conn); err != nil || len(snap.Pending) != 0 || !snap.Containers[k].Exists() {
		t.Fatalf("after recover: err %v, journal %d, container %v", err, len(snap.Pending), snap.Containers[k])
	}
}

// stalled sends nothing and never acks: a stream that does not answer.
type stalled struct {
	*bus.Bus
	once sync.Once
	sent chan struct{}
}

func (s *stalled) PublishAsync(context.Context, string, string, proto.Message) (jetstream.PubAckFuture, error) {
	s.once.Do(func() { close(s.sent) })
	return never{}, nil
}

type never struct{ jetstream.PubAckFuture }

func (never) Ok() <-chan *jetstream.PubAck { return nil }
func (never) Err() <-chan error            { return nil }

// A commit waiting for acks ends with its context, leaving the journal.
func TestAsyncCommitStopsWithItsContext(t *testing.T) {
	e := newEnv(t)
	pub := &stalled{Bus: e.bus, sent: make(chan struct{})}
	com := changes.New(pub, e.store, conn, "run1", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	com.SetPublishWindow(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := com.Commit(ctx, key(t, state.KindMembers, "g1"), state.Entry{}, members(t, "g1", userIDs("a", 5)...))
		done <- err
	}()
	<-pub.sent
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("commit: %v, want context.Canceled", err)
	}
	snap, err := e.store.Load(context.Background(), conn)
	if err != nil || len(snap.Pending) != 1 || len(snap.Containers) != 0 {
		t.Fatalf("after a cancelled commit: err %v, journal %d, containers %d", err, len(snap.Pending), len(snap.Containers))
	}
}

// CommitBatch commits several containers with one journal entry: every
// event once, every container written, an unchanged one left alone, and
// no journal entry left.
func TestCommitBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	com := changes.New(e.bus, e.store, conn, "run1", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	com.SetPublishWindow(3)
	k1, k2, k3 := key(t, state.KindMembers, "g1"), key(t, state.KindMembers, "g2"), key(t, state.KindMembers, "g3")
	same := members(t, "g3", "u1")
	r3, err := e.store.Put(ctx, k3, same)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.store.Put(ctx, k2, members(t, "g2", "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	set1 := changes.NewGrantSet("m")
	for _, u := range userIDs("a", 4) {
		set1.Add(changes.Membership("g1", u))
	}
	v1, err := changes.EncodeGrants(state.KindMembers, set1)
	if err != nil {
		t.Fatal(err)
	}
	prev2 := state.Entry{Value: members(t, "g2", "x", "y"), Revision: r2}
	err = com.CommitBatch(ctx, []changes.Item{
		{Key: k1, Next: v1, Grants: set1},
		{Key: k2, Prev: prev2, Next: members(t, "g2", "y", "z")},
		{Key: k3, Prev: state.Entry{Value: same, Revision: r3}, Next: same},
	})
	if err != nil {
		t.Fatalf("commit batch: %v", err)
	}
	if n := len(accessEvents(t, e.js)); n != 4+2 {
		t.Fatalf("%d events, want 6 (4 added to g1; x removed from, z added to g2)", n)
	}
	snap, err := e.store.Load(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 0 || len(snap.Journals) != 0 {
		t.Fatalf("journal left: %v %v", snap.Pending, snap.Journals)
	}
	if c := snap.Containers[k1]; string(c.Value) != string(v1) {
		t.Errorf("g1 not written: %+v", c)
	}
	if c := snap.Containers[k2]; c.Revision == r2 {
		t.Errorf("g2 not written: %+v", c)
	}
	if c := snap.Containers[k3]; c.Revision != r3 {
		t.Errorf("unchanged g3 written again: %+v", c)
	}
}

// A batch whose events cannot be stored leaves its one journal entry; the
// next Recover finishes every container of it not written since, with the
// same message ids, and clears it.
func TestCommitBatchFailedThenRecovered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, subjects.StreamAccess); err != nil {
		t.Fatalf("delete access stream: %v", err)
	}
	com := changes.New(e.bus, e.store, conn, "run1", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	k1, k2 := key(t, state.KindMembers, "g1"), key(t, state.KindMembers, "g2")
	err := com.CommitBatch(ctx, []changes.Item{
		{Key: k1, Next: members(t, "g1", userIDs("a", 3)...)},
		{Key: k2, Next: members(t, "g2", userIDs("b", 2)...)},
	})
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("commit without a stream: %v, want ErrNoStreamResponse", err)
	}
	snap, err := e.store.Load(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Containers) != 0 || len(snap.Pending) != 2 || len(snap.Journals) != 1 {
		t.Fatalf("after a failed batch: %d containers, %d journaled, journals %v", len(snap.Containers), len(snap.Pending), snap.Journals)
	}
	// g2 was written after all (as if the process died after writing it
	// and before clearing the journal): Recover leaves it.
	if _, err := e.store.Put(ctx, k2, members(t, "g2", userIDs("b", 2)...)); err != nil {
		t.Fatal(err)
	}
	if snap, err = e.store.Load(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.DeclareStreams(ctx, e.js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	com2 := changes.New(e.bus, e.store, conn, "run2", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	if err := com2.Recover(ctx, snap); err != nil {
		t.Fatalf("recover: %v", err)
	}
	evs := accessEvents(t, e.js)
	if len(evs) != 3 {
		t.Fatalf("recovered %d events, want g1's 3", len(evs))
	}
	snap2, err := e.store.Load(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap2.Pending) != 0 || len(snap2.Journals) != 0 || !snap2.Containers[k1].Exists() {
		t.Fatalf("after recover: journaled %v, journals %v, g1 %+v", snap2.Pending, snap2.Journals, snap2.Containers[k1])
	}
	// g1's events published again from the revision the batch built on are
	// dropped by the stream: Recover used the batch's message ids.
	com3 := changes.New(e.bus, e.store, conn, "run3", eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	if err := com3.CommitBatch(ctx, []changes.Item{{Key: k1, Next: members(t, "g1", userIDs("a", 3)...)}}); err != nil {
		t.Fatalf("commit g1 as first journaled: %v", err)
	}
	if n := len(accessEvents(t, e.js)); n != 3 {
		t.Fatalf("%d events after publishing g1's again, want 3: the ids differ", n)
	}
}
