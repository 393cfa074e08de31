// Package api serves the SyncService over Connect: it publishes sync
// requests for the workers and reads run records and connector records.
//
// Every call needs an authenticated caller (auth.Interceptor, mounted by
// the sync service): any caller may read; acting on a connector (starting
// a sync, confirming removals, managing its event hook) takes its owner
// with the Connector Administrator role, or a Super Administrator
// (auth.MayActOn).
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/runs"
	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

// Deps are what the API reads and publishes through.
type Deps struct {
	Bus        *bus.Bus
	Connectors *connectors.Store
	Runs       *runs.Store
	Leases     *lease.Manager
	// Hooks holds event hook registrations (OpenHooks).
	Hooks jetstream.KeyValue
	// Okta returns a connector's Okta client (the worker's, on its budget).
	Okta func(ctx context.Context, c *eventsv1.Connector) (*okta.Client, error)
	// HookEventTypes are the event types a registered hook subscribes to.
	HookEventTypes []string
}

// Server implements syncv1connect.SyncServiceHandler.
type Server struct{ d Deps }

var _ syncv1connect.SyncServiceHandler = (*Server)(nil)

// New returns the Connect handler's path and handler. Mount it with
// connect.WithInterceptors(auth.Interceptor(store)) in opts: without an
// authenticated caller every call is refused.
func New(d Deps, opts ...connect.HandlerOption) (string, http.Handler) {
	return syncv1connect.NewSyncServiceHandler(&Server{d: d}, opts...)
}

// connector checks the caller and the id and loads the record: the
// start of every read.
func (s *Server) connector(ctx context.Context, id string) (*eventsv1.Connector, error) {
	if _, err := auth.Require(ctx); err != nil {
		return nil, err
	}
	return s.load(ctx, id)
}

// actOn checks the caller and the id, loads the record and refuses a
// caller who may not act on it (auth.MayActOn): the start of every call
// that changes something. what names the action.
func (s *Server) actOn(ctx context.Context, id, what string) (*eventsv1.Connector, auth.Caller, error) {
	caller, err := auth.Require(ctx)
	if err != nil {
		return nil, auth.Caller{}, err
	}
	c, err := s.load(ctx, id)
	if err != nil {
		return nil, auth.Caller{}, err
	}
	if err := auth.MayActOn(caller, c, what); err != nil {
		return nil, auth.Caller{}, err
	}
	return c, caller, nil
}

// load checks the id and loads the record.
func (s *Server) load(ctx context.Context, id string) (*eventsv1.Connector, error) {
	if err := subjects.ValidateConnectorID(id); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("connector_id: %w", err))
	}
	c, err := s.d.Connectors.Get(ctx, id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("connector %q does not exist: list them with `accessbus connectors list`", id))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return c, nil
}

// run loads a run ("" is the latest) with the API's error codes.
func (s *Server) run(ctx context.Context, connector, runID string) (*syncv1.Run, error) {
	run, err := s.d.Runs.Get(ctx, connector, runID)
	if errors.Is(err, runs.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return run, nil
}

// TriggerSync implements SyncServiceHandler.
func (s *Server) TriggerSync(ctx context.Context, req *connect.Request[syncv1.TriggerSyncRequest]) (*connect.Response[syncv1.TriggerSyncResponse], error) {
	c, caller, err := s.actOn(ctx, req.Msg.GetConnectorId(), "starting a sync")
	if err != nil {
		return nil, err
	}
	if !c.GetTokenSet() {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("connector %s has no API token: set its domain and token first (accessbus connectors set-settings %s --domain D --token-stdin)", c.GetId(), c.GetId()))
	}
	id, err := worker.Request(ctx, s.d.Bus, &eventsv1.SyncRequest{
		RequestId: req.Msg.GetRequestId(), ConnectorId: c.GetId(), Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
		RequestedBy: caller.Identity, Reason: req.Msg.GetReason(),
	})
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&syncv1.TriggerSyncResponse{RequestId: id}), nil
}

// ConfirmRemovals implements SyncServiceHandler.
func (s *Server) ConfirmRemovals(ctx context.Context, req *connect.Request[syncv1.ConfirmRemovalsRequest]) (*connect.Response[syncv1.ConfirmRemovalsResponse], error) {
	c, caller, err := s.actOn(ctx, req.Msg.GetConnectorId(), "confirming held removals")
	if err != nil {
		return nil, err
	}
	run, err := s.run(ctx, c.GetId(), req.Msg.GetRunId())
	if err != nil {
		return nil, err
	}
	if !run.GetRemovalsHeld() {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("run %s of %s held no removals: nothing to confirm (see `accessbus sync runs --connector %s`)", run.GetRunId(), c.GetId(), c.GetId()))
	}
	reason := req.Msg.GetReason()
	if reason == "" {
		reason = "confirm the removals held by run " + run.GetRunId()
	}
	id, err := worker.Request(ctx, s.d.Bus, &eventsv1.SyncRequest{
		RequestId: "confirm-" + run.GetRunId(), ConnectorId: c.GetId(), Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
		RequestedBy: caller.Identity, Reason: reason, ConfirmRemovals: true,
	})
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&syncv1.ConfirmRemovalsResponse{RequestId: id, RunId: run.GetRunId(), RemovalsHeldCount: run.GetRemovalsHeldCount()}), nil
}

// GetRun implements SyncServiceHandler.
func (s *Server) GetRun(ctx context.Context, req *connect.Request[syncv1.GetRunRequest]) (*connect.Response[syncv1.GetRunResponse], error) {
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	run, err := s.run(ctx, c.GetId(), req.Msg.GetRunId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&syncv1.GetRunResponse{Run: run}), nil
}

// ListRuns implements SyncServiceHandler.
func (s *Server) ListRuns(ctx context.Context, req *connect.Request[syncv1.ListRunsRequest]) (*connect.Response[syncv1.ListRunsResponse], error) {
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	limit := int(req.Msg.GetLimit())
	switch {
	case limit < 0 || limit > 100:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("limit %d: use 1 to 100, or 0 for the default 20", limit))
	case limit == 0:
		limit = 20
	}
	rs, err := s.d.Runs.List(ctx, c.GetId(), limit)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&syncv1.ListRunsResponse{Runs: rs}), nil
}

// GetStatus implements SyncServiceHandler.
func (s *Server) GetStatus(ctx context.Context, req *connect.Request[syncv1.GetStatusRequest]) (*connect.Response[syncv1.GetStatusResponse], error) {
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	out := &syncv1.GetStatusResponse{Connector: c}
	if rs, err := s.d.Runs.List(ctx, c.GetId(), 1); err == nil && len(rs) > 0 {
		out.LatestRun = rs[0]
	}
	held, err := s.d.Leases.Held(ctx, worker.LeaseName(c.GetId()))
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	out.SyncingNow = held
	return connect.NewResponse(out), nil
}

// GetCapabilities implements SyncServiceHandler.
func (s *Server) GetCapabilities(ctx context.Context, req *connect.Request[syncv1.GetCapabilitiesRequest]) (*connect.Response[syncv1.GetCapabilitiesResponse], error) {
	c, err := s.connector(ctx, req.Msg.GetConnectorId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&syncv1.GetCapabilitiesResponse{Capabilities: c.GetCapabilities()}), nil
}
