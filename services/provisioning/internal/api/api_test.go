package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/auth/authtest"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1/provisioningv1connect"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/provisioning/internal/api"
	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// now is the API's clock in these tests.
var now = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

// env is the ProvisioningService behind a real HTTP server on an embedded
// JetStream with connector c1 (owned by ann, a Connector Administrator),
// every call authenticated by its API key. The tests play the work-queue
// consumer by writing the ledger, as the consumer does: that is where the
// API ends.
type env struct {
	js     jetstream.JetStream
	ledger *ledger.Store
	auth   *auth.Store
	srv    *httptest.Server
	// logs is the bus's log, at debug level.
	logs *testkit.Buffer
	// client calls as a Super Administrator.
	client provisioningv1connect.ProvisioningServiceClient
	// stored holds every request stored on the PROVISIONING stream.
	stored *testkit.Recorder
	// sent counts every publish on provisioning.*.request, including those
	// the stream drops as duplicates.
	sent *nats.Subscription
	nc   *nats.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	n := testkit.StartNATS(t)
	js := n.JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	b, err := bus.New(js, bus.Options{Logger: telemetry.NewLogger(logs, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	conns, err := connectors.Open(ctx, js, connectors.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conns.Create(ctx, &eventsv1.Connector{Id: "c1", OktaDomain: "https://c1.okta.com",
		Owners: []*eventsv1.ConnectorOwner{{IdentityId: annID, Email: "ann@example.com"}}}); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(ctx, js, ledger.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.Open(ctx, js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	path, h := api.New(api.Deps{Bus: b, Ledger: led, Connectors: conns, Now: func() time.Time { return now }},
		connect.WithInterceptors(auth.Interceptor(keys)))
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	nc := n.Connect(t)
	sent, err := nc.SubscribeSync("provisioning.*.request")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		js: js, ledger: led, auth: keys, srv: srv, logs: logs,
		stored: testkit.Record(t, js, "PROVISIONING", "provisioning.*.request", true),
		sent:   sent, nc: nc,
	}
	e.client = e.clientWithKey(e.key(t, "idn-root", auth.SuperAdmin))
	return e
}

// annID is the identity of c1's owner.
const annID = "idn-ann"

// key makes an API key for identity, holding roles.
func (e *env) key(t *testing.T, identity string, roles ...auth.Role) telemetry.Secret {
	t.Helper()
	return authtest.Key(t, e.auth, identity, "test", roles...)
}

// clientWithKey calls the API with key (none when unset).
func (e *env) clientWithKey(key telemetry.Secret) provisioningv1connect.ProvisioningServiceClient {
	return provisioningv1connect.NewProvisioningServiceClient(e.srv.Client(), e.srv.URL, connect.WithInterceptors(auth.ClientKey(key)))
}

func membership(id string) *eventsv1.ProvisioningRequest {
	return &eventsv1.ProvisioningRequest{
		RequestId: id, ConnectorId: "c1", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
			GroupMembership: &eventsv1.GroupMembershipTarget{UserId: "00uann", GroupId: "00geng"}}},
		RequestedBy: "test", Reason: "ticket 1",
	}
}

// submitWith submits req, not waiting, with client.
func (e *env) submitWith(client provisioningv1connect.ProvisioningServiceClient, req *eventsv1.ProvisioningRequest) (*provv1.RequestRecord, error) {
	resp, err := client.Submit(context.Background(), connect.NewRequest(&provv1.SubmitRequest{Request: req}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetRecord(), nil
}

func (e *env) submit(req *eventsv1.ProvisioningRequest, wait bool, timeout time.Duration) (*provv1.RequestRecord, error) {
	m := &provv1.SubmitRequest{Request: req, Wait: wait}
	if timeout != 0 {
		m.WaitTimeout = durationpb.New(timeout)
	}
	resp, err := e.client.Submit(context.Background(), connect.NewRequest(m))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetRecord(), nil
}

// sentCount is how many requests were published so far.
func (e *env) sentCount(t *testing.T) int {
	t.Helper()
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n, _, err := e.sent.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// consume plays the consumer for the next request on the queue: it takes
// it (Begin), then moves its record through the given states; COMPLETED
// carries result. It may run in its own goroutine, so it reports with
// t.Error.
func (e *env) consume(t *testing.T, nth int, result *eventsv1.ProvisioningResult, states ...provv1.RequestState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	msgs := e.stored.Messages()
	for ; len(msgs) < nth; msgs = e.stored.Messages() {
		if time.Now().After(deadline) {
			t.Errorf("request %d never reached the queue", nth)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	req := &eventsv1.ProvisioningRequest{}
	if err := proto.Unmarshal(msgs[nth-1].Data(), req); err != nil {
		t.Error(err)
		return
	}
	ctx := context.Background()
	rec, rev, err := e.ledger.Begin(ctx, req)
	if err != nil {
		t.Error(err)
		return
	}
	for _, st := range states {
		time.Sleep(20 * time.Millisecond)
		rec.State = st
		if st == provv1.RequestState_REQUEST_STATE_COMPLETED {
			rec.Result = result
		}
		if rev, err = e.ledger.Update(ctx, rec, rev); err != nil {
			t.Error(err)
			return
		}
	}
}

func succeeded(req *eventsv1.ProvisioningRequest) *eventsv1.ProvisioningResult {
	return &eventsv1.ProvisioningResult{
		RequestId: req.GetRequestId(), ConnectorId: req.GetConnectorId(), Outcome: eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED,
		Action: req.GetAction(), Target: req.GetTarget(), RequestedBy: req.GetRequestedBy(),
		GrantKey: request.GrantKey(req.GetTarget()), CompletedAt: timestamppb.New(now), Message: "added",
	}
}

// TestSubmitInvalidListsEveryField: an invalid request is refused with
// every field error in the message and as details, never echoes a profile
// value, and publishes nothing.
func TestSubmitInvalidListsEveryField(t *testing.T) {
	e := newEnv(t)
	profile, _ := structpb.NewStruct(map[string]any{"apiToken": "hunter2-S3cret-value"})
	bad := &eventsv1.ProvisioningRequest{
		ConnectorId: "C1", Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT,
		Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{
			AppAssignment: &eventsv1.AppAssignmentTarget{AppId: "0oa-bad!", Profile: profile}}},
		Expiry: &eventsv1.ProvisioningRequest_ExpiresAt{ExpiresAt: timestamppb.New(now.Add(-time.Hour))},
	}
	_, err := e.submit(bad, true, 0)
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("want invalid_argument, got %v", err)
	}
	fields := []string{"request_id:", "connector_id:", "requested_by:", "target.app_assignment.app_id:",
		"target.app_assignment.assignee:", "target.app_assignment.profile.apiToken:", "expires_at:"}
	for _, f := range fields {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("message lacks %s: %v", f, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a profile value reached the error: %v", err)
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) || len(cerr.Details()) != len(fields) {
		t.Fatalf("want %d field error details: %v", len(fields), err)
	}
	v, err := cerr.Details()[0].Value()
	if fe, ok := v.(*eventsv1.FieldError); err != nil || !ok || fe.GetField() != "request_id" {
		t.Fatalf("first detail: %v %v", v, err)
	}

	// An empty submit names the rest.
	_, err = e.submit(nil, false, 0)
	for _, f := range []string{"request_id:", "connector_id:", "action:", "requested_by:", "target:"} {
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), f) {
			t.Errorf("empty request: want %s in %v", f, err)
		}
	}
	// The expiry scheduler's ids are reserved.
	if _, err := e.submit(membership("expiry:r1"), false, 0); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id: reserved") {
		t.Fatalf("expiry id: %v", err)
	}
	scheduler := membership("r1")
	scheduler.RequestedBy = request.ExpiryRequester
	if _, err := e.submit(scheduler, false, 0); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "requested_by: reserved") {
		t.Fatalf("the scheduler's requested_by: %v", err)
	}
	// A wait past the limit is refused before anything is published.
	if _, err := e.submit(membership("r-wait"), true, 6*time.Minute); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "wait_timeout") {
		t.Fatalf("wait of 6m: %v", err)
	}
	if _, err := e.submit(membership("r-wait"), true, -time.Second); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("negative wait: %v", err)
	}
	if n := e.sentCount(t); n != 0 {
		t.Fatalf("%d requests published", n)
	}
}

// TestSubmitUnknownConnector: NotFound, nothing published.
func TestSubmitUnknownConnector(t *testing.T) {
	e := newEnv(t)
	req := membership("r1")
	req.ConnectorId = "nope"
	_, err := e.submit(req, false, 0)
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("want not_found naming the connector: %v", err)
	}
	if n := e.sentCount(t); n != 0 {
		t.Fatalf("%d requests published", n)
	}
}

