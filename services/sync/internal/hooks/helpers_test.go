package hooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
)

const hookSecret = "hook-s3cret-0123456789-abcdefghij"

// env is one embedded JetStream with the streams, a connector store with
// connector c1 (hook secret set) and c2 (none), and a Receiver behind a
// real HTTP server.
type env struct {
	nats  *testkit.NATS
	js    jetstream.JetStream
	bus   *bus.Bus
	store *connectors.Store
	recv  *hooks.Receiver
	srv   *httptest.Server
	logs  *testkit.Buffer
}

func newEnv(t testing.TB, opts hooks.ReceiverOptions) *env {
	t.Helper()
	ctx := context.Background()
	n := testkit.StartNATS(t)
	js := n.JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := bus.New(js, bus.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	store, err := connectors.Open(ctx, js, connectors.Options{Key: key, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if _, err := store.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: "https://" + id + ".okta.com"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.SetHookSecret(ctx, "c1", telemetry.NewSecret(hookSecret)); err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	recv := hooks.NewReceiver(b, store, opts)
	mux := http.NewServeMux()
	mux.Handle(hooks.PathPrefix, recv)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{nats: n, js: js, bus: b, store: store, recv: recv, srv: srv, logs: logs}
}

// call makes one request to the receiver and returns the status and body.
func (e *env) call(t testing.TB, method, connector, auth string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+hooks.PathPrefix+connector, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// stored returns how many deliveries the OKTA_HOOKS stream holds.
func (e *env) stored(t testing.TB) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), subjects.StreamOktaHooks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// ev is a System Log event for delivery.
type ev struct {
	UUID      string        `json:"uuid"`
	Published string        `json:"published"`
	EventType string        `json:"eventType"`
	Outcome   hooks.Outcome `json:"outcome"`
	Actor     hooks.Actor   `json:"actor"`
	Target    []hooks.Actor `json:"target"`
}

func membershipEvent(uuid, typ, groupID, userID string) ev {
	return ev{
		UUID: uuid, Published: "2026-11-01T09:00:00.000Z", EventType: typ, Outcome: hooks.Outcome{Result: "SUCCESS"},
		Actor:  hooks.Actor{ID: "00uadmin", Type: "User"},
		Target: []hooks.Actor{{ID: userID, Type: "User"}, {ID: groupID, Type: "UserGroup"}},
	}
}

// delivery renders a delivery body.
func delivery(t testing.TB, eventID string, events ...ev) []byte {
	t.Helper()
	if events == nil {
		events = []ev{}
	}
	b, err := json.Marshal(map[string]any{
		"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
		"source": "https://c1.okta.com/api/v1/eventHooks/who1", "eventId": eventID,
		"eventTime": "2026-11-01T09:00:01.000Z", "contentType": "application/json",
		"data": map[string]any{"events": events},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
