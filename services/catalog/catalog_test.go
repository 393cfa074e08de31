package catalog_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/catalog"
)

// wait bounds how long a test waits for the consumer; it is a failure
// deadline, not an expectation of speed.
const wait = 20 * time.Second

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	js    jetstream.JetStream
	bus   *bus.Bus
	store *connectors.Store
	key   secrets.Key
	// changes records catalog.connector.status_changed from the start.
	changes *testkit.Recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	store, err := connectors.Open(ctx, js, connectors.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, bus: b, store: store, key: key,
		changes: testkit.Record(t, js, subjects.StreamCatalog, subjects.CatalogConnectorStatusChanged, true)}
}

// follow starts the status follower as the service runs it.
func (e *env) follow(t *testing.T) {
	t.Helper()
	sub, err := catalog.FollowRunStatus(context.Background(), e.bus, e.store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
}

func (e *env) create(t *testing.T, id string) {
	t.Helper()
	if _, err := e.store.Create(context.Background(), &eventsv1.Connector{Id: id, OktaDomain: id + ".okta.com"}); err != nil {
		t.Fatal(err)
	}
}

func at(min int) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(min) * time.Minute))
}

func started(c, run string, min int) *eventsv1.SyncRunStarted {
	return &eventsv1.SyncRunStarted{ConnectorId: c, RunId: run, StartedAt: at(min), Mode: eventsv1.SyncMode_SYNC_MODE_FULL}
}

func completed(c, run string, min int) *eventsv1.SyncRunCompleted {
	return &eventsv1.SyncRunCompleted{ConnectorId: c, RunId: run, StartedAt: at(min), CompletedAt: at(min + 1),
		Capabilities: &eventsv1.Capabilities{ReviewGroupMembership: true, ReviewAppAssignment: true}}
}

func failed(c, run string, min int, msg string) *eventsv1.SyncRunFailed {
	return &eventsv1.SyncRunFailed{ConnectorId: c, RunId: run, StartedAt: at(min), FailedAt: at(min + 1),
		Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN, Message: msg}
}

