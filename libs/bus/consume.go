package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Defaults of a ConsumerSpec.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 8
	DefaultMaxAckPending = 1000
	DefaultRetryBase     = time.Second
	DefaultRetryMax      = time.Minute
	DefaultPrefetch      = 64
	// pullExpiry bounds how long a pull request lives; a pull the server
	// lost is replaced after at most this long.
	pullExpiry = 5 * time.Second
)

// ConsumerSpec declares a durable pull consumer and how its messages are handled.
type ConsumerSpec struct {
	// Stream and Durable name the consumer; Durable is required.
	Stream  string
	Durable string
	// Description is stored on the consumer.
	Description string
	// Filter lists the subjects the consumer receives; empty means the whole stream.
	Filter []string
	// DeliverPolicy is where a new consumer starts (default: all messages).
	DeliverPolicy jetstream.DeliverPolicy
	// AckWait is how long a delivery may stay unacknowledged before it is
	// redelivered; long handlers are kept alive with InProgress automatically.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one message; after the last failed
	// delivery the message goes to the dead-letter stream.
	MaxDeliver int
	// MaxAckPending bounds the messages in flight for all replicas.
	MaxAckPending int
	// Concurrency is the number of handlers running at once in this process (default 1).
	Concurrency int
	// Prefetch is how many messages the client keeps buffered ahead of the
	// handlers (default 64, at least 2×Concurrency). A buffered message's ack
	// timer already runs, so for slow handlers keep
	// Prefetch/Concurrency × handler time under AckWait. Very small buffers
	// have been seen to stall a pull consumer until its pull request expired.
	Prefetch int
	// RetryBase and RetryMax shape the growing nak delay of transient failures:
	// RetryBase doubled per delivery, capped at RetryMax.
	RetryBase time.Duration
	RetryMax  time.Duration
}

func (s *ConsumerSpec) withDefaults() ConsumerSpec {
	c := *s
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Prefetch <= 0 {
		c.Prefetch = DefaultPrefetch
	}
	c.Prefetch = max(c.Prefetch, 2*c.Concurrency)
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	return c
}

// ConsumerConfig returns the JetStream configuration the spec declares.
func (s ConsumerSpec) ConsumerConfig() jetstream.ConsumerConfig {
	c := s.withDefaults()
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   c.Description,
		DeliverPolicy: c.DeliverPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
	}
	if len(c.Filter) == 1 {
		cfg.FilterSubject = c.Filter[0]
	} else {
		cfg.FilterSubjects = c.Filter
	}
	return cfg
}

// retryDelay is the nak delay after the given (1-based) failed delivery.
func (s ConsumerSpec) retryDelay(delivery uint64) time.Duration {
	d := s.RetryBase
	for i := uint64(1); i < delivery && d < s.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.RetryMax)
}

// RawMessage is one delivery as the consumer received it.
type RawMessage struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// Meta holds the stream sequence, delivery count and timestamps.
	Meta *jetstream.MsgMetadata
	msg  jetstream.Msg
}

// InProgress tells the server the handler is still working, resetting the
// ack timer. The consumer already does this on a timer; call it for work whose
// progress you can mark.
func (m *RawMessage) InProgress() error { return m.msg.InProgress() }

// Message is a delivery with its decoded payload.
type Message[T proto.Message] struct {
	*RawMessage
	Payload T
}

// Handler handles one decoded message. Returning nil acks it; an error marked
// with Permanent dead-letters it; any other error retries it later.
type Handler[T proto.Message] func(ctx context.Context, m *Message[T]) error

// RawHandler handles one undecoded message, with the same error contract.
type RawHandler func(ctx context.Context, m *RawMessage) error

// Consume declares spec's durable consumer and runs h for each message of
// type T until the Subscription is stopped. A payload whose type header names
// another message, or that does not decode, is dead-lettered without calling h.
func Consume[T proto.Message](ctx context.Context, b *Bus, spec ConsumerSpec, h Handler[T]) (*Subscription, error) {
	var zero T
	mt := zero.ProtoReflect().Type()
	want := string(mt.Descriptor().FullName())
	return ConsumeRaw(ctx, b, spec, func(ctx context.Context, m *RawMessage) error {
		if got := m.Header.Get(HeaderPayloadType); got != "" && got != want {
			return fmt.Errorf("payload type %s, consumer expects %s: %w", got, want, ErrUndecodable)
		}
		v := mt.New().Interface()
		if err := proto.Unmarshal(m.Data, v); err != nil {
			return fmt.Errorf("decode %s: %v: %w", want, err, ErrUndecodable)
		}
		return h(ctx, &Message[T]{RawMessage: m, Payload: v.(T)})
	})
}

