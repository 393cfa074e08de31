// Package access serves the AccessService Connect API (proto
// accessbus.access.v1): who has what in a connector's Okta org, now, read
// from the state the sync service committed (package state), and a
// consistent snapshot of that state naming the ACCESS stream sequence it
// reflects.
//
// The List calls read the connector's current state on every call and page
// by position (kind and id, grant key), so a page token stays valid while
// the state changes: an item that exists throughout paging is returned
// exactly once. Pages of one listing may come from different moments; a
// reader that needs one moment uses ExportSnapshot.
//
// The snapshot's guarantee (docs/access.md): every change event of the
// connector with an ACCESS sequence up to the snapshot's access_sequence is
// reflected in it, and none after. The sync service publishes an event and
// only then writes the container it changes (package changes), so state
// read while a run commits would be behind the stream. A snapshot is
// therefore read while holding the connector (Deps.Hold: the lease that a
// sync run holds while it writes), after finishing any commit an
// interrupted run left in the state journal, and its sequence is read
// under the same hold. A check that the connector's last event did not move
// while the state was read turns a writer that ignores the hold into an
// error (ErrConcurrentWrite) instead of a silently wrong snapshot.
package access

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/access/v1/accessv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// HoldFunc holds a connector so that nothing writes its state or publishes
// its access events until release is called: in production the connector's
// sync lease, the one every sync run holds while it commits. It may wait for
// a running sync to end (until ctx ends) or return an error wrapping ErrBusy.
type HoldFunc func(ctx context.Context, connector string) (release func(), err error)

// Deps are what the service needs.
type Deps struct {
	// JS reads the ACCESS stream's sequences.
	JS jetstream.JetStream
	// State is the sync service's state store.
	State *state.Store
	// Hold holds a connector while a snapshot is read. Required.
	Hold HoldFunc
	// Publisher, when set, lets a snapshot finish a commit that an
	// interrupted sync left in the state journal, exactly as the next sync
	// run would (changes.Committer.Recover); *bus.Bus is one. Without it a
	// snapshot of a connector with such a commit fails with
	// ErrUnfinishedCommit (Unavailable) until the next run finishes it.
	Publisher changes.Publisher
	// Exists, when set, says whether a connector exists (the connector
	// records). A connector that exists but has no state yet then lists
	// nothing instead of being unknown; without Exists a connector without
	// state is unknown (ErrUnknownConnector).
	Exists func(ctx context.Context, connector string) (bool, error)
	// Stream is the ACCESS stream's name; default subjects.StreamAccess.
	Stream string
	// Now is the clock of taken_at; default time.Now.
	Now func() time.Time
	// Log receives the service's log; nil discards it.
	Log *slog.Logger
}

// Service implements accessv1connect.AccessServiceHandler.
type Service struct {
	d Deps
	// afterLoad, when set (tests), runs right after a snapshot read the state.
	afterLoad func()
}

var _ accessv1connect.AccessServiceHandler = (*Service)(nil)

// New returns the service; JS, State and Hold are required.
func New(d Deps) (*Service, error) {
	if d.JS == nil || d.State == nil || d.Hold == nil {
		return nil, fmt.Errorf("new access service: JS, State and Hold are required: %w", ErrInvalidRequest)
	}
	if d.Stream == "" {
		d.Stream = subjects.StreamAccess
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{d: d}, nil
}

// Handler returns the Connect handler and the path prefix to mount it on
// (an http.ServeMux pattern).
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return accessv1connect.NewAccessServiceHandler(s, opts...)
}

// load reads connector's state, answering ErrUnknownConnector for a
// connector that does not exist.
func (s *Service) load(ctx context.Context, connector string) (*view, error) {
	if err := subjects.ValidateConnectorID(connector); err != nil {
		return nil, fmt.Errorf("connector_id: %w", err)
	}
	st, err := s.d.State.Load(ctx, connector)
	if err != nil {
		return nil, fmt.Errorf("read state of connector %s: %w", connector, err)
	}
	v, err := buildView(connector, st, s.d.Log)
	if err != nil {
		return nil, fmt.Errorf("read state of connector %s: %w", connector, err)
	}
	if err := s.checkExists(ctx, connector, v); err != nil {
		return nil, err
	}
	return v, nil
}

// checkExists tells an unknown connector from one with (maybe empty) state.
func (s *Service) checkExists(ctx context.Context, connector string, v *view) error {
	if v.containers > 0 {
		return nil
	}
	if s.d.Exists == nil {
		return fmt.Errorf("%w: connector %q has no synced state: it does not exist, or its first sync has not completed", ErrUnknownConnector, connector)
	}
	ok, err := s.d.Exists(ctx, connector)
	if err != nil {
		return fmt.Errorf("look up connector %s: %w", connector, err)
	}
	if !ok {
		return fmt.Errorf("%w: connector %q does not exist", ErrUnknownConnector, connector)
	}
	return nil
}

