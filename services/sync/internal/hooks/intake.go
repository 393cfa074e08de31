package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Defaults of IntakeOptions.
const (
	DefaultIntakeDurable     = "sync-okta-hooks-intake"
	DefaultSeenBucket        = "OKTA_HOOK_SEEN"
	DefaultSeenTTL           = 24 * time.Hour
	DefaultIntakeConcurrency = 32
	// DefaultIntakeMaxDeliver gives a delivery about half an hour of
	// retries (the bus doubles the delay up to a minute) before it is
	// dead-lettered: a Sink failing longer than that is an outage the
	// System Log catch-up covers.
	DefaultIntakeMaxDeliver = 40
)

// IntakeOptions tune an Intake. Zero values take the defaults.
type IntakeOptions struct {
	// Durable names the consumer of OKTA_HOOKS (default
	// "sync-okta-hooks-intake"); every replica uses the same name.
	Durable string
	// Concurrency is how many deliveries one process handles at once
	// (default 32). Deliveries wait for their window's handoff, so it bounds
	// how many deliveries can share one window.
	Concurrency int
	// MaxDeliver bounds the deliveries of one hook delivery (default 40).
	MaxDeliver int
	// RetryBase is the first retry delay after a failed handoff, doubled
	// per attempt up to a minute (default: the bus's, 1 s).
	RetryBase time.Duration
	// SeenBucket is the KV bucket of handled event uuids (default
	// "OKTA_HOOK_SEEN"); SeenTTL how long a uuid is remembered (default
	// 24 h, far beyond Okta's retry and the System Log catch-up's overlap).
	SeenBucket string
	SeenTTL    time.Duration
	// Storage and Replicas of the bucket (file storage, 1 replica by default).
	Storage  jetstream.StorageType
	Replicas int
	// Logger receives warnings; nil discards.
	Logger *slog.Logger
}

// IntakeStats counts what the intake did since it started.
type IntakeStats struct {
	// Deliveries counts hook deliveries handled (acked or dead-lettered).
	Deliveries int64
	// Undecodable counts deliveries dead-lettered because Parse refused them.
	Undecodable int64
	// Events counts usable events received (hook and HandleEvents).
	Events int64
	// Invalid counts events Parse left out (no uuid, wrong shape).
	Invalid int64
	// Duplicates counts events dropped because their uuid was handled before.
	Duplicates int64
	// HandedOff counts events whose targets a handoff covered.
	HandedOff int64
	// Irrelevant counts events of types that change nothing accessbus publishes.
	Irrelevant int64
	// Unmapped counts governed events that yielded no target: a type no
	// target kind covers (iam.role.*), a failed outcome, or a target[]
	// without the objects the type names.
	Unmapped int64
}

// Intake turns stored hook deliveries (and System Log events) into
// coalesced resyncs, each event once.
type Intake struct {
	bus  *bus.Bus
	co   Coalescer
	seen jetstream.KeyValue
	opts IntakeOptions
	log  *slog.Logger

	deliveries, undecodable, events, invalid, duplicates, handedOff, irrelevant, unmapped atomic.Int64
}

// NewIntake declares the seen bucket and returns an Intake handing work to co.
func NewIntake(ctx context.Context, b *bus.Bus, co Coalescer, opts IntakeOptions) (*Intake, error) {
	if opts.Durable == "" {
		opts.Durable = DefaultIntakeDurable
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultIntakeConcurrency
	}
	if opts.MaxDeliver <= 0 {
		opts.MaxDeliver = DefaultIntakeMaxDeliver
	}
	if opts.SeenBucket == "" {
		opts.SeenBucket = DefaultSeenBucket
	}
	if opts.SeenTTL <= 0 {
		opts.SeenTTL = DefaultSeenTTL
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      opts.SeenBucket,
		Description: "accessbus sync: Okta System Log event uuids already handed off, by connector",
		History:     1,
		TTL:         opts.SeenTTL,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare bucket %s: %w", opts.SeenBucket, err)
	}
	return &Intake{bus: b, co: co, seen: kv, opts: opts, log: log}, nil
}

// Consume starts the durable consumer of every connector's hook
// deliveries; stop it with the Subscription's Stop. A delivery is acked
// once every event in it was handed off (or was seen before, or maps to
// nothing); a failed handoff naks it for a later retry; a body Parse
// refuses is dead-lettered.
func (in *Intake) Consume(ctx context.Context) (*bus.Subscription, error) {
	spec := bus.ConsumerSpec{
		Stream:      subjects.StreamOktaHooks,
		Durable:     in.opts.Durable,
		Description: "sync: splits Okta hook deliveries into events and hands their targets to targeted resyncs",
		Filter:      []string{subjects.AllOktaHooks},
		MaxDeliver:  in.opts.MaxDeliver,
		Concurrency: in.opts.Concurrency,
		RetryBase:   in.opts.RetryBase,
	}
	sub, err := bus.ConsumeRaw(ctx, in.bus, spec, in.handle)
	if err != nil {
		return nil, fmt.Errorf("start the okta hook intake: %w", err)
	}
	return sub, nil
}

