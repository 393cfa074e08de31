package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/testkit"
)

// setup starts an embedded JetStream, declares the bus streams in memory and
// returns a Bus on it.
func setup(t *testing.T, opts bus.Options) (*bus.Bus, jetstream.JetStream) {
	t.Helper()
	srv := testkit.StartNATS(t)
	js := srv.JetStream(t)
	if _, err := bus.DeclareStreams(context.Background(), js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, js
}

func str(s string) *wrapperspb.StringValue { return wrapperspb.String(s) }

func TestPublishSameMsgIDIsDropped(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	first, err := b.Publish(ctx, "access.c1.grant.added", "id-1", str("a"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Publish(ctx, "access.c1.grant.added", "id-1", str("a"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate {
		t.Fatalf("duplicate flags: first %v second %v, want false then true", first.Duplicate, second.Duplicate)
	}
	if second.Sequence != first.Sequence {
		t.Fatalf("duplicate got its own sequence %d (first %d)", second.Sequence, first.Sequence)
	}
	if _, err := b.Publish(ctx, "access.c1.grant.added", "id-2", str("b")); err != nil {
		t.Fatal(err)
	}
	if got := len(streamMsgs(t, js)); got != 2 {
		t.Fatalf("stream holds %d messages, want 2", got)
	}
}

func TestPublishSetsHeaders(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	if _, err := b.Publish(ctx, "sync.c1.request", "req-1", str("x")); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, "SYNC")
	m, err := s.GetLastMsgForSubject(ctx, "sync.c1.request")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(bus.HeaderMsgID); got != "req-1" {
		t.Errorf("Nats-Msg-Id %q", got)
	}
	if got := m.Header.Get(bus.HeaderPayloadType); got != "google.protobuf.StringValue" {
		t.Errorf("payload type %q", got)
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	b, _ := setup(t, bus.Options{})
	ctx := context.Background()
	for _, tc := range []struct{ subject, id string }{
		{"access.*.grant.added", "x"},
		{"access.>", "x"},
		{"", "x"},
		{"access..grant", "x"},
		{"access.c1.grant.added", ""},
	} {
		if _, err := b.Publish(ctx, tc.subject, tc.id, str("a")); err == nil {
			t.Errorf("publish %q id %q: no error", tc.subject, tc.id)
		}
	}
}

func TestTransientFailureIsRedeliveredWithGrowingDelay(t *testing.T) {
	b, _ := setup(t, bus.Options{})
	ctx := context.Background()
	var mu sync.Mutex
	var times []time.Time
	done := make(chan struct{})
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{
		Stream: "SYNC", Durable: "transient", Filter: []string{"sync.*.request"},
		RetryBase: 150 * time.Millisecond, RetryMax: 2 * time.Second, MaxDeliver: 10,
	}, func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) < 4 {
			return errors.New("okta answered 503")
		}
		close(done)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	if _, err := b.Publish(ctx, "sync.c1.request", "r1", str("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("handler saw %d deliveries, want 4", len(times))
	}
	mu.Lock()
	defer mu.Unlock()
	// Delays are at least 150, 300 and 600 ms: each longer than the last.
	want := []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap < want[i-1] {
			t.Errorf("redelivery %d after %s, want at least %s", i, gap, want[i-1])
		}
	}
}

// TestRetryAfterSetsTheDelay: a handler's RetryAfter replaces the spec's
// growing delay, shorter or longer.
func TestRetryAfterSetsTheDelay(t *testing.T) {
	b, _ := setup(t, bus.Options{})
	ctx := context.Background()
	var mu sync.Mutex
	var times []time.Time
	done := make(chan struct{})
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{
		Stream: "SYNC", Durable: "retry-after", Filter: []string{"sync.*.request"},
		RetryBase: 5 * time.Second, RetryMax: 5 * time.Second, MaxDeliver: 10,
	}, func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		switch len(times) {
		case 1, 2:
			return bus.RetryAfter(errors.New("busy"), 50*time.Millisecond)
		case 3:
			return bus.RetryAfter(errors.New("busy for longer"), 600*time.Millisecond)
		}
		close(done)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	if _, err := b.Publish(ctx, "sync.c1.request", "r-after", str("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(4 * time.Second):
		t.Fatalf("handler saw %d deliveries within 4 s, want 4: the spec's 5 s delay was used", len(times))
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := times[3].Sub(times[2]); gap < 600*time.Millisecond {
		t.Errorf("redelivery after %s, want at least the 600 ms asked for", gap)
	}
	if err := bus.RetryAfter(nil, time.Second); err != nil {
		t.Errorf("RetryAfter(nil) = %v", err)
	}
	if err := bus.RetryAfter(context.Canceled, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("RetryAfter hides its error: %v", err)
	}
}

// dlqRecorder waits for dead letters of one subject.
func readDeadLetters(t *testing.T, js jetstream.JetStream, n int) []*eventsv1.DeadLetter {
	t.Helper()
	rec := testkit.Record(t, js, "DLQ", "dlq.>", true)
	msgs := rec.WaitFor(t, n, 10*time.Second)
	out := make([]*eventsv1.DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		var dl eventsv1.DeadLetter
		if err := proto.Unmarshal(m.Data(), &dl); err != nil {
			t.Fatalf("decode dead letter: %v", err)
		}
		if want := "dlq." + dl.GetOriginalSubject(); m.Subject() != want {
			t.Errorf("dead letter on %s, want %s", m.Subject(), want)
		}
		out = append(out, &dl)
	}
	return out
}

func TestPermanentAndUndecodableGoToDLQOnce(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	var calls atomic.Int32
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{
		Stream: "PROVISIONING", Durable: "perm", Filter: []string{"provisioning.*.request"},
		RetryBase: 50 * time.Millisecond,
	}, func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
		calls.Add(1)
		return bus.Permanentf("group %s is an APP_GROUP and cannot be written", m.Payload.GetValue())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	if _, err := b.Publish(ctx, "provisioning.c1.request", "p1", str("00g1")); err != nil {
		t.Fatal(err)
	}
	// Garbage under the right type name, and a payload of another type.
	if _, err := b.PublishRaw(ctx, "provisioning.c1.request", "p2", "google.protobuf.StringValue", []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, "provisioning.c1.request", "p3", wrapperspb.Int64(7)); err != nil {
		t.Fatal(err)
	}
	dls := readDeadLetters(t, js, 3)
	bySeq := map[uint64]*eventsv1.DeadLetter{}
	for _, d := range dls {
		bySeq[d.GetStreamSequence()] = d
	}
	check := func(seq uint64, class eventsv1.DeadLetter_ErrorClass, reason string) {
		t.Helper()
		d := bySeq[seq]
		if d == nil {
			t.Fatalf("no dead letter for sequence %d", seq)
		}
		if d.GetErrorClass() != class {
			t.Errorf("seq %d class %s, want %s", seq, d.GetErrorClass(), class)
		}
		if d.GetReason() == "" || !contains(d.GetReason(), reason) {
			t.Errorf("seq %d reason %q, want it to mention %q", seq, d.GetReason(), reason)
		}
		if d.GetConsumer() != "perm" || d.GetStream() != "PROVISIONING" {
			t.Errorf("seq %d names consumer %q stream %q", seq, d.GetConsumer(), d.GetStream())
		}
	}
	check(1, eventsv1.DeadLetter_ERROR_CLASS_PERMANENT, "APP_GROUP")
	check(2, eventsv1.DeadLetter_ERROR_CLASS_UNDECODABLE, "decode")
	check(3, eventsv1.DeadLetter_ERROR_CLASS_UNDECODABLE, "google.protobuf.Int64Value")
	if string(bySeq[2].GetPayload()) != string([]byte{0xff, 0xff, 0xff}) {
		t.Errorf("dead letter lost the original payload")
	}
	// Not redelivered: after several retry delays the handler ran once and
	// nothing is pending.
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1 (undecodable payloads never reach it)", n)
	}
	c, _ := js.Consumer(ctx, "PROVISIONING", "perm")
	info, _ := c.Info(ctx)
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
		t.Fatalf("consumer still has work: pending %d ack-pending %d redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
}

func TestTransientPastMaxDeliverGoesToDLQ(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	var calls atomic.Int32
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{
		Stream: "SYNC", Durable: "maxdeliver", MaxDeliver: 3,
		RetryBase: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
		calls.Add(1)
		return errors.New("timeout talking to okta")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	if _, err := b.Publish(ctx, "sync.c9.request", "m1", str("x")); err != nil {
		t.Fatal(err)
	}
	dls := readDeadLetters(t, js, 1)
	if dls[0].GetErrorClass() != eventsv1.DeadLetter_ERROR_CLASS_MAX_DELIVER || dls[0].GetDeliveries() != 3 {
		t.Fatalf("dead letter %v", dls[0])
	}
	if !contains(dls[0].GetReason(), "timeout talking to okta") {
		t.Fatalf("reason %q lacks the last error", dls[0].GetReason())
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}

func TestTraceContextCrossesTheBus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b, _ := setup(t, bus.Options{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	ctx := context.Background()

	got := make(chan trace.SpanContext, 2)
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{Stream: "ACCESS", Durable: "tracer"},
		func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
			got <- trace.SpanContextFromContext(ctx)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)

	// Published inside the publisher's span (a sync run, a webhook request).
	runCtx, run := tp.Tracer("test").Start(ctx, "okta webhook")
	if _, err := b.Publish(runCtx, "access.c1.grant.added", "g1", str("x")); err != nil {
		t.Fatal(err)
	}
	run.End()
	// Published outside any span: the bus starts a producer span.
	if _, err := b.Publish(ctx, "access.c1.grant.added", "g2", str("y")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("message not consumed")
		}
	}
	_ = sub.Stop(context.Background())

	var producer sdktrace.ReadOnlySpan
	var consumers []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumers = append(consumers, s)
		}
	}
	if producer == nil || len(consumers) != 2 {
		t.Fatalf("spans: producer %v, %d consumer spans", producer, len(consumers))
	}
	parents := map[trace.SpanID]bool{}
	for _, c := range consumers {
		parents[c.Parent().SpanID()] = true
		if c.Parent().TraceID() != c.SpanContext().TraceID() {
			t.Errorf("consumer span is not in its parent's trace")
		}
	}
	if !parents[run.SpanContext().SpanID()] {
		t.Errorf("no consumer span is a child of the publisher's span %s", run.SpanContext().SpanID())
	}
	if !parents[producer.SpanContext().SpanID()] {
		t.Errorf("no consumer span is a child of the producer span %s", producer.SpanContext().SpanID())
	}
	if producer.Parent().IsValid() {
		t.Errorf("a publish outside any span should start a trace, got parent %s", producer.Parent().SpanID())
	}
}

func TestStopDuringConsumptionLosesNothing(t *testing.T) {
	b, js := setup(t, bus.Options{})
	ctx := context.Background()
	const n = 60
	for i := range n {
		if _, err := b.Publish(ctx, "catalog.app.upserted", fmt.Sprintf("m%d", i), str(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[string]int{}
	handler := func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
		select {
		case <-time.After(20 * time.Millisecond): // real work
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		acked[m.Payload.GetValue()]++
		mu.Unlock()
		return nil
	}
	spec := bus.ConsumerSpec{Stream: "CATALOG", Durable: "drainer", Concurrency: 4, AckWait: 5 * time.Second}
	sub, err := bus.Consume(ctx, b, spec, handler)
	if err != nil {
		t.Fatal(err)
	}
	// Stop while work is in flight.
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 10 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	firstRun := len(acked)
	mu.Unlock()
	if firstRun == n {
		t.Fatalf("everything was handled before the stop; the test proves nothing")
	}
	// A new replica picks up the rest at once (handed-back messages are
	// redelivered without waiting for AckWait).
	sub2, err := bus.Consume(ctx, b, spec, handler)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop(ctx)
	deadline := time.Now().Add(4 * time.Second) // shorter than AckWait
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart %d of %d messages handled", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for v, c := range acked {
		if c != 1 {
			t.Errorf("message %s handled and acked %d times", v, c)
		}
	}
	mu.Unlock()
	c, _ := js.Consumer(ctx, "CATALOG", "drainer")
	for range 50 {
		info, _ := c.Info(ctx)
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("acks did not reach the server")
}

func TestLongWorkIsKeptAliveWithInProgress(t *testing.T) {
	b, _ := setup(t, bus.Options{})
	ctx := context.Background()
	var calls atomic.Int32
	done := make(chan struct{})
	sub, err := bus.Consume(ctx, b, bus.ConsumerSpec{Stream: "SYNC", Durable: "slow", AckWait: 300 * time.Millisecond},
		func(ctx context.Context, m *bus.Message[*wrapperspb.StringValue]) error {
			if calls.Add(1) == 1 {
				time.Sleep(time.Second) // over three ack waits
				close(done)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	if _, err := b.Publish(ctx, "sync.c1.request", "long", str("x")); err != nil {
		t.Fatal(err)
	}
	<-done
	time.Sleep(400 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("long work was redelivered: %d calls", n)
	}
}

func TestDeclareStreamsIsIdempotent(t *testing.T) {
	srv := testkit.StartNATS(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	cfgs := bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})
	first, err := bus.DeclareStreams(ctx, js, cfgs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range first {
		if r.Outcome != bus.Created {
			t.Errorf("first declaration of %s: %s", r.Name, r.Outcome)
		}
	}
	second, err := bus.DeclareStreams(ctx, js, cfgs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second {
		if r.Outcome != bus.Unchanged {
			t.Errorf("second declaration of %s: %s %v", r.Name, r.Outcome, r.Changed)
		}
	}
	// A changed setting that can change in place is updated and named.
	changed := bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})
	changed[0].MaxAge = time.Hour
	third, err := bus.DeclareStreams(ctx, js, changed...)
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Outcome != bus.Updated || len(third[0].Changed) != 1 || third[0].Changed[0] != "max_age" {
		t.Fatalf("changed max age: %+v", third[0])
	}
	// One that cannot is reported clearly.
	file := bus.Streams(bus.StreamOptions{Storage: jetstream.FileStorage})
	_, err = bus.DeclareStreams(ctx, js, file...)
	if !errors.Is(err, bus.ErrStreamConflict) || !contains(err.Error(), "storage") {
		t.Fatalf("storage change: %v", err)
	}
}

func TestDeclareConsumerIsIdempotent(t *testing.T) {
	_, js := setup(t, bus.Options{})
	ctx := context.Background()
	spec := bus.ConsumerSpec{Stream: "SYNC", Durable: "c", Filter: []string{"sync.*.request"}}
	_, r1, err := bus.DeclareConsumer(ctx, js, "SYNC", spec.ConsumerConfig())
	if err != nil || r1.Outcome != bus.Created {
		t.Fatalf("first: %v %v", r1, err)
	}
	_, r2, err := bus.DeclareConsumer(ctx, js, "SYNC", spec.ConsumerConfig())
	if err != nil || r2.Outcome != bus.Unchanged {
		t.Fatalf("second: %+v %v", r2, err)
	}
	spec.MaxDeliver = 3
	_, r3, err := bus.DeclareConsumer(ctx, js, "SYNC", spec.ConsumerConfig())
	if err != nil || r3.Outcome != bus.Updated || r3.Changed[0] != "max_deliver" {
		t.Fatalf("changed: %+v %v", r3, err)
	}
	spec.DeliverPolicy = jetstream.DeliverNewPolicy
	_, _, err = bus.DeclareConsumer(ctx, js, "SYNC", spec.ConsumerConfig())
	if !errors.Is(err, bus.ErrConsumerConflict) {
		t.Fatalf("deliver policy change: %v", err)
	}
}

func TestExtractContextFromHeaders(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	b, err := bus.New(nil, bus.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	h := nats.Header{}
	h.Set("traceparent", fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), span.SpanContext().SpanID()))
	got := trace.SpanContextFromContext(b.ExtractContext(context.Background(), h))
	if got.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("extracted %s", got.TraceID())
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