// TestSubmitTwicePublishesOnce: the request is published with its
// message id, payload type and submitted_at; a second submission before
// the consumer takes it is dropped by the stream; once the consumer has a
// record, a submission publishes nothing and answers the first request's
// record.
func TestSubmitTwicePublishesOnce(t *testing.T) {
	e := newEnv(t)
	req := membership("ticket-7/step 1")
	for range 2 {
		rec, err := e.submit(req, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rec.GetState() != provv1.RequestState_REQUEST_STATE_RECEIVED || rec.GetAttempts() != 0 || rec.GetReceivedAt() != nil {
			t.Fatalf("not yet taken: %v", rec)
		}
		if !rec.GetRequest().GetSubmittedAt().AsTime().Equal(now) {
			t.Fatalf("submitted_at %v", rec.GetRequest().GetSubmittedAt())
		}
	}
	msgs := e.stored.WaitFor(t, 1, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got := len(e.stored.Messages()); got != 1 {
		t.Fatalf("%d requests stored, want 1", got)
	}
	m := msgs[0]
	if m.Subject() != "provisioning.c1.request" || m.Headers().Get(bus.HeaderMsgID) != request.MsgID(req) ||
		m.Headers().Get(bus.HeaderPayloadType) != "accessbus.events.v1.ProvisioningRequest" {
		t.Fatalf("message %s headers %v", m.Subject(), m.Headers())
	}
	got := &eventsv1.ProvisioningRequest{}
	if err := proto.Unmarshal(m.Data(), got); err != nil || got.GetRequestId() != req.GetRequestId() || !got.GetSubmittedAt().AsTime().Equal(now) {
		t.Fatalf("payload %v: %v", got, err)
	}

	e.consume(t, 1, nil)
	before := e.sentCount(t)
	other := membership("ticket-7/step 1")
	other.Reason = "something else"
	rec, err := e.submit(other, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetAttempts() != 1 || rec.GetReceivedAt() == nil || rec.GetRequest().GetReason() != "ticket 1" {
		t.Fatalf("want the stored record of the first request: %v", rec)
	}
	if after := e.sentCount(t); after != before {
		t.Fatalf("a known request was published again (%d then %d publishes)", before, after)
	}
}

// TestSubmitWaitSeesCompletion: with wait, Submit answers once the
// consumer completed the record; a later submission answers the same
// record at once, without publishing.
func TestSubmitWaitSeesCompletion(t *testing.T) {
	e := newEnv(t)
	req := membership("r-wait")
	req.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(2 * time.Hour)}
	res := succeeded(req)
	res.ExpiresAt = timestamppb.New(now.Add(2 * time.Hour))
	go e.consume(t, 1, res, provv1.RequestState_REQUEST_STATE_WRITING, provv1.RequestState_REQUEST_STATE_COMPLETED)
	rec, err := e.submit(req, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED || !proto.Equal(rec.GetResult(), res) {
		t.Fatalf("record %v", rec)
	}
	before := e.sentCount(t)
	again, err := e.submit(req, true, 0)
	if err != nil || !proto.Equal(again, rec) {
		t.Fatalf("again: %v %v", again, err)
	}
	if e.sentCount(t) != before {
		t.Fatal("a completed request was published again")
	}
}

// TestSubmitWaitRunsOut: a wait that ends before the result answers the
// record as it is, without an error: RECEIVED (not taken) when no consumer
// took it, else the consumer's latest state.
func TestSubmitWaitRunsOut(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	rec, err := e.submit(membership("r1"), true, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetState() != provv1.RequestState_REQUEST_STATE_RECEIVED || rec.GetAttempts() != 0 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("record %v after %s", rec, time.Since(start))
	}
	e.consume(t, 1, nil, provv1.RequestState_REQUEST_STATE_WRITING)
	rec, err = e.submit(membership("r1"), true, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetState() != provv1.RequestState_REQUEST_STATE_WRITING || rec.GetAttempts() != 1 {
		t.Fatalf("record %v", rec)
	}
}

// TestGetAndList: Get and List answer from the ledger, with NotFound and
// InvalidArgument where they apply.
func TestGetAndList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	get := func(connector, id string) (*provv1.RequestRecord, error) {
		resp, err := e.client.Get(ctx, connect.NewRequest(&provv1.GetRequest{ConnectorId: connector, RequestId: id}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetRecord(), nil
	}
	list := func(m *provv1.ListRequest) (*provv1.ListResponse, error) {
		resp, err := e.client.List(ctx, connect.NewRequest(m))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}

	if _, err := get("c1", "never-sent"); connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `"never-sent"`) {
		t.Fatalf("unknown request: %v", err)
	}
	if _, err := get("nope", "r1"); connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown connector: %v", err)
	}
	if _, err := get("C1", "r1"); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad connector id: %v", err)
	}
	if _, err := get("c1", ""); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "request_id") {
		t.Fatalf("no request id: %v", err)
	}

	for i, id := range []string{"r1", "r2", "r3"} {
		if _, err := e.submit(membership(id), false, 0); err != nil {
			t.Fatal(err)
		}
		var res *eventsv1.ProvisioningResult
		var states []provv1.RequestState
		if id != "r3" {
			res, states = succeeded(membership(id)), []provv1.RequestState{provv1.RequestState_REQUEST_STATE_COMPLETED}
		}
		e.consume(t, i+1, res, states...)
	}
	rec, err := get("c1", "r2")
	if err != nil || rec.GetState() != provv1.RequestState_REQUEST_STATE_COMPLETED || rec.GetResult().GetRequestId() != "r2" {
		t.Fatalf("get r2: %v %v", rec, err)
	}
	l, err := list(&provv1.ListRequest{ConnectorId: "c1"})
	if err != nil || len(l.GetRecords()) != 3 || l.GetRecords()[0].GetRequest().GetRequestId() != "r3" || l.GetRecords()[2].GetRequest().GetRequestId() != "r1" {
		t.Fatalf("list: %v %v", l, err)
	}
	if l, err := list(&provv1.ListRequest{ConnectorId: "c1", Limit: 2}); err != nil || len(l.GetRecords()) != 2 {
		t.Fatalf("list limit 2: %v %v", l, err)
	}
	for _, limit := range []int32{-1, 1001} {
		if _, err := list(&provv1.ListRequest{ConnectorId: "c1", Limit: limit}); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("limit %d: %v", limit, err)
		}
	}
	if _, err := list(&provv1.ListRequest{ConnectorId: "nope"}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown connector: %v", err)
	}

	// The active time-bound grants, soonest expiry first.
	if l, err := list(&provv1.ListRequest{ConnectorId: "c1", ActiveTimeBound: true}); err != nil || len(l.GetGrants()) != 0 || len(l.GetRecords()) != 0 {
		t.Fatalf("no grants yet: %v %v", l, err)
	}
	for i, id := range []string{"r1", "r2"} {
		tgt := membership(id).GetTarget()
		tgt.GetGroupMembership().UserId = "00u" + id
		if err := e.ledger.PutGrant(ctx, &provv1.TimeBoundGrant{ConnectorId: "c1", RequestId: id, Target: tgt, GrantKey: request.GrantKey(tgt),
			ExpiresAt: timestamppb.New(now.Add(time.Duration(2-i) * time.Hour))}); err != nil {
			t.Fatal(err)
		}
	}
	l, err = list(&provv1.ListRequest{ConnectorId: "c1", ActiveTimeBound: true})
	if err != nil || len(l.GetGrants()) != 2 || l.GetGrants()[0].GetRequestId() != "r2" || len(l.GetRecords()) != 0 {
		t.Fatalf("grants: %v %v", l, err)
	}
	if l, err := list(&provv1.ListRequest{ConnectorId: "c1", ActiveTimeBound: true, Limit: 1}); err != nil || len(l.GetGrants()) != 1 {
		t.Fatalf("grants limit 1: %v %v", l, err)
	}
}

