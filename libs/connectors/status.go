package connectors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// Phases of a run, in the order they happen; with the run's start time and
// id they order every run event of a connector.
const (
	phaseStarted   = 1
	phaseFailed    = 2
	phaseCompleted = 3
)

// runMark is the value of a connector's key in BucketRuns: the latest run
// event applied to the connector's status, and what it changed.
type runMark struct {
	// StartedAt (Unix nanoseconds), RunID and Phase order run events: a
	// later run starts later, and within a run started comes before its end.
	StartedAt int64  `json:"started_at"`
	RunID     string `json:"run_id"`
	Phase     int    `json:"phase"`
	// PrevStatus and PrevReason are the record's status before this event
	// was applied: a redelivery republishes the change they describe.
	PrevStatus int32  `json:"prev_status"`
	PrevReason string `json:"prev_reason"`
	// Published is set once the status change was published.
	Published bool `json:"published"`
}

// compareRun orders run events: negative when a is older than b.
func compareRun(a, b runMark) int {
	return cmp.Or(cmp.Compare(a.StartedAt, b.StartedAt), cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.Phase, b.Phase))
}

// StatusChange is a change of a connector's status (or of its
// status_reason) caused by a run event, to be published as
// catalog.connector.status_changed.
type StatusChange struct {
	// Connector is the record after the change, with its revision.
	Connector *eventsv1.Connector
	// Previous is the status before the change.
	Previous eventsv1.ConnectorStatus
	// ChangedAt is when the record changed.
	ChangedAt time.Time

	markRev uint64
	mark    runMark
}

// Event returns the ConnectorStatusChanged to publish.
func (c *StatusChange) Event() *eventsv1.ConnectorStatusChanged {
	return &eventsv1.ConnectorStatusChanged{
		Connector:      c.Connector,
		PreviousStatus: c.Previous,
		ChangedAt:      timestamppb.New(c.ChangedAt),
	}
}

// MsgID returns the event's Nats-Msg-Id, from the connector id and the
// record revision (docs/events.md).
func (c *StatusChange) MsgID() string {
	return subjects.MsgID(subjects.DomainCatalog, subjects.EntityConnector, c.Connector.GetId(),
		subjects.VerbStatusChanged, strconv.FormatUint(c.Connector.GetRevision(), 10))
}

// Applied says what a run event did to a connector.
type Applied struct {
	// Change is the status change to publish; nil when the status and
	// reason did not change or the change was already published.
	Change *StatusChange
	// Stale is true when the connector already reflects a later run event
	// and this one was ignored.
	Stale bool
	// Connector is the record after the event (nil when Stale).
	Connector *eventsv1.Connector
}

// ApplyRunStarted applies a SyncRunStarted: the connector becomes SYNCING
// when it is NOT_CONNECTED or ERROR (a connected connector stays CONNECTED
// during its resyncs). ErrNotFound for an unknown connector.
func (s *Store) ApplyRunStarted(ctx context.Context, ev *eventsv1.SyncRunStarted) (Applied, error) {
	mark := runMark{StartedAt: unixNano(ev.GetStartedAt()), RunID: ev.GetRunId(), Phase: phaseStarted}
	return s.applyRun(ctx, ev.GetConnectorId(), mark, func(c *eventsv1.Connector) {
		switch c.GetStatus() {
		case eventsv1.ConnectorStatus_CONNECTOR_STATUS_UNSPECIFIED,
			eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED,
			eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR:
			c.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_SYNCING
			c.StatusReason = "a sync is reading the org"
		}
	})
}

// ApplyRunCompleted applies a SyncRunCompleted: the connector becomes
// CONNECTED with the run's capabilities; its status_reason is empty, or says
// how to confirm removals the run held back.
func (s *Store) ApplyRunCompleted(ctx context.Context, ev *eventsv1.SyncRunCompleted) (Applied, error) {
	id := ev.GetConnectorId()
	mark := runMark{StartedAt: unixNano(ev.GetStartedAt()), RunID: ev.GetRunId(), Phase: phaseCompleted}
	return s.applyRun(ctx, id, mark, func(c *eventsv1.Connector) {
		c.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED
		c.StatusReason = ""
		if ev.GetRemovalsHeld() {
			c.StatusReason = RemovalsHeldReason(id, ev.GetRemovalsHeldCount())
		}
		if ev.GetCapabilities() != nil {
			c.Capabilities = proto.CloneOf(ev.GetCapabilities())
		}
	})
}

// RemovalsHeldReason is the status_reason of a connector whose last sync
// held removals back.
func RemovalsHeldReason(id string, count int64) string {
	return fmt.Sprintf("removals held: run `accessbus sync confirm-removals --connector %s` (%d removals wait for a person to confirm they are real)", id, count)
}

