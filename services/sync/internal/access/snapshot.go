package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Snapshot is a connector's state at one ACCESS stream sequence.
type Snapshot struct {
	// ConnectorID is the connector.
	ConnectorID string
	// AccessSequence is the ACCESS stream sequence the snapshot reflects:
	// every event of the connector up to it is in the snapshot, none after.
	AccessSequence uint64
	// TakenAt is when the state was read.
	TakenAt time.Time
	// Resources are ordered by kind, then id.
	Resources []*accessv1.AccessResource
	// Grants are ordered by key.
	Grants []*accessv1.AccessGrant
}

// Header is the snapshot's header message, with its counts.
func (s *Snapshot) Header() *accessv1.SnapshotHeader {
	h := &accessv1.SnapshotHeader{
		ConnectorId:     s.ConnectorID,
		AccessSequence:  s.AccessSequence,
		TakenAt:         timestamppb.New(s.TakenAt),
		ResourceCount:   int64(len(s.Resources)),
		GrantCount:      int64(len(s.Grants)),
		ResourcesByKind: map[string]int64{},
		GrantsByKind:    map[string]int64{},
	}
	for _, r := range s.Resources {
		h.ResourcesByKind[r.GetKind().String()]++
	}
	for _, g := range s.Grants {
		h.GrantsByKind[g.GetKind().String()]++
	}
	return h
}

// Snapshot reads a consistent snapshot of connector's state: while holding
// the connector (Deps.Hold) it finishes any journaled commit, reads the
// state and the ACCESS stream's last sequence, and checks that no event of
// the connector was published meanwhile.
func (s *Service) Snapshot(ctx context.Context, connector string) (*Snapshot, error) {
	if err := subjects.ValidateConnectorID(connector); err != nil {
		return nil, fmt.Errorf("connector_id: %w", err)
	}
	if s.d.Exists != nil {
		// Before the hold, so that asking for an unknown connector never
		// holds up a sync.
		ok, err := s.d.Exists(ctx, connector)
		if err != nil {
			return nil, fmt.Errorf("look up connector %s: %w", connector, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: connector %q does not exist", ErrUnknownConnector, connector)
		}
	}
	stream, err := s.d.JS.Stream(ctx, s.d.Stream)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: open stream %s: %w", connector, s.d.Stream, err)
	}
	filter, err := subjects.ConnectorAccess(connector)
	if err != nil {
		return nil, fmt.Errorf("connector_id: %w", err)
	}
	started := time.Now()
	rel, err := s.d.Hold(ctx, connector)
	if err != nil {
		return nil, fmt.Errorf("hold connector %s for a snapshot: %w", connector, err)
	}
	release := onceFunc(rel)
	defer release()

	st, seq, err := s.readHeld(ctx, stream, connector, filter)
	if err != nil {
		return nil, err
	}
	takenAt := s.d.Now()
	// Decoding needs no hold: the sync may go on.
	release()

	v, err := buildView(connector, st, s.d.Log)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", connector, err)
	}
	if err := s.checkExists(ctx, connector, v); err != nil {
		return nil, err
	}
	s.d.Log.Info("access snapshot taken", "connector", connector, "access_sequence", seq,
		"resources", len(v.resources), "grants", len(v.grants), "duration", time.Since(started))
	return &Snapshot{ConnectorID: connector, AccessSequence: seq, TakenAt: takenAt, Resources: v.resources, Grants: v.grants}, nil
}

// readHeld reads the state and the sequence it reflects; the connector is
// held.
func (s *Service) readHeld(ctx context.Context, stream jetstream.Stream, connector, filter string) (*state.Snapshot, uint64, error) {
	before, err := lastSequence(ctx, stream, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", connector, err)
	}
	st, err := s.d.State.Load(ctx, connector)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", connector, err)
	}
	if s.afterLoad != nil {
		s.afterLoad()
	}
	if len(st.Pending) > 0 {
		if st, err = s.recover(ctx, connector, st); err != nil {
			return nil, 0, err
		}
		// Recovery may have published (events the dedupe window did not
		// drop); they are in the state now.
		if before, err = lastSequence(ctx, stream, filter); err != nil {
			return nil, 0, fmt.Errorf("snapshot of %s: %w", connector, err)
		}
	}
	// The stream's last sequence, not the connector's last event: every
	// event of the connector up to it is in the state, and a consumer
	// starting after it never starts before the stream's first message
	// because older events of other connectors aged out.
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: read stream %s: %w", connector, s.d.Stream, err)
	}
	after, err := lastSequence(ctx, stream, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", connector, err)
	}
	if after != before || after > info.State.LastSeq {
		return nil, 0, fmt.Errorf("%w: connector %s: its last ACCESS event moved from sequence %d to %d while the state was read: every writer of %s must hold the connector's sync lease; retry",
			ErrConcurrentWrite, connector, before, after, filter)
	}
	return st, info.State.LastSeq, nil
}

// recover finishes the commits an interrupted run journaled, as the next
// sync run would, and reloads the state.
func (s *Service) recover(ctx context.Context, connector string, st *state.Snapshot) (*state.Snapshot, error) {
	if s.d.Publisher == nil {
		return nil, fmt.Errorf("%w: connector %s has %d journaled change(s) an interrupted sync did not finish; the next sync run finishes them: retry after it",
			ErrUnfinishedCommit, connector, len(st.Pending))
	}
	runID := "snapshot-recovery-" + s.d.Now().UTC().Format("20060102T150405.000000000Z")
	com := changes.New(s.d.Publisher, s.d.State, connector, runID, eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC)
	if err := com.Recover(ctx, st); err != nil {
		return nil, fmt.Errorf("snapshot of %s: finish journaled commits: %w", connector, err)
	}
	// Recover updates its copy with a lower bound of a delete's revision;
	// the snapshot hands out exact revisions.
	st, err := s.d.State.Load(ctx, connector)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", connector, err)
	}
	if len(st.Pending) > 0 {
		return nil, fmt.Errorf("%w: connector %s still has %d journaled change(s) after finishing them", ErrUnfinishedCommit, connector, len(st.Pending))
	}
	s.d.Log.Info("access snapshot finished an interrupted commit", "connector", connector, "run", runID)
	return st, nil
}

// lastSequence is the stream sequence of the last message on filter; 0
// when the stream holds none.
func lastSequence(ctx context.Context, stream jetstream.Stream, filter string) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, filter)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the last event on %s: %w", filter, err)
	}
	return m.Sequence, nil
}