// TestUnavailable: when NATS cannot store the request or the ledger cannot
// be read, the API says Unavailable, and nothing is published.
func TestUnavailable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, "PROVISIONING"); err != nil {
		t.Fatal(err)
	}
	// JetStream answers nothing: the publish gives up after its timeout.
	if _, err := e.submit(membership("r1"), false, 0); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), `submit request "r1"`) {
		t.Fatalf("no stream: %v", err)
	}
	if err := e.js.DeleteKeyValue(ctx, ledger.GrantsBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.List(ctx, connect.NewRequest(&provv1.ListRequest{ConnectorId: "c1", ActiveTimeBound: true})); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("no grants bucket: %v", err)
	}
	if err := e.js.DeleteKeyValue(ctx, ledger.RequestsBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := e.submit(membership("r1"), true, 0); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("no requests bucket, submit: %v", err)
	}
	if _, err := e.client.Get(ctx, connect.NewRequest(&provv1.GetRequest{ConnectorId: "c1", RequestId: "r1"})); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("no requests bucket, get: %v", err)
	}
	if _, err := e.client.List(ctx, connect.NewRequest(&provv1.ListRequest{ConnectorId: "c1"})); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("no requests bucket, list: %v", err)
	}
	if err := e.js.DeleteKeyValue(ctx, connectors.BucketConnectors); err != nil {
		t.Fatal(err)
	}
	if _, err := e.submit(membership("r1"), false, 0); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("no connectors bucket: %v", err)
	}
}
