package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
)

// The SyncService's RPCs as the authorization sees them: reads any
// authenticated caller may make, and actions on a connector.
var (
	readRPCs = []string{"GetRun", "ListRuns", "GetStatus", "GetCapabilities", "GetHook"}
	actRPCs  = []string{"TriggerSync", "ConfirmRemovals", "RegisterHook", "UnregisterHook", "SetHookSecret"}
)

// call makes one RPC of the SyncService on connector with client.
func call(client syncv1connect.SyncServiceClient, rpc, connector string) error {
	ctx := context.Background()
	var err error
	switch rpc {
	case "GetRun":
		_, err = client.GetRun(ctx, connect.NewRequest(&syncv1.GetRunRequest{ConnectorId: connector}))
	case "ListRuns":
		_, err = client.ListRuns(ctx, connect.NewRequest(&syncv1.ListRunsRequest{ConnectorId: connector}))
	case "GetStatus":
		_, err = client.GetStatus(ctx, connect.NewRequest(&syncv1.GetStatusRequest{ConnectorId: connector}))
	case "GetCapabilities":
		_, err = client.GetCapabilities(ctx, connect.NewRequest(&syncv1.GetCapabilitiesRequest{ConnectorId: connector}))
	case "GetHook":
		_, err = client.GetHook(ctx, connect.NewRequest(&syncv1.GetHookRequest{ConnectorId: connector}))
	case "TriggerSync":
		_, err = client.TriggerSync(ctx, connect.NewRequest(&syncv1.TriggerSyncRequest{ConnectorId: connector, Reason: "auth test"}))
	case "ConfirmRemovals":
		_, err = client.ConfirmRemovals(ctx, connect.NewRequest(&syncv1.ConfirmRemovalsRequest{ConnectorId: connector}))
	case "RegisterHook":
		_, err = client.RegisterHook(ctx, connect.NewRequest(&syncv1.RegisterHookRequest{ConnectorId: connector, Url: "https://accessbus.example.com"}))
	case "UnregisterHook":
		_, err = client.UnregisterHook(ctx, connect.NewRequest(&syncv1.UnregisterHookRequest{ConnectorId: connector}))
	case "SetHookSecret":
		_, err = client.SetHookSecret(ctx, connect.NewRequest(&syncv1.SetHookSecretRequest{ConnectorId: connector, Secret: consoleSecret}))
	default:
		panic("unknown RPC " + rpc)
	}
	return err
}

