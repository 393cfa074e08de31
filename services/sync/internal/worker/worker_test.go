package worker_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/sync/internal/runs"
	"github.com/accessbus/accessbus/services/sync/internal/state"
	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

type env struct {
	sim    *oktasim.Running
	js     jetstream.JetStream
	bus    *bus.Bus
	conns  *connectors.Store
	state  *state.Store
	runs   *runs.Store
	leases lease.Store
	access *testkit.Recorder
	syncs  *testkit.Recorder
	tr     *http.Transport
}

func newEnv(t *testing.T) *env {
	return newEnvWith(t, oktasim.Config{Profile: "small", Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.NoLimits})
}

// newEnvWith serves the simulator with simCfg.
func newEnvWith(t *testing.T, simCfg oktasim.Config) *env {
	t.Helper()
	ctx := context.Background()
	sim, err := oktasim.Start(ctx, simCfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, tr: http.DefaultTransport.(*http.Transport).Clone(), leases: lease.NewMemory()}
	t.Cleanup(func() {
		e.tr.CloseIdleConnections()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	})
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	if e.bus, err = bus.New(js, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if e.conns, err = connectors.Open(ctx, js, connectors.Options{Key: key, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if e.state, err = state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if e.runs, err = runs.Open(ctx, js, runs.Options{Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	e.js = js
	e.access = testkit.Record(t, js, "ACCESS", "access.>", true)
	e.syncs = testkit.Record(t, js, "SYNC", "sync.*.run.>", true)
	return e
}

// connector creates connector id on domain with token ("" for none).
func (e *env) connector(t *testing.T, id, domain, token string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.conns.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: domain,
		Options: &eventsv1.ConnectorOptions{SyncInactiveApps: true, SyncInterval: durationpb.New(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if _, err := e.conns.SetToken(ctx, id, telemetry.NewSecret(token)); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) worker(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	cfg.HTTPClient = &http.Client{Transport: e.tr}
	// The simulator sends no rate-limit headers here, so the budget paces at
	// Workforce limits: a fast clock keeps the tests quick.
	cfg.TimeScale = 1000
	// DNS is the world outside the test: acme-gone.okta.com does not exist.
	cfg.LookupHost = func(ctx context.Context, host string) ([]string, error) {
		if host == "acme-gone.okta.com" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return net.DefaultResolver.LookupHost(ctx, host)
	}
	if cfg.ScheduleEvery == 0 {
		cfg.ScheduleEvery = -1
	}
	w, err := worker.New(worker.Deps{Bus: e.bus, Connectors: e.conns, State: e.state, Runs: e.runs,
		Leases: lease.New(e.leases, t.Name(), nil), RateStore: ratelimit.NewMemoryStore()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func request(id string) *eventsv1.SyncRequest {
	return &eventsv1.SyncRequest{RequestId: "r-" + id, ConnectorId: id, Mode: eventsv1.SyncMode_SYNC_MODE_FULL, RequestedBy: "test"}
}

func TestRunRecordsAndPublishes(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	w := e.worker(t, worker.Config{})
	ctx := context.Background()
	rec, err := w.Run(ctx, request("c1"))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rec.GetState() != syncv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("state %s: %s", rec.GetState(), rec.GetMessage())
	}
	if rec.GetEventsPublished() == 0 || len(rec.GetApiCalls()) == 0 || len(rec.GetLog()) < 2 {
		t.Fatalf("record lacks counts or log: %d events, calls %v, %d log lines", rec.GetEventsPublished(), rec.GetApiCalls(), len(rec.GetLog()))
	}
	got, err := e.runs.Get(ctx, "c1", "")
	if err != nil || got.GetRunId() != rec.GetRunId() || got.GetState() != syncv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("latest run %v (%v), want %s completed", got.GetRunId(), err, rec.GetRunId())
	}
	if n := len(e.access.WaitFor(t, int(rec.GetEventsPublished()), 10*time.Second)); n != int(rec.GetEventsPublished()) {
		t.Fatalf("%d access events, run says %d", n, rec.GetEventsPublished())
	}
	for _, l := range rec.GetLog() {
		for _, v := range append([]string{l.GetMessage()}, values(l.GetAttrs())...) {
			if contains(v, e.sim.Tokens.SuperAdmin) {
				t.Fatalf("the token is in the run's log: %q", l.GetMessage())
			}
		}
	}
}

// TestFailuresEndWithReason: a domain that cannot be an Okta org, a token
// Okta rejects and a missing token each fail the run with their reason and
// publish no access events.
func TestFailuresEndWithReason(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "baddomain", "acme-gone.okta.com", "x")
	e.connector(t, "badtoken", e.sim.URL, "00notatoken")
	e.connector(t, "notoken", e.sim.URL, "")
	w := e.worker(t, worker.Config{})
	for id, want := range map[string]eventsv1.SyncFailureReason{
		"baddomain": eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN,
		"badtoken":  eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN,
		"notoken":   eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN,
	} {
		rec, err := w.Run(context.Background(), request(id))
		if err == nil || rec.GetState() != syncv1.RunState_RUN_STATE_FAILED || rec.GetFailureReason() != want || rec.GetMessage() == "" {
			t.Errorf("%s: err %v, state %s, reason %s, message %q; want FAILED %s with a message", id, err, rec.GetState(), rec.GetFailureReason(), rec.GetMessage(), want)
		}
		if contains(rec.GetMessage(), "00notatoken") {
			t.Errorf("%s: the token is in the message: %q", id, rec.GetMessage())
		}
	}
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool {
		return count(ms, "sync.baddomain.run.failed") == 1 && count(ms, "sync.badtoken.run.failed") == 1 && count(ms, "sync.notoken.run.failed") == 1
	})
	time.Sleep(300 * time.Millisecond)
	if got := e.access.Messages(); len(got) != 0 {
		t.Fatalf("failed runs published %d access events, first %s", len(got), got[0].Subject())
	}
}

func TestUnknownConnectorIsPermanent(t *testing.T) {
	e := newEnv(t)
	w := e.worker(t, worker.Config{})
	if _, err := w.Run(context.Background(), request("nosuch")); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

// TestTwoWorkersNeverOverlap: two workers consuming the same queue with a
// shared lease store never sync one connector at the same time, and every
// request is run once.
func TestTwoWorkersNeverOverlap(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	ctx := context.Background()
	var ws []*worker.Worker
	for range 2 {
		w := e.worker(t, worker.Config{Concurrency: 2, BusyRetry: 100 * time.Millisecond})
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	defer func() {
		for _, w := range ws {
			_ = w.Stop(ctx)
		}
	}()
	const n = 4
	for i := range n {
		req := request("c1")
		req.RequestId = "r" + string(rune('0'+i))
		if _, err := worker.Request(ctx, e.bus, req); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.completed") >= n })
	rs, err := e.runs.List(ctx, "c1", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != n {
		t.Fatalf("%d runs recorded, want %d", len(rs), n)
	}
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			a, b := rs[i], rs[j]
			if a.GetStartedAt().AsTime().Before(b.GetFinishedAt().AsTime()) && b.GetStartedAt().AsTime().Before(a.GetFinishedAt().AsTime()) {
				t.Fatalf("runs %s and %s overlap", a.GetRunId(), b.GetRunId())
			}
		}
	}
}

// TestScheduleRunsDueConnectors: a connector with a token and no run is
// due; after its run it is not, until its token changes.
func TestScheduleRunsDueConnectors(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	e.connector(t, "idle", e.sim.URL, "")
	ctx := context.Background()
	w := e.worker(t, worker.Config{ScheduleEvery: 200 * time.Millisecond})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.completed") == 1 })
	time.Sleep(time.Second) // several scheduler passes
	if got := count(e.syncs.Messages(), "sync.c1.run.started"); got != 1 {
		t.Fatalf("%d runs started, want 1: the connector was not due again", got)
	}
	if got := count(e.syncs.Messages(), "sync.idle.run.started"); got != 0 {
		t.Fatalf("a connector without a token was synced")
	}
	if _, err := e.conns.SetToken(ctx, "c1", telemetry.NewSecret(e.sim.Tokens.ReadOnlyAdmin)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, e.syncs, func(ms []jetstream.Msg) bool { return count(ms, "sync.c1.run.completed") == 2 })
}

// waitUntil polls r until ok holds, or fails after 60 s.
func waitUntil(t *testing.T, r *testkit.Recorder, ok func([]jetstream.Msg) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok(r.Messages()) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 60s; %d messages recorded", len(r.Messages()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(ms []jetstream.Msg, subject string) int {
	n := 0
	for _, m := range ms {
		if m.Subject() == subject {
			n++
		}
	}
	return n
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func contains(s, sub string) bool { return sub != "" && strings.Contains(s, sub) }
