// Package bus is the only way accessbus services talk to each other: typed
// protobuf events on NATS JetStream with deterministic message ids, the
// payload's proto name and the W3C trace context in headers, and durable pull
// consumers that ack, retry with growing delay, or dead-letter with a reason.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
)

// Header names set on every message published through the bus.
const (
	// HeaderMsgID is JetStream's dedupe header.
	HeaderMsgID = jetstream.MsgIDHeader
	// HeaderPayloadType carries the payload's full protobuf message name, or a
	// media type such as "application/json" for raw payloads.
	HeaderPayloadType = "Accessbus-Payload-Type"
)

const instrumentationName = "github.com/accessbus/accessbus/libs/bus"

// Options configure a Bus. Zero values are valid: no tracing, no metrics,
// W3C trace context propagation, logs discarded.
type Options struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Logger         *slog.Logger
}

// Bus publishes and consumes accessbus events on one JetStream context.
type Bus struct {
	js     jetstream.JetStream
	prop   propagation.TextMapPropagator
	tracer trace.Tracer
	log    *slog.Logger

	published   metric.Int64Counter
	publishTime metric.Float64Histogram
	handled     metric.Int64Counter
	handleTime  metric.Float64Histogram

	// Attribute options built once, since publishing is a hot path.
	pubStored, pubDuplicate, pubError, pubAsync, pubBatch metric.MeasurementOption

	// batched remembers, per stream name, whether it takes fast batches
	// (a batchCheck); streamOf the stream of a subject.
	batched, streamOf sync.Map
}

// New returns a Bus on js.
func New(js jetstream.JetStream, opts Options) (*Bus, error) {
	if opts.TracerProvider == nil {
		opts.TracerProvider = tracenoop.NewTracerProvider()
	}
	if opts.MeterProvider == nil {
		opts.MeterProvider = metricnoop.NewMeterProvider()
	}
	if opts.Propagator == nil {
		opts.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		js:     js,
		prop:   opts.Propagator,
		tracer: opts.TracerProvider.Tracer(instrumentationName),
		log:    opts.Logger,
	}
	meter := opts.MeterProvider.Meter(instrumentationName)
	var err error
	if b.published, err = meter.Int64Counter("accessbus.bus.published",
		metric.WithDescription("Messages published, by stream outcome (stored or duplicate), error, or async (sent without waiting for the ack)")); err != nil {
		return nil, fmt.Errorf("create bus metrics: %w", err)
	}
	if b.publishTime, err = meter.Float64Histogram("accessbus.bus.publish.duration",
		metric.WithUnit("s"), metric.WithDescription("Time from publish to the stream's acknowledgement")); err != nil {
		return nil, fmt.Errorf("create bus metrics: %w", err)
	}
	if b.handled, err = meter.Int64Counter("accessbus.bus.handled",
		metric.WithDescription("Messages handled by consumers, by consumer and outcome (ack, nak, term, dlq)")); err != nil {
		return nil, fmt.Errorf("create bus metrics: %w", err)
	}
	if b.handleTime, err = meter.Float64Histogram("accessbus.bus.handle.duration",
		metric.WithUnit("s"), metric.WithDescription("Time spent in consumer handlers")); err != nil {
		return nil, fmt.Errorf("create bus metrics: %w", err)
	}
	outcome := func(v string) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", v)))
	}
	b.pubStored, b.pubDuplicate, b.pubError, b.pubAsync, b.pubBatch = outcome("stored"), outcome("duplicate"), outcome("error"), outcome("async"), outcome("batch")
	return b, nil
}

// JetStream returns the JetStream context the bus uses.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Publish stores payload on subject with the given deterministic message id
// and waits for the stream's acknowledgement. A message id already seen within
// the stream's dedupe window is dropped by the server; the returned PubAck then
// has Duplicate set. msgID must be derived from the source identity and the
// change, never random.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error) {
	if payload == nil || !payload.ProtoReflect().IsValid() {
		return nil, fmt.Errorf("publish to %s: nil payload", subject)
	}
	name := string(payload.ProtoReflect().Descriptor().FullName())
	data, err := proto.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("publish to %s: marshal %s: %w", subject, name, err)
	}
	return b.PublishRaw(ctx, subject, msgID, name, data)
}