// ApplyRunFailed applies a SyncRunFailed: the connector becomes ERROR with
// the run's message as status_reason. A run that was cancelled (shutdown,
// connector disconnected) says nothing about the connector: it leaves the
// status alone, except that a connector SYNCING its first sync goes back
// to NOT_CONNECTED.
func (s *Store) ApplyRunFailed(ctx context.Context, ev *eventsv1.SyncRunFailed) (Applied, error) {
	mark := runMark{StartedAt: unixNano(ev.GetStartedAt()), RunID: ev.GetRunId(), Phase: phaseFailed}
	reason := trimReason(telemetry.RedactString(ev.GetMessage()))
	if reason == "" {
		reason = "the last sync failed (" + ev.GetReason().String() + ")"
	}
	return s.applyRun(ctx, ev.GetConnectorId(), mark, func(c *eventsv1.Connector) {
		if ev.GetReason() == eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED {
			if c.GetStatus() == eventsv1.ConnectorStatus_CONNECTOR_STATUS_SYNCING {
				c.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED
				c.StatusReason = reason
			}
			return
		}
		c.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR
		c.StatusReason = reason
	})
}

func unixNano(ts *timestamppb.Timestamp) int64 {
	if ts == nil {
		return 0
	}
	return ts.AsTime().UnixNano()
}

// applyRun applies one run event to a connector unless a later one was
// applied already.
//
// The run marker is written before the record, and both are compare-and-set:
// a handler that loses either race starts over and then sees the later
// event's marker. A redelivery of the latest event (the marker equals it)
// applies it again, which changes nothing if it was applied, and finishes
// the work (record, publish) if a crash cut it short.
func (s *Store) applyRun(ctx context.Context, id string, mark runMark, transition func(*eventsv1.Connector)) (Applied, error) {
	if err := checkID("apply sync run event", id); err != nil {
		return Applied{}, err
	}
	for range maxAttempts {
		have, haveRev, err := s.getMark(ctx, id)
		if err != nil {
			return Applied{}, err
		}
		order := -1 // no marker yet: every event is newer
		if haveRev != 0 {
			order = compareRun(have, mark)
		}
		if order > 0 {
			return Applied{Stale: true}, nil
		}
		rec, recRev, err := s.get(ctx, id)
		if err != nil {
			return Applied{}, fmt.Errorf("apply run %s: %w", mark.RunID, err)
		}
		if order < 0 {
			mark.PrevStatus, mark.PrevReason = int32(rec.GetStatus()), rec.GetStatusReason()
			rev, err := s.putMark(ctx, id, mark, haveRev)
			if errors.Is(err, errMarkConflict) {
				continue
			}
			if err != nil {
				return Applied{}, err
			}
			have, haveRev = mark, rev
		} else if _, rev, err := s.getMark(ctx, id); err != nil {
			return Applied{}, err
		} else if rev != haveRev {
			// A later event landed while we read the record: start over.
			continue
		}

		next := proto.CloneOf(rec)
		transition(next)
		if !proto.Equal(rec, next) {
			next.UpdatedAt = timestamppb.New(s.now())
			next.Revision = 0
			data, err := proto.Marshal(next)
			if err != nil {
				return Applied{}, fmt.Errorf("apply run %s to connector %s: encode: %w", mark.RunID, id, err)
			}
			newRev, err := s.records.Update(ctx, id, data, recRev)
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue
			}
			if err != nil {
				return Applied{}, fmt.Errorf("apply run %s to connector %s: %w", mark.RunID, id, err)
			}
			next.Revision = newRev
			rec = next
		}

		res := Applied{Connector: rec}
		prev := eventsv1.ConnectorStatus(have.PrevStatus)
		if !have.Published && (prev != rec.GetStatus() || have.PrevReason != rec.GetStatusReason()) {
			res.Change = &StatusChange{Connector: rec, Previous: prev, ChangedAt: rec.GetUpdatedAt().AsTime(), markRev: haveRev, mark: have}
		}
		return res, nil
	}
	return Applied{}, fmt.Errorf("apply run %s to connector %s: %w (%d attempts)", mark.RunID, id, ErrConflict, maxAttempts)
}

// MarkPublished records that change was published, so that a redelivery of
// its run event does not publish it again. If a later run event was applied
// meanwhile, there is nothing to record.
func (s *Store) MarkPublished(ctx context.Context, change *StatusChange) error {
	if change == nil || change.markRev == 0 {
		return nil
	}
	m := change.mark
	m.Published = true
	_, err := s.putMark(ctx, change.Connector.GetId(), m, change.markRev)
	if errors.Is(err, errMarkConflict) {
		return nil
	}
	return err
}

var errMarkConflict = errors.New("run marker changed")

func (s *Store) getMark(ctx context.Context, id string) (runMark, uint64, error) {
	e, err := s.runs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return runMark{}, 0, nil
	}
	if err != nil {
		return runMark{}, 0, fmt.Errorf("read run marker of connector %s: %w", id, err)
	}
	var m runMark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return runMark{}, 0, fmt.Errorf("decode run marker of connector %s: %w", id, err)
	}
	return m, e.Revision(), nil
}

// putMark writes m if the marker is still at rev (0: absent).
func (s *Store) putMark(ctx context.Context, id string, m runMark, rev uint64) (uint64, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("encode run marker of connector %s: %w", id, err)
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.runs.Create(ctx, id, data)
	} else {
		newRev, err = s.runs.Update(ctx, id, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errMarkConflict
	}
	if err != nil {
		return 0, fmt.Errorf("store run marker of connector %s: %w", id, err)
	}
	return newRev, nil
}
