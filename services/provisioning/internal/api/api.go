// Package api serves the ProvisioningService over Connect: it validates a
// request, publishes it on provisioning.<connector>.request (the work queue
// the provisioning service consumes, like any other publisher's request)
// and answers from the ledger that the consumer keeps. The API never writes
// the ledger: a record exists once the consumer has taken the request.
//
// Every call needs an authenticated caller (auth.Interceptor, mounted by
// the provisioning service): any caller may read (Get, List); Submit takes
// an owner of the connector with the Connector Administrator role, or a
// Super Administrator (auth.MayActOn).
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1/provisioningv1connect"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// Limits of the API.
const (
	// DefaultWaitTimeout is how long Submit waits for a result when the
	// caller asks to wait and names no timeout.
	DefaultWaitTimeout = 30 * time.Second
	// MaxWaitTimeout is the longest wait a caller may ask for.
	MaxWaitTimeout = 5 * time.Minute
	// DefaultListLimit and MaxListLimit bound List.
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// Deps are what the API reads and publishes through.
type Deps struct {
	// Bus publishes the requests.
	Bus *bus.Bus
	// Ledger is the consumer's record of requests and time-bound grants.
	Ledger *ledger.Store
	// Connectors tells a known connector from an unknown one.
	Connectors *connectors.Store
	// Now is the clock for validation and a request's default submitted_at;
	// nil means time.Now.
	Now func() time.Time
}

// Server implements provisioningv1connect.ProvisioningServiceHandler.
type Server struct{ d Deps }

var _ provisioningv1connect.ProvisioningServiceHandler = (*Server)(nil)

// New returns the Connect handler's path and handler, to mount on the
// service's mux with connect.WithInterceptors(auth.Interceptor(store)) in
// opts: without an authenticated caller every call is refused.
func New(d Deps, opts ...connect.HandlerOption) (string, http.Handler) {
	if d.Now == nil {
		d.Now = time.Now
	}
	return provisioningv1connect.NewProvisioningServiceHandler(&Server{d: d}, opts...)
}

// connector checks the id and that the connector exists, and returns it.
func (s *Server) connector(ctx context.Context, id string) (*eventsv1.Connector, error) {
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

// read checks the caller and the connector of a read.
func (s *Server) read(ctx context.Context, id string) error {
	if _, err := auth.Require(ctx); err != nil {
		return err
	}
	_, err := s.connector(ctx, id)
	return err
}

// invalid is the InvalidArgument error of a request with field errors: its
// message names every field and reason, and each FieldError rides along as
// an error detail for programs.
func invalid(fes []*eventsv1.FieldError) error {
	parts := make([]string, 0, len(fes))
	for _, fe := range fes {
		parts = append(parts, fe.GetField()+": "+fe.GetReason())
	}
	err := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("invalid request: %s", strings.Join(parts, "; ")))
	for _, fe := range fes {
		if d, derr := connect.NewErrorDetail(fe); derr == nil {
			err.AddDetail(d)
		}
	}
	return err
}

// waitTimeout reads SubmitRequest.wait_timeout.
func waitTimeout(m *provv1.SubmitRequest) (time.Duration, error) {
	wt := m.GetWaitTimeout()
	if wt == nil {
		return DefaultWaitTimeout, nil
	}
	if err := wt.CheckValid(); err != nil {
		return 0, invalid([]*eventsv1.FieldError{{Field: "wait_timeout", Reason: fmt.Sprintf("not a valid duration: %v", err)}})
	}
	switch d := wt.AsDuration(); {
	case d < 0 || d > MaxWaitTimeout:
		return 0, invalid([]*eventsv1.FieldError{{Field: "wait_timeout", Reason: fmt.Sprintf("%s: give 0 (the default %s) up to %s", d, DefaultWaitTimeout, MaxWaitTimeout)}})
	case d == 0:
		return DefaultWaitTimeout, nil
	default:
		return d, nil
	}
}

// received is the record of a request that is on the queue but that the
// consumer has not taken yet: RECEIVED, no attempt, nothing stored.
func received(req *eventsv1.ProvisioningRequest) *provv1.RequestRecord {
	return &provv1.RequestRecord{Request: req, State: provv1.RequestState_REQUEST_STATE_RECEIVED}
}

// Submit implements ProvisioningServiceHandler.
func (s *Server) Submit(ctx context.Context, r *connect.Request[provv1.SubmitRequest]) (*connect.Response[provv1.SubmitResponse], error) {
	caller, err := auth.Require(ctx)
	if err != nil {
		return nil, err
	}
	req := &eventsv1.ProvisioningRequest{}
	if r.Msg.GetRequest() != nil {
		req = proto.CloneOf(r.Msg.GetRequest())
	}
	now := s.d.Now()
	fes := request.Validate(req, now)
	// The expiry scheduler's revokes are its own: no caller may pass for it.
	if prefix := request.ExpiryRequestID(""); strings.HasPrefix(req.GetRequestId(), prefix) {
		fes = append(fes, &eventsv1.FieldError{Field: "request_id", Reason: "reserved: ids that start with " +
			prefix + " are the provisioning service's own revokes of expired grants; choose another id"})
	}
	if req.GetRequestedBy() == request.ExpiryRequester {
		fes = append(fes, &eventsv1.FieldError{Field: "requested_by", Reason: "reserved: " + request.ExpiryRequester +
			" is the provisioning service's expiry scheduler; name yourself"})
	}
	if len(fes) > 0 {
		return nil, invalid(fes)
	}
	timeout := DefaultWaitTimeout
	if r.Msg.GetWait() {
		if timeout, err = waitTimeout(r.Msg); err != nil {
			return nil, err
		}
	}
	conn, err := s.connector(ctx, req.GetConnectorId())
	if err != nil {
		return nil, err
	}
	if err := auth.MayActOn(caller, conn, "submitting a provisioning request"); err != nil {
		return nil, err
	}
	if req.GetSubmittedAt() == nil {
		req.SubmittedAt = timestamppb.New(now)
	}
	answer := func(rec *provv1.RequestRecord) (*connect.Response[provv1.SubmitResponse], error) {
		return connect.NewResponse(&provv1.SubmitResponse{Record: rec}), nil
	}

	// A request_id the consumer already took is not published again: its
	// first record stands, whatever this submission holds.
	rec, _, err := s.d.Ledger.Get(ctx, req.GetConnectorId(), req.GetRequestId())
	switch {
	case err == nil:
		if !r.Msg.GetWait() || rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
			return answer(rec)
		}
	case errors.Is(err, ledger.ErrNotFound):
		subject, err := subjects.ProvisioningRequest(req.GetConnectorId())
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		// The message id makes a resubmission within the stream's dedupe
		// window (before the consumer took the first) a no-op too.
		if _, err := s.d.Bus.Publish(ctx, subject, request.MsgID(req), req); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("submit request %q: %w", req.GetRequestId(), err))
		}
		if !r.Msg.GetWait() {
			return answer(received(req))
		}
	default:
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}

	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rec, err = s.d.Ledger.Wait(wctx, req.GetConnectorId(), req.GetRequestId())
	switch {
	case err == nil:
		return answer(rec)
	case ctx.Err() != nil:
		// The caller went away or its own deadline passed.
		return nil, ctx.Err()
	case wctx.Err() != nil:
		// The wait ran out: not an error, the record says how far it got.
		if rec == nil {
			rec = received(req)
		}
		return answer(rec)
	default:
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("wait for request %q: %w", req.GetRequestId(), err))
	}
}

