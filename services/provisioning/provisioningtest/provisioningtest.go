// Package provisioningtest serves the real ProvisioningService to the tests
// of its clients that live outside this module's internal tree (the
// accessbus CLI): the API handler over HTTP on an embedded JetStream, and a
// stand-in for the work-queue consumer that writes the ledger as the
// consumer does, with outcomes the test decides. Every call is
// authenticated by its API key, as in the service. It is for tests only.
package provisioningtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/auth/authtest"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/provisioning/internal/api"
	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// Server is the ProvisioningService at URL, with its bus and ledger.
type Server struct {
	// URL is the base URL of the HTTP server.
	URL string
	// JetStream is the embedded server's JetStream, with every stream declared.
	JetStream jetstream.JetStream
	// AdminKey is the API key of a Super Administrator (identity
	// AdminIdentity), who may do everything.
	AdminKey telemetry.Secret
	ledger   *ledger.Store
	auth     *auth.Store
}

// AdminIdentity is the identity of Server.AdminKey.
const AdminIdentity = "idn-provisioningtest-admin"

// NewKey makes an API key for identity, holding roles.
func (s *Server) NewKey(tb testing.TB, identity string, roles ...auth.Role) telemetry.Secret {
	tb.Helper()
	return authtest.Key(tb, s.auth, identity, "provisioningtest", roles...)
}

// Start serves the ProvisioningService for the test, with the given
// connectors (records without a token or owners) created, and a Super
// Administrator's key in AdminKey; everything stops when the test ends.
func Start(tb testing.TB, connectorIDs ...string) *Server {
	tb.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(tb).JetStream(tb)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		tb.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	conns, err := connectors.Open(ctx, js, connectors.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		tb.Fatal(err)
	}
	for _, id := range connectorIDs {
		if _, err := conns.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: "https://" + id + ".okta.com"}); err != nil {
			tb.Fatal(err)
		}
	}
	led, err := ledger.Open(ctx, js, ledger.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := auth.Open(ctx, js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		tb.Fatal(err)
	}
	path, h := api.New(api.Deps{Bus: b, Ledger: led, Connectors: conns}, connect.WithInterceptors(auth.Interceptor(keys)))
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	s := &Server{URL: srv.URL, JetStream: js, ledger: led, auth: keys}
	s.AdminKey = s.NewKey(tb, AdminIdentity, auth.SuperAdmin)
	return s
}

// Decide is what the stand-in consumer makes of a request: the result to
// complete its record with, or nil to leave it RECEIVED, as a consumer that
// took the request and has not finished.
type Decide func(*eventsv1.ProvisioningRequest) *eventsv1.ProvisioningResult

// Consume runs the stand-in consumer until the test ends: it takes every
// request published on provisioning.*.request, records it in the ledger
// (Begin), and completes the record with decide's result. A succeeded
// GRANT with expires_at in its result becomes an active time-bound grant; a
// succeeded REVOKE ends the grant's timer. Failures are reported with
// tb.Error.
func (s *Server) Consume(tb testing.TB, decide Decide) {
	tb.Helper()
	ctx := context.Background()
	cons, err := s.JetStream.OrderedConsumer(ctx, subjects.StreamProvisioning, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.AllProvisioningRequests},
	})
	if err != nil {
		tb.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		req := &eventsv1.ProvisioningRequest{}
		if err := proto.Unmarshal(m.Data(), req); err != nil {
			tb.Errorf("undecodable request on %s: %v", m.Subject(), err)
			return
		}
		rec, rev, err := s.ledger.Begin(ctx, req)
		if err != nil {
			tb.Error(err)
			return
		}
		if rec.GetState() == provv1.RequestState_REQUEST_STATE_COMPLETED {
			return
		}
		res := decide(req)
		if res == nil {
			return
		}
		rec.State, rec.Result = provv1.RequestState_REQUEST_STATE_COMPLETED, res
		if _, err := s.ledger.Update(ctx, rec, rev); err != nil {
			tb.Error(err)
			return
		}
		if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED {
			return
		}
		switch {
		case req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT && res.GetExpiresAt() != nil:
			err = s.ledger.PutGrant(ctx, &provv1.TimeBoundGrant{
				ConnectorId: req.GetConnectorId(), RequestId: req.GetRequestId(), Target: req.GetTarget(),
				GrantKey: request.GrantKey(req.GetTarget()), GrantedAt: res.GetCompletedAt(), ExpiresAt: res.GetExpiresAt(),
				RequestedBy: req.GetRequestedBy(), Reason: req.GetReason(),
			})
		case req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE:
			err = s.ledger.DeleteGrant(ctx, req.GetConnectorId(), request.GrantKey(req.GetTarget()), "")
		}
		if err != nil {
			tb.Error(err)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cc.Stop)
}

// Result is the result of req with the given outcome, every field that
// repeats the request filled in, completed now; for a succeeded GRANT with
// an expiry, expires_at is set as the consumer sets it.
func Result(req *eventsv1.ProvisioningRequest, outcome eventsv1.ProvisioningResult_Outcome) *eventsv1.ProvisioningResult {
	now := time.Now()
	res := &eventsv1.ProvisioningResult{
		RequestId: req.GetRequestId(), ConnectorId: req.GetConnectorId(), Outcome: outcome,
		CompletedAt: timestamppb.New(now), Action: req.GetAction(), Target: req.GetTarget(),
		RequestedBy: req.GetRequestedBy(), GrantKey: request.GrantKey(req.GetTarget()),
	}
	if outcome == eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED && req.GetAction() == eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT {
		switch {
		case req.GetExpiresAt() != nil:
			res.ExpiresAt = req.GetExpiresAt()
		case req.GetDuration() != nil:
			res.ExpiresAt = timestamppb.New(now.Add(req.GetDuration().AsDuration()))
		}
	}
	return res
}
