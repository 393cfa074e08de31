package api_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/auth"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1/provisioningv1connect"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// calls makes each RPC of the service once with client, and returns their
// errors by RPC name.
func calls(client provisioningv1connect.ProvisioningServiceClient, requestID string) map[string]error {
	ctx := context.Background()
	_, submit := client.Submit(ctx, connect.NewRequest(&provv1.SubmitRequest{Request: membership(requestID)}))
	_, get := client.Get(ctx, connect.NewRequest(&provv1.GetRequest{ConnectorId: "c1", RequestId: requestID}))
	_, list := client.List(ctx, connect.NewRequest(&provv1.ListRequest{ConnectorId: "c1"}))
	return map[string]error{"Submit": submit, "Get": get, "List": list}
}

// TestEveryCallNeedsAKey: without a key, or with one the service does not
// know, every RPC is refused with Unauthenticated saying how to send one,
// and nothing is published.
func TestEveryCallNeedsAKey(t *testing.T) {
	e := newEnv(t)
	unknown := telemetry.NewSecret(auth.KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	for name, key := range map[string]telemetry.Secret{"no key": {}, "unknown key": unknown, "not a key": telemetry.NewSecret("hunter2")} {
		for rpc, err := range calls(e.clientWithKey(key), "r-"+strings.ReplaceAll(name, " ", "-")) {
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s, %s: want unauthenticated, got %v", name, rpc, err)
				continue
			}
			if name == "no key" && (!strings.Contains(err.Error(), "Authorization: Bearer <API key>") || !strings.Contains(err.Error(), "ACCESSBUS_API_KEY")) {
				t.Errorf("%s, %s: the refusal does not say how to send a key: %v", name, rpc, err)
			}
			if key.IsSet() && strings.Contains(err.Error(), key.Reveal()) {
				t.Errorf("%s, %s: the refusal holds the key: %v", name, rpc, err)
			}
		}
	}
	if n := e.sentCount(t); n != 0 {
		t.Fatalf("%d requests published without a key", n)
	}
	if strings.Contains(e.logs.String(), unknown.Reveal()) {
		t.Fatal("a key reached the log")
	}
}

// TestSubmitTakesOwnerOrSuperAdmin: submitting a request to a connector
// takes an owner of it with the Connector Administrator role, or a Super
// Administrator; a Connector Administrator who does not own it and an
// identity without a role are refused with PermissionDenied naming what
// they lack, and publish nothing, but may read.
func TestSubmitTakesOwnerOrSuperAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bob := e.key(t, "idn-bob", auth.ConnectorAdmin)
	eve := e.key(t, "idn-eve")
	for _, tc := range []struct {
		name string
		key  telemetry.Secret
		says []string
	}{
		{"connector admin, not an owner", bob, []string{"submitting a provisioning request on connector c1", "its owners are ann@example.com", "idn-bob"}},
		{"no role", eve, []string{"Super Administrator role, or the Connector Administrator role", "idn-eve", "accessbus admin roles assign"}},
	} {
		got := calls(e.clientWithKey(tc.key), "r-refused")
		err := got["Submit"]
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("%s: submit: want permission_denied, got %v", tc.name, err)
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", tc.name, err, s)
			}
		}
		if got["List"] != nil {
			t.Errorf("%s: list: %v", tc.name, got["List"])
		}
		// Nothing was submitted, so there is nothing to get, but reading is allowed.
		if connect.CodeOf(got["Get"]) != connect.CodeNotFound {
			t.Errorf("%s: get: want not_found, got %v", tc.name, got["Get"])
		}
	}
	if n := e.sentCount(t); n != 0 {
		t.Fatalf("%d requests published by callers who may not submit", n)
	}

	// The owner submits; everyone reads what was submitted.
	ann := e.key(t, annID, auth.ConnectorAdmin)
	rec, err := e.submitWith(e.clientWithKey(ann), membership("r-ann"))
	if err != nil || rec.GetState() != provv1.RequestState_REQUEST_STATE_RECEIVED {
		t.Fatalf("the owner's submit: %v %v", rec, err)
	}
	if rec, err := e.submitWith(e.client, membership("r-root")); err != nil || rec.GetRequest().GetRequestId() != "r-root" {
		t.Fatalf("a Super Administrator's submit: %v %v", rec, err)
	}
	if n := e.sentCount(t); n != 2 {
		t.Fatalf("%d requests published, want 2", n)
	}
	e.consume(t, 1, succeeded(membership("r-ann")), provv1.RequestState_REQUEST_STATE_COMPLETED)
	for _, key := range []telemetry.Secret{bob, eve} {
		got, err := e.clientWithKey(key).Get(ctx, connect.NewRequest(&provv1.GetRequest{ConnectorId: "c1", RequestId: "r-ann"}))
		if err != nil || got.Msg.GetRecord().GetRequest().GetRequestId() != "r-ann" {
			t.Fatalf("a reader's get: %v %v", got, err)
		}
	}

	// A Connector Administrator whose role was revoked no longer submits,
	// even to a connector they still own.
	if err := e.auth.Revoke(ctx, annID, auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.submitWith(e.clientWithKey(ann), membership("r-ann-2")); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("an owner without the role: %v", err)
	}
	for _, k := range []telemetry.Secret{bob, eve, ann} {
		if strings.Contains(e.logs.String(), k.Reveal()) {
			t.Fatal("a key reached the log")
		}
	}
}