// ListResources implements accessv1connect.AccessServiceHandler.
func (s *Service) ListResources(ctx context.Context, req *connect.Request[accessv1.ListResourcesRequest]) (*connect.Response[accessv1.ListResourcesResponse], error) {
	resp, err := s.listResources(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *Service) listResources(ctx context.Context, r *accessv1.ListResourcesRequest) (*accessv1.ListResourcesResponse, error) {
	kind := r.GetKind()
	if _, known := eventsv1.ResourceKind_name[int32(kind)]; !known {
		return nil, fmt.Errorf("%w: kind %d is not a ResourceKind", ErrInvalidRequest, kind)
	}
	size, err := pageSize(r.GetPageSize(), DefaultPageSize)
	if err != nil {
		return nil, err
	}
	query := fingerprint("resources", r.GetConnectorId(), kind.String())
	after, err := decodeCursor(r.GetPageToken(), query)
	if err != nil {
		return nil, err
	}
	v, err := s.load(ctx, r.GetConnectorId())
	if err != nil {
		return nil, err
	}
	resp := &accessv1.ListResourcesResponse{}
	for _, res := range v.resources {
		if kind != eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED && res.GetKind() != kind {
			continue
		}
		if after != nil && compareResources(res, &accessv1.AccessResource{Kind: eventsv1.ResourceKind(after.Kind), Id: after.After}) <= 0 {
			continue
		}
		if len(resp.Resources) == size {
			last := resp.Resources[size-1]
			resp.NextPageToken = encodeCursor(cursor{Query: query, Kind: int32(last.GetKind()), After: last.GetId()})
			break
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

// ListGrants implements accessv1connect.AccessServiceHandler.
func (s *Service) ListGrants(ctx context.Context, req *connect.Request[accessv1.ListGrantsRequest]) (*connect.Response[accessv1.ListGrantsResponse], error) {
	resp, err := s.listGrants(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}

func (s *Service) listGrants(ctx context.Context, r *accessv1.ListGrantsRequest) (*accessv1.ListGrantsResponse, error) {
	f, err := filterOf(r)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(r.GetPageSize(), DefaultPageSize)
	if err != nil {
		return nil, err
	}
	query := fingerprint("grants", r.GetConnectorId(), f.String())
	after, err := decodeCursor(r.GetPageToken(), query)
	if err != nil {
		return nil, err
	}
	v, err := s.load(ctx, r.GetConnectorId())
	if err != nil {
		return nil, err
	}
	resp := &accessv1.ListGrantsResponse{}
	for _, g := range v.grants {
		if after != nil && g.GetGrant().GetKey() <= after.After {
			continue
		}
		if !f.match(g) {
			continue
		}
		if len(resp.Grants) == size {
			resp.NextPageToken = encodeCursor(cursor{Query: query, After: resp.Grants[size-1].GetGrant().GetKey()})
			break
		}
		resp.Grants = append(resp.Grants, g)
	}
	return resp, nil
}

// filterOf checks and returns a ListGrants request's filter.
func filterOf(r *accessv1.ListGrantsRequest) (grantFilter, error) {
	f := grantFilter{kind: r.GetKind()}
	if _, known := eventsv1.GrantKind_name[int32(f.kind)]; !known {
		return f, fmt.Errorf("%w: kind %d is not a GrantKind", ErrInvalidRequest, f.kind)
	}
	var name, value string
	switch x := r.GetFilter().(type) {
	case nil:
		return f, nil
	case *accessv1.ListGrantsRequest_UserId:
		name, value, f.userID = "user_id", x.UserId, x.UserId
	case *accessv1.ListGrantsRequest_GroupId:
		name, value, f.groupID = "group_id", x.GroupId, x.GroupId
	case *accessv1.ListGrantsRequest_AppId:
		name, value, f.appID = "app_id", x.AppId, x.AppId
	case *accessv1.ListGrantsRequest_Role:
		name, value, f.role = "role", x.Role, x.Role
	}
	if value == "" {
		return f, fmt.Errorf("%w: %s is set but empty: name a %s or leave the filter unset", ErrInvalidRequest, name, name)
	}
	return f, nil
}

// ExportSnapshot implements accessv1connect.AccessServiceHandler: the
// header, then the resources, then the grants, each in chunks.
func (s *Service) ExportSnapshot(ctx context.Context, req *connect.Request[accessv1.ExportSnapshotRequest], stream *connect.ServerStream[accessv1.ExportSnapshotResponse]) error {
	size, err := pageSize(req.Msg.GetPageSize(), DefaultChunkSize)
	if err != nil {
		return connectError(err)
	}
	snap, err := s.Snapshot(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return connectError(err)
	}
	if err := stream.Send(&accessv1.ExportSnapshotResponse{Chunk: &accessv1.ExportSnapshotResponse_Header{Header: snap.Header()}}); err != nil {
		return fmt.Errorf("send snapshot header of %s: %w", snap.ConnectorID, err)
	}
	for chunk := range slices.Chunk(snap.Resources, size) {
		msg := &accessv1.ExportSnapshotResponse{Chunk: &accessv1.ExportSnapshotResponse_Resources{
			Resources: &accessv1.SnapshotResources{Resources: chunk}}}
		if err := stream.Send(msg); err != nil {
			return fmt.Errorf("send snapshot resources of %s: %w", snap.ConnectorID, err)
		}
	}
	for chunk := range slices.Chunk(snap.Grants, size) {
		msg := &accessv1.ExportSnapshotResponse{Chunk: &accessv1.ExportSnapshotResponse_Grants{
			Grants: &accessv1.SnapshotGrants{Grants: chunk}}}
		if err := stream.Send(msg); err != nil {
			return fmt.Errorf("send snapshot grants of %s: %w", snap.ConnectorID, err)
		}
	}
	return nil
}

// onceFunc makes a release function safe to call twice.
func onceFunc(f func()) func() {
	if f == nil {
		return func() {}
	}
	return sync.OnceFunc(f)
}
