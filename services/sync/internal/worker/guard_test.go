package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/telemetry"

	"github.com/accessbus/accessbus/services/sync/internal/api"
	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

// TestHeldRemovalsReleasedThroughTheAPI: a run that would remove over 20%
// of the grants holds them; SyncService.ConfirmRemovals starts the run that
// publishes them, and the run records say so.
func TestHeldRemovalsReleasedThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	e.connector(t, "c1", e.sim.URL, e.sim.Tokens.SuperAdmin)
	ctx := context.Background()
	w := e.worker(t, worker.Config{})
	first, err := w.Run(ctx, request("c1"))
	if err != nil {
		t.Fatal(err)
	}
	// Every membership the first run published, by group.
	members := map[string][]string{}
	total := 0
	for _, m := range e.access.WaitFor(t, int(first.GetEventsPublished()), 10*time.Second) {
		if m.Subject() != "access.c1.grant.added" {
			continue
		}
		total++
		ev := &eventsv1.GrantAdded{}
		if err := proto.Unmarshal(m.Data(), ev); err != nil {
			t.Fatal(err)
		}
		if gm := ev.GetGrant().GetGroupMembership(); gm != nil {
			members[gm.GetGroupId()] = append(members[gm.GetGroupId()], ev.GetGrant().GetPrincipal().GetId())
		}
	}
	by := &oktasim.LogActor{ID: e.sim.Generated.Admins.SuperAdmin, Type: "User", AlternateID: "admin", DisplayName: "Test Admin"}
	removed := 0
	for g, us := range members {
		for _, u := range us {
			if removed*4 > total { // over 25% of every grant
				break
			}
			if ok, err := e.sim.Org.RemoveMember(by, g, u); err == nil && ok {
				removed++
			}
		}
	}
	if removed*4 <= total {
		t.Fatalf("removed only %d of %d grants", removed, total)
	}
	seen := len(e.access.Messages())
	held, err := w.Run(ctx, request("c1"))
	if err != nil || !held.GetRemovalsHeld() || held.GetRemovalsHeldCount() < int64(removed) {
		t.Fatalf("second run: %v, held %v (%d), want at least %d held", err, held.GetRemovalsHeld(), held.GetRemovalsHeldCount(), removed)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.access.Messages()[seen:] {
		if m.Subject() == "access.c1.grant.removed" {
			t.Fatalf("a held run published %s", m.Subject())
		}
	}

	srv := httptest.NewServer(apiHandler(t, e))
	defer srv.Close()
	client := syncv1connect.NewSyncServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(auth.ClientKey(superAdminKey(t, e))))
	resp, err := client.ConfirmRemovals(ctx, connect.NewRequest(&syncv1.ConfirmRemovalsRequest{ConnectorId: "c1"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.GetRunId() != held.GetRunId() || resp.Msg.GetRemovalsHeldCount() != held.GetRemovalsHeldCount() {
		t.Fatalf("confirmed run %s (%d), want %s (%d)", resp.Msg.GetRunId(), resp.Msg.GetRemovalsHeldCount(), held.GetRunId(), held.GetRemovalsHeldCount())
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	waitUntil(t, e.access, func(ms []jetstream.Msg) bool {
		return count(ms[seen:], "access.c1.grant.removed") >= int(held.GetRemovalsHeldCount())
	})
	rs, err := client.ListRuns(ctx, connect.NewRequest(&syncv1.ListRunsRequest{ConnectorId: "c1"}))
	if err != nil {
		t.Fatal(err)
	}
	latest := rs.Msg.GetRuns()[0]
	if !latest.GetConfirmRemovals() || latest.GetRemovalsHeld() || latest.GetState() != syncv1.RunState_RUN_STATE_COMPLETED {
		t.Fatalf("latest run: confirm %v, held %v, state %s", latest.GetConfirmRemovals(), latest.GetRemovalsHeld(), latest.GetState())
	}
	// Nothing held any more: confirming again says so.
	if _, err := client.ConfirmRemovals(ctx, connect.NewRequest(&syncv1.ConfirmRemovalsRequest{ConnectorId: "c1"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("second confirm: %v, want FailedPrecondition", err)
	}
}

// apiHandler serves the SyncService on the test's stores, every call
// authenticated by its API key.
func apiHandler(t *testing.T, e *env) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(api.New(api.Deps{Bus: e.bus, Connectors: e.conns, Runs: e.runs, Leases: lease.New(e.leases, "api", nil)},
		connect.WithInterceptors(auth.Interceptor(authStore(t, e)))))
	return mux
}

// authStore opens the API keys and roles on the test's JetStream.
func authStore(t *testing.T, e *env) *auth.Store {
	t.Helper()
	s, err := auth.Open(context.Background(), e.js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// superAdminKey makes an API key of a Super Administrator.
func superAdminKey(t *testing.T, e *env) telemetry.Secret {
	t.Helper()
	ctx := context.Background()
	s := authStore(t, e)
	if err := s.Grant(ctx, "idn-test-admin", auth.SuperAdmin); err != nil {
		t.Fatal(err)
	}
	key, err := s.NewKey(ctx, "idn-test-admin", "test")
	if err != nil {
		t.Fatal(err)
	}
	return key
}