func (in *Intake) handle(ctx context.Context, m *bus.RawMessage) error {
	s, err := subjects.Parse(m.Subject)
	if err != nil || s.Connector == "" {
		in.deliveries.Add(1)
		return fmt.Errorf("hook delivery on %s: %w", m.Subject, bus.ErrUndecodable)
	}
	d, err := Parse(m.Data)
	if err != nil {
		in.deliveries.Add(1)
		in.undecodable.Add(1)
		return fmt.Errorf("hook delivery of connector %s: %w: %w", s.Connector, err, bus.ErrUndecodable)
	}
	in.invalid.Add(int64(d.Invalid))
	if err := in.HandleEvents(ctx, s.Connector, d.Events); err != nil {
		return fmt.Errorf("hook delivery %s of connector %s: %w", d.EventID, s.Connector, err)
	}
	in.deliveries.Add(1)
	return nil
}

// HandleEvents hands the targets of events of connector to the Coalescer
// and returns once they were handed off; events seen before (by uuid) are
// dropped, and handled events are remembered only after their handoff, so
// that a crash in between repeats a handoff but never loses one. The
// System Log catch-up feeds its pages here too. An error means nothing of
// events may be taken as done: call again later.
func (in *Intake) HandleEvents(ctx context.Context, connector string, events []LogEvent) error {
	in.events.Add(int64(len(events)))
	p := pending{}
	var done []LogEvent
	dup := map[string]bool{}
	for _, ev := range events {
		if dup[ev.UUID] {
			in.duplicates.Add(1)
			continue
		}
		dup[ev.UUID] = true
		class := Classify(ev.EventType)
		if class == Irrelevant {
			in.irrelevant.Add(1)
			continue
		}
		seen, err := in.wasSeen(ctx, connector, ev.UUID)
		if err != nil {
			return err
		}
		if seen {
			in.duplicates.Add(1)
			continue
		}
		targets := Targets(ev)
		if len(targets) == 0 {
			in.unmapped.Add(1)
			continue
		}
		for _, t := range targets {
			p.add(t, ev.UUID)
		}
		done = append(done, ev)
	}
	if len(done) == 0 {
		return nil
	}
	work := p.compact(-1) // the Coalescer widens across the whole window
	if err := in.co.Submit(ctx, connector, work); err != nil {
		return fmt.Errorf("hand off %d targets of %d events: %w", len(work), len(done), err)
	}
	in.handedOff.Add(int64(len(done)))
	for _, ev := range done {
		in.markSeen(ctx, connector, ev)
	}
	return nil
}

// seenKey is the bucket key of an event: connector, then the uuid when it
// is a valid key token, else its hash (uuids come from outside).
func seenKey(connector, uuid string) string {
	if len(uuid) <= 128 && validKeyToken(uuid) {
		return connector + ".u." + uuid
	}
	sum := sha256.Sum256([]byte(uuid))
	return connector + ".h." + hex.EncodeToString(sum[:])
}

func validKeyToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

func (in *Intake) wasSeen(ctx context.Context, connector, uuid string) (bool, error) {
	_, err := in.seen.Get(ctx, seenKey(connector, uuid))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("look up event %s of connector %s: %w", uuid, connector, err)
	}
}

// markSeen remembers a handed-off event; the first writer wins. A failure
// only costs a repeated handoff if the event comes again, so it is logged,
// not returned.
func (in *Intake) markSeen(ctx context.Context, connector string, ev LogEvent) {
	val := []byte(ev.EventType + " " + strconv.FormatInt(ev.Published.Unix(), 10))
	_, err := in.seen.Create(ctx, seenKey(connector, ev.UUID), val)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		in.log.Warn("could not remember a handled okta event; a replay would resync again", "connector", connector, "uuid", ev.UUID, "err", err)
	}
}

// Stats returns the counts so far.
func (in *Intake) Stats() IntakeStats {
	return IntakeStats{
		Deliveries: in.deliveries.Load(), Undecodable: in.undecodable.Load(), Events: in.events.Load(),
		Invalid: in.invalid.Load(), Duplicates: in.duplicates.Load(), HandedOff: in.handedOff.Load(),
		Irrelevant: in.irrelevant.Load(), Unmapped: in.unmapped.Load(),
	}
}