// publish puts a run event on its subject as the sync service does; idSuffix
// makes a republish that the stream does not drop (as after the dedupe
// window).
func (e *env) publish(t *testing.T, ev proto.Message, idSuffix string) uint64 {
	t.Helper()
	var subject, conn, run, verb string
	var err error
	switch ev := ev.(type) {
	case *eventsv1.SyncRunStarted:
		conn, run, verb = ev.GetConnectorId(), ev.GetRunId(), subjects.VerbStarted
		subject, err = subjects.SyncRunStarted(conn)
	case *eventsv1.SyncRunCompleted:
		conn, run, verb = ev.GetConnectorId(), ev.GetRunId(), subjects.VerbCompleted
		subject, err = subjects.SyncRunCompleted(conn)
	case *eventsv1.SyncRunFailed:
		conn, run, verb = ev.GetConnectorId(), ev.GetRunId(), subjects.VerbFailed
		subject, err = subjects.SyncRunFailed(conn)
	}
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.bus.Publish(context.Background(), subject, subjects.MsgID("sync", conn, "run", run, verb)+idSuffix, ev)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// waitHandled waits until the status consumer has acked (or terminated)
// every message up to stream sequence seq.
func (e *env) waitHandled(t *testing.T, seq uint64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for {
		cons, err := e.js.Consumer(ctx, subjects.StreamSync, catalog.StatusConsumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer acked up to %d, waiting for %d", info.AckFloor.Stream, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) status(t *testing.T, id string) *eventsv1.Connector {
	t.Helper()
	c, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decodeChange(t *testing.T, m jetstream.Msg) *eventsv1.ConnectorStatusChanged {
	t.Helper()
	ev := &eventsv1.ConnectorStatusChanged{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		t.Fatal(err)
	}
	if got := m.Headers().Get(bus.HeaderPayloadType); got != "accessbus.events.v1.ConnectorStatusChanged" {
		t.Fatalf("payload type %q", got)
	}
	want := subjects.MsgID("catalog", "connector", ev.GetConnector().GetId(), "status_changed", strconv.FormatUint(ev.GetConnector().GetRevision(), 10))
	if got := m.Headers().Get(bus.HeaderMsgID); got != want {
		t.Fatalf("Nats-Msg-Id %s, want %s", got, want)
	}
	return ev
}

func TestFollowerLifecycle(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	e.follow(t)

	e.publish(t, started("c1", "r1", 0), "")
	ch := decodeChange(t, e.changes.WaitFor(t, 1, wait)[0])
	if ch.GetPreviousStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED ||
		ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_SYNCING {
		t.Fatalf("first change %v", ch)
	}
	e.publish(t, completed("c1", "r1", 0), "")
	ch = decodeChange(t, e.changes.WaitFor(t, 2, wait)[1])
	if ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED ||
		!ch.GetConnector().GetCapabilities().GetReviewAppAssignment() || ch.GetConnector().GetStatusReason() != "" {
		t.Fatalf("second change %v", ch)
	}
	// A resync keeps the connector CONNECTED and publishes nothing; its
	// failure publishes ERROR with the run's message.
	e.publish(t, started("c1", "r2", 10), "")
	e.publish(t, failed("c1", "r2", 10, "Okta rejected the API token (E0000011): create a new token and update the connector"), "")
	msgs := e.changes.WaitFor(t, 3, wait)
	ch = decodeChange(t, msgs[2])
	if ch.GetPreviousStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED ||
		ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR ||
		!strings.HasPrefix(ch.GetConnector().GetStatusReason(), "Okta rejected the API token") {
		t.Fatalf("third change %v", ch)
	}
	if got := e.status(t, "c1"); !proto.Equal(got, ch.GetConnector()) {
		t.Fatalf("stored %v\npublished %v", got, ch.GetConnector())
	}
	// Removals held: CONNECTED with the command to run.
	c := completed("c1", "r3", 20)
	c.RemovalsHeld, c.RemovalsHeldCount = true, 4
	e.publish(t, started("c1", "r3", 20), "")
	e.publish(t, c, "")
	ch = decodeChange(t, e.changes.WaitFor(t, 5, wait)[4])
	if !strings.Contains(ch.GetConnector().GetStatusReason(), "accessbus sync confirm-removals --connector c1") {
		t.Fatalf("removals held change %v", ch)
	}
	if n := len(e.changes.Messages()); n != 5 {
		t.Fatalf("%d status changes, want 5", n)
	}
}

func TestFollowerOutOfOrderAndRedelivered(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	e.follow(t)

	e.publish(t, completed("c1", "r2", 10), "")          // the newer run's end first
	e.publish(t, started("c1", "r2", 10), "")            // its start, late
	e.publish(t, failed("c1", "r1", 0, "older run"), "") // an older run, late
	e.publish(t, completed("c1", "r2", 10), "-again")    // a republish of the latest
	last := e.publish(t, started("c1", "r1", 0), "")     // the oldest, last
	e.waitHandled(t, last)

	msgs := e.changes.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d status changes, want 1", len(msgs))
	}
	if ch := decodeChange(t, msgs[0]); ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED {
		t.Fatalf("change %v", ch)
	}
	if got := e.status(t, "c1").GetStatus(); got != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED {
		t.Fatalf("status regressed to %v", got)
	}
}

// TestFollowerFinishesInterruptedChange: the record was changed but the
// status change never published (a crash between the two); the redelivered
// run event publishes it.
func TestFollowerFinishesInterruptedChange(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	ev := failed("c1", "r1", 0, "bad token")
	res, err := e.store.ApplyRunFailed(context.Background(), ev)
	if err != nil || res.Change == nil {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	e.follow(t)
	e.publish(t, ev, "")
	ch := decodeChange(t, e.changes.WaitFor(t, 1, wait)[0])
	if ch.GetPreviousStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED ||
		ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR {
		t.Fatalf("change %v", ch)
	}
	// Once published, another redelivery publishes nothing.
	e.waitHandled(t, e.publish(t, ev, "-again"))
	if n := len(e.changes.Messages()); n != 1 {
		t.Fatalf("%d status changes, want 1", n)
	}
}

func TestFollowerUnknownConnector(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	e.follow(t)
	dlq := testkit.Record(t, e.js, subjects.StreamDLQ, subjects.FilterDLQ, true)

	e.publish(t, started("ghost", "r1", 0), "")
	e.publish(t, completed("ghost", "r1", 0), "")
	last := e.publish(t, completed("c1", "r1", 0), "")
	e.waitHandled(t, last)
	if n := len(dlq.Messages()); n != 0 {
		t.Fatalf("%d dead letters for an unknown connector", n)
	}
	msgs := e.changes.Messages()
	if len(msgs) != 1 || decodeChange(t, msgs[0]).GetConnector().GetId() != "c1" {
		t.Fatalf("status changes %d", len(msgs))
	}
	cons, err := e.js.Consumer(context.Background(), subjects.StreamSync, catalog.StatusConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d redeliveries: unknown connectors must be acked at once", info.NumRedelivered)
	}
}

func TestFollowerDeadLettersBadEvents(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	e.follow(t)
	dlq := testkit.Record(t, e.js, subjects.StreamDLQ, subjects.FilterDLQ, true)
	ctx := context.Background()

	subject, _ := subjects.SyncRunStarted("c1")
	// Not protobuf at all.
	if _, err := e.bus.PublishRaw(ctx, subject, "bad-1", "accessbus.events.v1.SyncRunStarted", []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	// A payload type that is not a run event.
	if _, err := e.bus.PublishRaw(ctx, subject, "bad-2", "accessbus.events.v1.GrantAdded", nil); err != nil {
		t.Fatal(err)
	}
	// The payload names another connector than the subject.
	data, _ := proto.Marshal(started("c2", "r1", 0))
	if _, err := e.bus.PublishRaw(ctx, subject, "bad-3", "accessbus.events.v1.SyncRunStarted", data); err != nil {
		t.Fatal(err)
	}
	got := dlq.WaitFor(t, 3, wait)
	classes := map[string]int{}
	for _, m := range got {
		dl := &eventsv1.DeadLetter{}
		if err := proto.Unmarshal(m.Data(), dl); err != nil {
			t.Fatal(err)
		}
		if dl.GetOriginalSubject() != subject || dl.GetConsumer() != catalog.StatusConsumer {
			t.Fatalf("dead letter %v", dl)
		}
		classes[dl.GetErrorClass().String()]++
	}
	if classes["ERROR_CLASS_UNDECODABLE"] != 2 || classes["ERROR_CLASS_PERMANENT"] != 1 {
		t.Fatalf("dead letter classes %v", classes)
	}
	// A message without the payload type header is decoded by its subject.
	m := &nats.Msg{Subject: subject, Header: nats.Header{bus.HeaderMsgID: {"no-header"}}}
	m.Data, _ = proto.Marshal(started("c1", "r1", 0))
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	ch := decodeChange(t, e.changes.WaitFor(t, 1, wait)[0])
	if ch.GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_SYNCING {
		t.Fatalf("change %v", ch)
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	health := service.NewHealth()
	health.Register(catalog.Name)
	deps := catalog.Deps{
		Deps:   service.Deps{Logger: slog.New(slog.DiscardHandler), Bus: e.bus, Health: health, Mux: http.NewServeMux()},
		Config: catalog.Config{SecretsKey: e.key},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- catalog.Run(ctx, deps) }()

	e.publish(t, started("c1", "r1", 0), "")
	e.changes.WaitFor(t, 1, wait)
	// Handling events, the service reports ready (an event may be handled
	// in the instant between the consumers' start and the report).
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		p := health.Problems(context.Background())
		if len(p) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready while handling events: %v", p)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRunRefusesWithoutKey(t *testing.T) {
	e := newEnv(t)
	deps := catalog.Deps{Deps: service.Deps{Logger: slog.New(slog.DiscardHandler), Bus: e.bus, Health: service.NewHealth()}}
	err := catalog.Run(context.Background(), deps)
	if !errors.Is(err, catalog.ErrNoSecretsKey) || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Fatalf("Run without a key: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	k, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(secrets.EnvKey, k.Encode())
	cfg, err := catalog.ConfigFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SecretsKey.Equal(k) {
		t.Fatal("the key from the environment was not read")
	}

	const bad = "dGhpcyBpcyBub3QgMzIgYnl0ZXM="
	t.Setenv(secrets.EnvKey, bad)
	_, err = catalog.ConfigFromEnv(context.Background())
	if !errors.Is(err, secrets.ErrInvalidKey) || !strings.Contains(err.Error(), secrets.EnvKey) || strings.Contains(err.Error(), bad) {
		t.Fatalf("bad key: %v", err)
	}

	t.Setenv(secrets.EnvKey, "")
	cfg, err = catalog.ConfigFromEnv(context.Background())
	if err != nil || !cfg.SecretsKey.IsZero() {
		t.Fatalf("empty key: %v, zero %v", err, cfg.SecretsKey.IsZero())
	}
}
