package syncsvc_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/access/v1/accessv1connect"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	syncsvc "github.com/accessbus/accessbus/services/sync"
)

// TestAccessServiceNeedsAKey: the AccessService is not built without the
// API keys; served, it refuses every call (the streaming export too)
// without a key or with an unknown one, with Unauthenticated, before it
// reads or holds anything; any identity with a key reads, whatever its
// roles. No key reaches the log.
func TestAccessServiceNeedsAKey(t *testing.T) {
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	var holds atomic.Int32
	logs := &testkit.Buffer{}
	cfg := syncsvc.AccessConfig{
		Hold: func(context.Context, string) (func(), error) {
			holds.Add(1)
			return func() {}, nil
		},
		Exists:       func(_ context.Context, id string) (bool, error) { return id == "c1", nil },
		StateStorage: jetstream.MemoryStorage,
		Log:          telemetry.NewLogger(logs, slog.LevelDebug),
	}
	if _, _, err := syncsvc.AccessHandler(ctx, js, cfg); err == nil || !strings.Contains(err.Error(), "Auth is required") {
		t.Fatalf("without the API keys: %v", err)
	}
	keys, err := auth.Open(ctx, js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = keys
	path, h, err := syncsvc.AccessHandler(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := func(key telemetry.Secret) accessv1connect.AccessServiceClient {
		return accessv1connect.NewAccessServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(auth.ClientKey(key)))
	}
	// every makes each RPC once and returns their errors by name.
	every := func(c accessv1connect.AccessServiceClient) map[string]error {
		_, list := c.ListGrants(ctx, connect.NewRequest(&accessv1.ListGrantsRequest{ConnectorId: "c1"}))
		_, res := c.ListResources(ctx, connect.NewRequest(&accessv1.ListResourcesRequest{ConnectorId: "c1"}))
		var export error
		stream, err := c.ExportSnapshot(ctx, connect.NewRequest(&accessv1.ExportSnapshotRequest{ConnectorId: "c1"}))
		if err != nil {
			export = err
		} else {
			header := false
			for stream.Receive() {
				header = header || stream.Msg().GetHeader().GetConnectorId() == "c1"
			}
			if export = stream.Err(); export == nil && !header {
				t.Error("the export has no header of c1")
			}
			_ = stream.Close()
		}
		return map[string]error{"ListGrants": list, "ListResources": res, "ExportSnapshot": export}
	}

	unknown := telemetry.NewSecret(auth.KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	for name, key := range map[string]telemetry.Secret{"no key": {}, "unknown key": unknown} {
		for rpc, err := range every(client(key)) {
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s, %s: want unauthenticated, got %v", name, rpc, err)
				continue
			}
			if name == "no key" && !strings.Contains(err.Error(), "ACCESSBUS_API_KEY") {
				t.Errorf("%s, %s: the refusal does not say how to send a key: %v", name, rpc, err)
			}
		}
	}
	if n := holds.Load(); n != 0 {
		t.Fatalf("the connector was held %d times for callers without a key", n)
	}

	// An identity without a platform role reads.
	reader, err := keys.NewKey(ctx, "idn-reader", "test")
	if err != nil {
		t.Fatal(err)
	}
	for rpc, err := range every(client(reader)) {
		if err != nil {
			t.Errorf("a reader's %s: %v", rpc, err)
		}
	}
	if holds.Load() != 1 {
		t.Fatalf("the reader's export held the connector %d times, want 1", holds.Load())
	}
	for _, k := range []string{unknown.Reveal(), reader.Reveal()} {
		if strings.Contains(logs.String(), k) {
			t.Fatal("a key reached the log")
		}
	}
}