// PublishRaw is Publish for a payload that is already encoded; payloadType is
// the full proto name or a media type (for example raw Okta hook JSON).
func (b *Bus) PublishRaw(ctx context.Context, subject, msgID, payloadType string, data []byte) (*jetstream.PubAck, error) {
	if err := checkSubject(subject); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if msgID == "" {
		return nil, fmt.Errorf("publish to %s: a deterministic message id is required", subject)
	}
	// The message carries the publisher's trace context. Work that publishes
	// (a sync run, a hook delivery, a handler) already runs in a span, and
	// its events become children of it: one span per run, not one per event
	// of a sync that may publish millions. A publish outside any span starts
	// a producer span so that a trace still begins here.
	span := trace.SpanFromContext(ctx)
	ownSpan := !span.SpanContext().IsValid()
	if ownSpan {
		ctx, span = b.tracer.Start(ctx, "publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.message.id", msgID)))
		defer span.End()
	}

	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		HeaderMsgID:       {msgID},
		HeaderPayloadType: {payloadType},
	}}
	b.prop.Inject(ctx, headerCarrier(msg.Header))

	start := time.Now()
	ack, err := b.js.PublishMsg(ctx, msg)
	elapsed := time.Since(start).Seconds()
	outcome := b.pubStored
	switch {
	case err != nil:
		outcome = b.pubError
		span.RecordError(err)
		if ownSpan {
			span.SetStatus(codes.Error, err.Error())
		}
	case ack.Duplicate:
		outcome = b.pubDuplicate
	}
	// Recorded without the span's context: exemplars on every publish cost
	// more than they tell, and the span already holds the timing.
	b.published.Add(context.Background(), 1, outcome)
	b.publishTime.Record(context.Background(), elapsed, outcome)
	if err != nil {
		return nil, fmt.Errorf("publish to %s (id %s): %w", subject, msgID, err)
	}
	return ack, nil
}

// PublishAsync is Publish without waiting: it sends the message and returns
// the stream's acknowledgement to come. Messages sent on one bus reach the
// stream in the order they were sent. The caller must wait for every
// returned future (its Ok or Err channel) and bound how many it keeps
// pending: the JetStream context refuses sends past its own limit
// (jetstream.WithPublishAsyncMaxPending, 4,000 by default) after a short
// stall. Asynchronous publishes are counted in the published metric when
// sent, with outcome "async" (or "error" when the send failed); their acks
// are the caller's to read.
func (b *Bus) PublishAsync(ctx context.Context, subject, msgID string, payload proto.Message) (jetstream.PubAckFuture, error) {
	// No producer span even outside a span: a span would have to end at
	// the ack, which this call does not see. Callers publish from a run's
	// or a handler's span, whose context the headers carry.
	msg, _, err := b.message(ctx, subject, msgID, payload)
	if err != nil {
		return nil, err
	}
	fut, err := b.js.PublishMsgAsync(msg)
	if err != nil {
		b.published.Add(context.Background(), 1, b.pubError)
		return nil, fmt.Errorf("publish to %s (id %s): %w", subject, msgID, err)
	}
	b.published.Add(context.Background(), 1, b.pubAsync)
	return fut, nil
}

func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject: %w", ErrInvalidSubject)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			switch s[i] {
			case ' ', '\t', '\r', '\n':
				return fmt.Errorf("subject %q: no spaces allowed: %w", s, ErrInvalidSubject)
			}
			continue
		}
		if tok := s[start:i]; tok == "" || tok == "*" || tok == ">" {
			return fmt.Errorf("subject %q: tokens must be non-empty with no wildcards: %w", s, ErrInvalidSubject)
		}
		start = i + 1
	}
	return nil
}

// headerCarrier adapts NATS headers to the OpenTelemetry propagator.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }

func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// ExtractContext returns ctx carrying the trace context found in a message's
// headers, for code that reads messages outside a Consume handler.
func (b *Bus) ExtractContext(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return b.prop.Extract(ctx, headerCarrier(h))
}