// ConsumeRaw is Consume for payloads the handler decodes itself (for example
// raw Okta hook JSON). Return an error wrapping ErrUndecodable for bad input.
func ConsumeRaw(ctx context.Context, b *Bus, spec ConsumerSpec, h RawHandler) (*Subscription, error) {
	spec = spec.withDefaults()
	if spec.Stream == "" {
		return nil, errors.New("consume: a stream is required")
	}
	cons, _, err := DeclareConsumer(ctx, b.js, spec.Stream, spec.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Subscription{
		bus:      b,
		spec:     spec,
		h:        h,
		ctx:      runCtx,
		cancel:   cancel,
		sem:      make(chan struct{}, spec.Concurrency),
		inflight: make(map[jetstream.Msg]time.Time),
	}
	for i, o := range outcomes {
		s.outcomeOpts[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", spec.Durable), attribute.String("outcome", o)))
	}
	s.consumerOpt = metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", spec.Durable)))
	cc, err := cons.Consume(s.dispatch,
		jetstream.PullMaxMessages(spec.Prefetch),
		jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				b.log.Warn("consumer pull error", "consumer", spec.Durable, "err", err)
			}
		}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	s.cc = cc
	s.renewerDone = make(chan struct{})
	go s.renewInProgress()
	return s, nil
}

// track notes that a handler started on msg, untrack that it returned.
func (s *Subscription) track(msg jetstream.Msg) {
	s.inflightMu.Lock()
	s.inflight[msg] = time.Now()
	s.inflightMu.Unlock()
}

func (s *Subscription) untrack(msg jetstream.Msg) {
	s.inflightMu.Lock()
	delete(s.inflight, msg)
	s.inflightMu.Unlock()
}

// renewInProgress resets the ack timer of every delivery whose handler has
// run for a third of AckWait, so long work is not redelivered while it runs.
// One goroutine per subscription instead of a timer per message.
func (s *Subscription) renewInProgress() {
	defer close(s.renewerDone)
	every := s.spec.AckWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			due = due[:0]
			s.inflightMu.Lock()
			for m, started := range s.inflight {
				if now.Sub(started) >= every {
					due = append(due, m)
				}
			}
			s.inflightMu.Unlock()
			for _, m := range due {
				_ = m.InProgress()
			}
		}
	}
}

// Subscription is a running consumer.
type Subscription struct {
	bus      *Bus
	spec     ConsumerSpec
	h        RawHandler
	cc       jetstream.ConsumeContext
	ctx      context.Context
	cancel   context.CancelFunc
	sem      chan struct{}
	wg       sync.WaitGroup
	stopping atomic.Bool
	stopOnce sync.Once

	inflightMu  sync.Mutex
	inflight    map[jetstream.Msg]time.Time
	renewerDone chan struct{}
	// Metric options built once per outcome, since handling is a hot path.
	outcomeOpts [len(outcomes)]metric.MeasurementOption
	consumerOpt metric.MeasurementOption
}

// Outcomes of handling a delivery, as indexes into outcomes.
const (
	outcomeAck = iota
	outcomeNak
	outcomeDLQ
)

var outcomes = [...]string{outcomeAck: "ack", outcomeNak: "nak", outcomeDLQ: "dlq"}

// Stop stops pulling, hands back buffered messages that were not started
// (they are redelivered at once, to this or another replica), and waits for
// the handlers in flight to finish and ack. If ctx ends first, the handlers'
// context is cancelled; what they did not ack is redelivered later. Nothing
// acked is lost and nothing unacked is dropped.
func (s *Subscription) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.cc.Drain()
		done := make(chan struct{})
		go func() {
			<-s.cc.Closed()
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancel()
			<-done
			err = fmt.Errorf("stop consumer %s: handlers cut short: %w", s.spec.Durable, ctx.Err())
		}
		s.cancel()
		<-s.renewerDone
	})
	return err
}

func (s *Subscription) dispatch(msg jetstream.Msg) {
	if s.stopping.Load() {
		// Not started: give it back for immediate redelivery.
		_ = msg.Nak()
		return
	}
	s.wg.Add(1)
	if s.spec.Concurrency == 1 {
		defer s.wg.Done()
		s.handle(msg)
		return
	}
	s.sem <- struct{}{}
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		s.handle(msg)
	}()
}

