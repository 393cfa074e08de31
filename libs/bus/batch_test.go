package bus_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/testkit"
)

// events yields n access events of connector c1 with ids prefix-0..n-1.
func events(prefix string, n int) iter.Seq[bus.Event] {
	return func(yield func(bus.Event) bool) {
		for i := range n {
			if !yield(bus.Event{Subject: "access.c1.grant.added", MsgID: fmt.Sprintf("%s-%d", prefix, i), Payload: str(fmt.Sprint(i))}) {
				return
			}
		}
	}
}

// streamMsgs reads every message of the ACCESS stream in order.
func streamMsgs(t *testing.T, js jetstream.JetStream) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "ACCESS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, *m)
	}
	return out
}

// A batch stores every event in order, with the headers Publish sets, and
// answers the sequence of its last message.
func TestPublishBatchStoresEveryEventInOrder(t *testing.T) {
	b, js := setup(t, bus.Options{})
	const n = 2500 // several flow-control acks
	res, err := b.PublishBatch(context.Background(), events("e", n))
	if err != nil {
		t.Fatal(err)
	}
	msgs := streamMsgs(t, js)
	if res.Count != n || len(msgs) != n {
		t.Fatalf("batch took %d, stream holds %d, want %d", res.Count, len(msgs), n)
	}
	if res.LastSequence != msgs[n-1].Sequence {
		t.Fatalf("last sequence %d, want %d", res.LastSequence, msgs[n-1].Sequence)
	}
	for i, m := range msgs {
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(m.Data, &v); err != nil || v.Value != fmt.Sprint(i) {
			t.Fatalf("message %d holds %q (%v)", i, v.Value, err)
		}
		if got := m.Header.Get(bus.HeaderMsgID); got != fmt.Sprintf("e-%d", i) {
			t.Fatalf("message %d id %q", i, got)
		}
		if got := m.Header.Get(bus.HeaderPayloadType); got != "google.protobuf.StringValue" {
			t.Fatalf("message %d payload type %q", i, got)
		}
	}
}

// Events published before are dropped by the stream's dedupe window inside
// a batch too (as long as the batch does not start with one), and counted.
func TestPublishBatchDropsDuplicates(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	if _, err := b.PublishBatch(ctx, events("e", 100)); err != nil {
		t.Fatal(err)
	}
	again := func(yield func(bus.Event) bool) {
		if !yield(bus.Event{Subject: "access.c1.grant.added", MsgID: "new-first", Payload: str("x")}) {
			return
		}
		for ev := range events("e", 100) {
			if !yield(ev) {
				return
			}
		}
	}
	res, err := b.PublishBatch(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 101 {
		t.Fatalf("batch took %d, want 101 (duplicates included)", res.Count)
	}
	if got := len(streamMsgs(t, js)); got != 101 {
		t.Fatalf("stream holds %d messages, want 101: duplicates were stored", got)
	}
}

// A stream declared without allow_batched is refused before anything is
// sent, with ErrBatchUnavailable, and remembered.
func TestPublishBatchUnavailableSendsNothing(t *testing.T) {
	srv := testkit.StartNATS(t)
	js := srv.JetStream(t)
	cfgs := bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})
	for i := range cfgs {
		cfgs[i].AllowBatchPublish = false
	}
	if _, err := bus.DeclareStreams(context.Background(), js, cfgs...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.PublishBatch(context.Background(), events("e", 10)); !errors.Is(err, bus.ErrBatchUnavailable) {
			t.Fatalf("batch to a stream without allow_batched: %v, want ErrBatchUnavailable", err)
		}
	}
	if got := len(streamMsgs(t, js)); got != 0 {
		t.Fatalf("stream holds %d messages, want none", got)
	}
}

// Bad events fail the batch with Publish's errors; an empty batch is no
// error and sends nothing.
func TestPublishBatchRefusesBadInput(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	for _, ev := range []bus.Event{
		{Subject: "access.*.grant.added", MsgID: "x", Payload: str("a")},
		{Subject: "access.c1.grant.added", MsgID: "", Payload: str("a")},
		{Subject: "access.c1.grant.added", MsgID: "x", Payload: nil},
	} {
		one := func(yield func(bus.Event) bool) { yield(ev) }
		if _, err := b.PublishBatch(ctx, one); err == nil {
			t.Errorf("batch of %+v: no error", ev)
		}
	}
	res, err := b.PublishBatch(ctx, events("e", 0))
	if err != nil || res.Count != 0 {
		t.Fatalf("empty batch: %+v %v", res, err)
	}
	if got := len(streamMsgs(t, js)); got != 0 {
		t.Fatalf("stream holds %d messages, want none", got)
	}
}

// A batch whose context ends stops sending and fails; what it sent is
// stored, and publishing the same events again stores each exactly once.
func TestPublishBatchCancelledThenRepublished(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	sent := 0
	cut := func(yield func(bus.Event) bool) {
		for ev := range events("e", 300) {
			if sent == 120 {
				cancel()
			}
			if !yield(ev) {
				return
			}
			sent++
		}
	}
	if _, err := b.PublishBatch(ctx, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: %v", err)
	}
	// Published again one by one (a recovery's way): the stored ones are
	// duplicates.
	for ev := range events("e", 300) {
		if _, err := b.Publish(context.Background(), ev.Subject, ev.MsgID, ev.Payload); err != nil {
			t.Fatal(err)
		}
	}
	msgs := streamMsgs(t, js)
	seen := map[string]bool{}
	for _, m := range msgs {
		id := m.Header.Get(bus.HeaderMsgID)
		if seen[id] {
			t.Fatalf("%s stored twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 300 {
		t.Fatalf("stream holds %d distinct events, want 300", len(seen))
	}
}
