package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// StatusConsumer is the durable name of the consumer of sync run events
// that moves connector statuses.
const StatusConsumer = "catalog-connector-status"

// StatusConsumerSpec declares the status follower's consumer: every
// connector's run events on the SYNC stream.
func StatusConsumerSpec() bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:      subjects.StreamSync,
		Durable:     StatusConsumer,
		Description: "catalog: moves each connector's status with its sync runs",
		Filter:      []string{subjects.AllSyncRuns},
	}
}

// Payload type names of the run events, as the Accessbus-Payload-Type header says them.
var (
	typeRunStarted   = string((&eventsv1.SyncRunStarted{}).ProtoReflect().Descriptor().FullName())
	typeRunCompleted = string((&eventsv1.SyncRunCompleted{}).ProtoReflect().Descriptor().FullName())
	typeRunFailed    = string((&eventsv1.SyncRunFailed{}).ProtoReflect().Descriptor().FullName())
)

// FollowRunStatus consumes sync run events and applies them to the
// connectors' records (connectors.Store.ApplyRun*), publishing
// catalog.connector.status_changed for every status change. Stop the
// returned Subscription to end it.
func FollowRunStatus(ctx context.Context, b *bus.Bus, store *connectors.Store, log *slog.Logger) (*bus.Subscription, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &follower{bus: b, store: store, log: log}
	sub, err := bus.ConsumeRaw(ctx, b, StatusConsumerSpec(), f.handle)
	if err != nil {
		return nil, fmt.Errorf("follow sync runs: %w", err)
	}
	return sub, nil
}

type follower struct {
	bus   *bus.Bus
	store *connectors.Store
	log   *slog.Logger
}

// runEvent is the part of every run event the follower needs besides its type.
type runEvent interface {
	proto.Message
	GetConnectorId() string
	GetRunId() string
}

func (f *follower) handle(ctx context.Context, m *bus.RawMessage) error {
	subj, err := subjects.Parse(m.Subject)
	if err != nil {
		return bus.Permanent(fmt.Errorf("run event on %s: %w", m.Subject, err))
	}
	typ := m.Header.Get(bus.HeaderPayloadType)
	if typ == "" {
		typ = subj.PayloadType()
	}
	var ev runEvent
	switch typ {
	case typeRunStarted:
		ev = &eventsv1.SyncRunStarted{}
	case typeRunCompleted:
		ev = &eventsv1.SyncRunCompleted{}
	case typeRunFailed:
		ev = &eventsv1.SyncRunFailed{}
	default:
		return fmt.Errorf("run event on %s: payload type %q is not a sync run event: %w", m.Subject, typ, bus.ErrUndecodable)
	}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		return fmt.Errorf("run event on %s: decode %s: %v: %w", m.Subject, typ, err, bus.ErrUndecodable)
	}
	if ev.GetConnectorId() != subj.Connector {
		return bus.Permanentf("run event on %s names connector %q: the subject and the payload must agree", m.Subject, ev.GetConnectorId())
	}

	var res connectors.Applied
	switch ev := ev.(type) {
	case *eventsv1.SyncRunStarted:
		res, err = f.store.ApplyRunStarted(ctx, ev)
	case *eventsv1.SyncRunCompleted:
		res, err = f.store.ApplyRunCompleted(ctx, ev)
	case *eventsv1.SyncRunFailed:
		res, err = f.store.ApplyRunFailed(ctx, ev)
	}
	log := f.log.With("connector", subj.Connector, "run_id", ev.GetRunId(), "event", subj.Verb)
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		// Retrying cannot make the connector exist: a run of a deleted
		// connector, or of one another catalog does not know.
		log.Warn("sync run event for an unknown connector ignored")
		return nil
	case errors.Is(err, connectors.ErrInvalid):
		return bus.Permanent(fmt.Errorf("apply run event on %s: %w", m.Subject, err))
	case err != nil:
		return fmt.Errorf("apply run event on %s: %w", m.Subject, err)
	case res.Stale:
		log.Debug("sync run event older than the connector's status ignored")
		return nil
	case res.Change == nil:
		return nil
	}

	c := res.Change
	if _, err := f.bus.Publish(ctx, subjects.CatalogConnectorStatusChanged, c.MsgID(), c.Event()); err != nil {
		// The record is stored; the redelivery publishes the change again
		// (with the same message id).
		return fmt.Errorf("publish status change of connector %s: %w", subj.Connector, err)
	}
	if err := f.store.MarkPublished(ctx, c); err != nil {
		// At worst a redelivery publishes it again, with the same id.
		log.Warn("could not record that the status change was published", "err", err)
	}
	log.Info("connector status changed", "from", c.Previous.String(), "to", c.Connector.GetStatus().String(),
		"revision", c.Connector.GetRevision())
	return nil
}