// Get implements ProvisioningServiceHandler.
func (s *Server) Get(ctx context.Context, r *connect.Request[provv1.GetRequest]) (*connect.Response[provv1.GetResponse], error) {
	if err := s.read(ctx, r.Msg.GetConnectorId()); err != nil {
		return nil, err
	}
	id := r.Msg.GetRequestId()
	if id == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("request_id: required"))
	}
	rec, _, err := s.d.Ledger.Get(ctx, r.Msg.GetConnectorId(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf(
			"no record of request %q on connector %s: it was never submitted, is still waiting on the queue, or is older than %d days",
			id, r.Msg.GetConnectorId(), int(ledger.DefaultRetention.Hours()/24)))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&provv1.GetResponse{Record: rec}), nil
}

// List implements ProvisioningServiceHandler.
func (s *Server) List(ctx context.Context, r *connect.Request[provv1.ListRequest]) (*connect.Response[provv1.ListResponse], error) {
	if err := s.read(ctx, r.Msg.GetConnectorId()); err != nil {
		return nil, err
	}
	limit := int(r.Msg.GetLimit())
	switch {
	case limit < 0 || limit > MaxListLimit:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("limit %d: use 1 to %d, or 0 for the default %d", limit, MaxListLimit, DefaultListLimit))
	case limit == 0:
		limit = DefaultListLimit
	}
	c := r.Msg.GetConnectorId()
	if r.Msg.GetActiveTimeBound() {
		gs, err := s.d.Ledger.Grants(ctx, c)
		if err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
		if len(gs) > limit {
			gs = gs[:limit]
		}
		return connect.NewResponse(&provv1.ListResponse{Grants: gs}), nil
	}
	recs, err := s.d.Ledger.List(ctx, c, limit)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&provv1.ListResponse{Records: recs}), nil
}