// ownedConnector creates connector "owned" with ann (annID) as its owner,
// an API token, and a finished run that held removals.
func ownedConnector(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.store.Create(ctx, &eventsv1.Connector{Id: "owned", OktaDomain: "https://owned.okta.com",
		Owners: []*eventsv1.ConnectorOwner{{IdentityId: annID, Email: "ann@example.com"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetToken(ctx, "owned", telemetry.NewSecret("00TestTokenOwned0123456789abcdefghijklmnop")); err != nil {
		t.Fatal(err)
	}
	if err := e.runs.Put(ctx, &syncv1.Run{RunId: "run1", ConnectorId: "owned", Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
		State: syncv1.RunState_RUN_STATE_COMPLETED, RemovalsHeld: true, RemovalsHeldCount: 3, RequestedBy: "scheduler"}); err != nil {
		t.Fatal(err)
	}
}

const annID = "idn-ann"

// TestEveryCallNeedsAKey: without a key, or with one the service does not
// know, every RPC is refused with Unauthenticated, saying how to send one,
// before anything is read or done; the key is in no answer and no log.
func TestEveryCallNeedsAKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	ownedConnector(t, e)
	sent := testkit.Record(t, e.js, "SYNC", "sync.owned.request", true)
	unknown := telemetry.NewSecret(auth.KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	for name, key := range map[string]telemetry.Secret{"no key": {}, "unknown key": unknown} {
		client := e.clientWithKey(key)
		for _, rpc := range append(append([]string{}, readRPCs...), actRPCs...) {
			err := call(client, rpc, "owned")
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s, %s: want unauthenticated, got %v", name, rpc, err)
				continue
			}
			if name == "no key" && (!strings.Contains(err.Error(), "Authorization: Bearer <API key>") || !strings.Contains(err.Error(), "ACCESSBUS_API_KEY")) {
				t.Errorf("%s, %s: the refusal does not say how to send a key: %v", name, rpc, err)
			}
			if name == "unknown key" && (!strings.Contains(err.Error(), "unknown API key") || strings.Contains(err.Error(), unknown.Reveal())) {
				t.Errorf("%s, %s: %v", name, rpc, err)
			}
		}
	}
	if n := len(sent.Messages()); n != 0 {
		t.Fatalf("%d sync requests published without a key", n)
	}
	if _, _, err := e.store.HookSecretVersion(context.Background(), "owned"); err == nil {
		t.Fatal("a hook secret was stored without a key")
	}
	if strings.Contains(e.logs.String(), unknown.Reveal()) {
		t.Fatal("a key reached the log")
	}
}

// TestActingTakesOwnerOrSuperAdmin: any caller with a key reads every
// connector's runs, status, capabilities and hook; acting on a connector
// (sync, confirm removals, hooks) takes an owner of it with the Connector
// Administrator role, or a Super Administrator. Everyone else is refused
// with PermissionDenied naming what they lack, and nothing happens. A
// sync request records who asked: the caller's identity.
func TestActingTakesOwnerOrSuperAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	ownedConnector(t, e)
	ctx := context.Background()
	sent := testkit.Record(t, e.js, "SYNC", "sync.owned.request", true)
	bob := e.key(t, "idn-bob", auth.ConnectorAdmin)
	eve := e.key(t, "idn-eve")
	ann := e.key(t, annID, auth.ConnectorAdmin)

	for _, tc := range []struct {
		name string
		key  telemetry.Secret
		says []string
	}{
		{"connector admin, not an owner", bob, []string{"on connector owned", "its owners are ann@example.com", "idn-bob", "not an owner"}},
		{"no role", eve, []string{"on connector owned", "Super Administrator role, or the Connector Administrator role", "idn-eve", "accessbus admin roles assign"}},
	} {
		client := e.clientWithKey(tc.key)
		for _, rpc := range readRPCs {
			if err := call(client, rpc, "owned"); err != nil {
				t.Errorf("%s may read, %s: %v", tc.name, rpc, err)
			}
		}
		for _, rpc := range actRPCs {
			err := call(client, rpc, "owned")
			if connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("%s, %s: want permission_denied, got %v", tc.name, rpc, err)
				continue
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s, %s: %q does not say %q", tc.name, rpc, err, s)
				}
			}
		}
	}
	if n := len(sent.Messages()); n != 0 {
		t.Fatalf("%d sync requests published by callers who may not act", n)
	}
	if _, _, err := e.store.HookSecretVersion(ctx, "owned"); err == nil {
		t.Fatal("a hook secret was stored by a caller who may not act")
	}

	// The owner acts: a sync and the confirmation of the held removals are
	// requested in the owner's name; the hook secret is stored.
	client := e.clientWithKey(ann)
	trig, err := client.TriggerSync(ctx, connect.NewRequest(&syncv1.TriggerSyncRequest{ConnectorId: "owned", Reason: "auth test"}))
	if err != nil || trig.Msg.GetRequestId() == "" {
		t.Fatalf("the owner's sync: %v %v", trig, err)
	}
	conf, err := client.ConfirmRemovals(ctx, connect.NewRequest(&syncv1.ConfirmRemovalsRequest{ConnectorId: "owned"}))
	if err != nil || conf.Msg.GetRunId() != "run1" || conf.Msg.GetRemovalsHeldCount() != 3 {
		t.Fatalf("the owner's confirmation: %v %v", conf, err)
	}
	if _, err := client.SetHookSecret(ctx, connect.NewRequest(&syncv1.SetHookSecretRequest{ConnectorId: "owned", Secret: consoleSecret})); err != nil {
		t.Fatalf("the owner's hook secret: %v", err)
	}
	// Past the authorization, the hook calls answer as they do for anyone.
	if err := call(client, "RegisterHook", "owned"); connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "managed in the Okta Admin Console") {
		t.Fatalf("the owner's register over a console hook: %v", err)
	}
	if err := call(client, "UnregisterHook", "owned"); err != nil {
		t.Fatalf("the owner's unregister: %v", err)
	}
	for _, m := range sent.WaitFor(t, 2, 10*time.Second) {
		req := &eventsv1.SyncRequest{}
		if err := proto.Unmarshal(m.Data(), req); err != nil {
			t.Fatal(err)
		}
		if req.GetRequestedBy() != annID {
			t.Errorf("request %s: requested_by %q, want the caller's identity %s", req.GetRequestId(), req.GetRequestedBy(), annID)
		}
	}

	// The owner may not act on a connector they do not own; a Super
	// Administrator acts on any.
	if err := call(client, "TriggerSync", "c1"); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "it has no owners") {
		t.Fatalf("the owner on another connector: %v", err)
	}
	if err := call(e.client, "TriggerSync", "owned"); err != nil {
		t.Fatalf("a Super Administrator's sync: %v", err)
	}

	// Without the role, being an owner is not enough.
	if err := e.auth.Revoke(ctx, annID, auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	if err := call(client, "TriggerSync", "owned"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("an owner without the role: %v", err)
	}
	for _, k := range []telemetry.Secret{bob, eve, ann} {
		if strings.Contains(e.logs.String(), k.Reveal()) {
			t.Fatal("a key reached the log")
		}
	}
}