func (s *Subscription) handle(msg jetstream.Msg) {
	b := s.bus
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery; nothing to ack.
		b.log.Error("consumer got a message without metadata", "consumer", s.spec.Durable, "subject", msg.Subject(), "err", err)
		return
	}
	hdr := msg.Headers()
	ctx := b.prop.Extract(s.ctx, headerCarrier(hdr))
	ctx, span := b.tracer.Start(ctx, "process "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()

	// Keep long work alive: the renewer marks it in progress while it runs.
	s.track(msg)
	start := time.Now()
	herr := s.h(ctx, &RawMessage{Subject: msg.Subject(), Data: msg.Data(), Header: hdr, Meta: meta, msg: msg})
	s.untrack(msg)
	// Without the span's context, as in Publish: no per-message exemplars.
	b.handleTime.Record(context.Background(), time.Since(start).Seconds(), s.consumerOpt)

	outcome := s.settle(ctx, msg, meta, herr)
	if herr != nil {
		span.RecordError(herr)
		span.SetStatus(codes.Error, herr.Error())
	}
	if outcome != outcomeAck {
		// Where it went wrong is worth the attributes; the happy path is not.
		span.SetAttributes(
			attribute.String("accessbus.outcome", outcomes[outcome]),
			attribute.Int64("messaging.nats.stream_sequence", int64(meta.Sequence.Stream)),
			attribute.Int64("messaging.nats.delivery_count", int64(meta.NumDelivered)),
		)
	}
	b.handled.Add(context.Background(), 1, s.outcomeOpts[outcome])
}

// settle acks, naks or dead-letters a delivery after its handler returned.
func (s *Subscription) settle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, herr error) int {
	b := s.bus
	switch {
	case herr == nil:
		if err := msg.Ack(); err != nil {
			b.log.Warn("ack failed; the message will be redelivered", "consumer", s.spec.Durable, "seq", meta.Sequence.Stream, "err", err)
		}
		return outcomeAck
	case s.ctx.Err() != nil && errors.Is(herr, context.Canceled):
		// Cut short by shutdown: hand it back at once.
		_ = msg.Nak()
		return outcomeNak
	case IsPermanent(herr):
		class := eventsv1.DeadLetter_ERROR_CLASS_PERMANENT
		if errors.Is(herr, ErrUndecodable) {
			class = eventsv1.DeadLetter_ERROR_CLASS_UNDECODABLE
		}
		return s.deadLetter(ctx, msg, meta, class, herr)
	case int(meta.NumDelivered) >= s.spec.MaxDeliver:
		return s.deadLetter(ctx, msg, meta, eventsv1.DeadLetter_ERROR_CLASS_MAX_DELIVER,
			fmt.Errorf("failed %d deliveries, the last with: %w", meta.NumDelivered, herr))
	default:
		delay := s.spec.retryDelay(meta.NumDelivered)
		if d, ok := RetryDelay(herr); ok {
			delay = d
		}
		b.log.Warn("handler failed; retrying later", "consumer", s.spec.Durable, "subject", msg.Subject(),
			"seq", meta.Sequence.Stream, "delivery", meta.NumDelivered, "delay", delay, "err", herr)
		_ = msg.NakWithDelay(delay)
		return outcomeNak
	}
}

// deadLetter copies the message with its reason to dlq.<subject>, and only
// once that is stored terminates the delivery; if the copy fails the message
// is retried instead, so nothing is lost.
func (s *Subscription) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, class eventsv1.DeadLetter_ErrorClass, reason error) int {
	b := s.bus
	hdr := msg.Headers()
	headers := make(map[string]string, len(hdr))
	for k, v := range hdr {
		if len(v) > 0 {
			headers[k] = v[0]
		}
	}
	dl := &eventsv1.DeadLetter{
		OriginalSubject: msg.Subject(),
		Stream:          meta.Stream,
		StreamSequence:  meta.Sequence.Stream,
		Consumer:        meta.Consumer,
		Deliveries:      meta.NumDelivered,
		Reason:          reason.Error(),
		ErrorClass:      class,
		PayloadType:     hdr.Get(HeaderPayloadType),
		Payload:         msg.Data(),
		Headers:         headers,
		FailedAt:        timestamppb.Now(),
	}
	id := subjects.MsgID("dlq", meta.Stream, meta.Consumer, strconv.FormatUint(meta.Sequence.Stream, 10))
	subject, err := subjects.DeadLetter(msg.Subject())
	if err == nil {
		_, err = b.Publish(ctx, subject, id, dl)
	}
	if err != nil {
		b.log.Error("dead-letter publish failed; retrying the message", "consumer", s.spec.Durable, "seq", meta.Sequence.Stream, "err", err)
		_ = msg.NakWithDelay(s.spec.retryDelay(meta.NumDelivered))
		return outcomeNak
	}
	b.log.Error("message dead-lettered", "consumer", s.spec.Durable, "subject", msg.Subject(),
		"seq", meta.Sequence.Stream, "class", class.String(), "reason", reason.Error())
	_ = msg.TermWithReason(truncate(reason.Error(), 200))
	return outcomeDLQ
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
