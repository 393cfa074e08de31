package okta

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// TestEventHookLifecycle registers a hook on the simulator, activates it,
// has Okta verify it against a real receiver, and removes it; the secret
// is sent to Okta and never read back.
func TestEventHookLifecycle(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	var challenged atomic.Int32
	const secret = "hook-secret-123"
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("x-okta-verification-challenge") != "" {
			if r.Header.Get("Authorization") == secret {
				challenged.Add(1)
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"verification": r.Header.Get("x-okta-verification-challenge")})
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()
	ctx := context.Background()
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	h, err := c.CreateEventHook(ctx, EventHookSpec{Name: "accessbus c1", URI: recv.URL + "/hooks/okta/c1",
		EventTypes: []string{"group.user_membership.add", "group.user_membership.remove"}, Secret: telemetry.NewSecret(secret)})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == "" || h.VerificationStatus != "UNVERIFIED" || len(h.EventTypes) != 2 || h.URI != recv.URL+"/hooks/okta/c1" {
		t.Fatalf("created %+v", h)
	}
	if h, err = c.ActivateEventHook(ctx, h.ID); err != nil || h.Status != "ACTIVE" {
		t.Fatalf("activate: %+v %v", h, err)
	}
	if h, err = c.VerifyEventHook(ctx, h.ID); err != nil || h.VerificationStatus != "VERIFIED" || challenged.Load() != 1 {
		t.Fatalf("verify: %+v %v, %d challenges with the secret", h, err, challenged.Load())
	}
	got, err := c.GetEventHook(ctx, h.ID)
	if err != nil || got.ID != h.ID || got.Status != "ACTIVE" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if strings.Contains(got.URI+got.Name, secret) {
		t.Fatal("the secret came back")
	}
	if _, err := c.DeactivateEventHook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteEventHook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEventHook(ctx, h.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted hook: %v, want ErrNotFound", err)
	}
}

// TestEventHookNeedsARoleThatMayManageHooks: a read-only admin's token is
// told it may not, and a bad spec is invalid input.
func TestEventHookNeedsARoleThatMayManageHooks(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	ctx := context.Background()
	spec := EventHookSpec{Name: "x", URI: "https://hooks.example.com/x", EventTypes: []string{"group.user_membership.add"}, Secret: telemetry.NewSecret("s")}
	if _, err := newClient(t, run, run.Tokens.ReadOnlyAdmin, nil).CreateEventHook(ctx, spec); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("read-only token: %v, want ErrPermissionDenied", err)
	}
	spec.EventTypes = []string{"not.an.event"}
	if _, err := newClient(t, run, run.Tokens.SuperAdmin, nil).CreateEventHook(ctx, spec); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("bad event type: %v, want ErrInvalidInput", err)
	}
}
