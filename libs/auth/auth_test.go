package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/accessbus/accessbus/libs/auth"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
)

func open(t *testing.T) *auth.Store {
	t.Helper()
	s, err := auth.Open(context.Background(), testkit.StartNATS(t).JetStream(t), auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeysAndRoles: a new key authenticates its identity with its roles;
// unknown, malformed and empty keys do not; roles are granted and revoked
// idempotently.
func TestKeysAndRoles(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if any, err := s.HasAnyRoles(ctx); err != nil || any {
		t.Fatalf("fresh store has roles: %v %v", any, err)
	}
	key, err := s.NewKey(ctx, "idn-ann", "laptop")
	if err != nil || !strings.HasPrefix(key.Reveal(), auth.KeyPrefix) || len(key.Reveal()) < 40 {
		t.Fatalf("key %v %v", len(key.Reveal()), err)
	}
	if err := s.Grant(ctx, "idn-ann", auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	if err := s.Grant(ctx, "idn-ann", auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	c, err := s.Authenticate(ctx, key.Reveal())
	if err != nil || c.Identity != "idn-ann" || len(c.Roles) != 1 || !c.Has(auth.ConnectorAdmin) || c.Has(auth.SuperAdmin) {
		t.Fatalf("caller %+v %v", c, err)
	}
	if any, _ := s.HasAnyRoles(ctx); !any {
		t.Fatal("HasAnyRoles after a grant")
	}
	if err := s.Revoke(ctx, "idn-ann", auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Authenticate(ctx, key.Reveal()); c.Has(auth.ConnectorAdmin) {
		t.Fatal("revoked role still held")
	}
	for _, bad := range []string{"", "abk_unknown", "not-a-key"} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	if r, err := auth.ParseRole("Super-Administrator"); err != nil || r != auth.SuperAdmin {
		t.Errorf("parse role: %v %v", r, err)
	}
	if _, err := auth.ParseRole("root"); !errors.Is(err, auth.ErrInvalidRole) {
		t.Errorf("parse role root: %v", err)
	}
}

// TestInterceptor: over a real Connect server, a call without a key or
// with an unknown one is refused with Unauthenticated; with a key the
// handler sees its caller. The key never shows in the error.
func TestInterceptor(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	key, err := s.NewKey(ctx, "idn-bob", "")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/test.v1.Test/Who", connect.NewUnaryHandler("/test.v1.Test/Who",
		func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[wrapperspb.StringValue], error) {
			c, ok := auth.CallerFrom(ctx)
			if !ok {
				return nil, connect.NewError(connect.CodeInternal, errors.New("no caller"))
			}
			return connect.NewResponse(wrapperspb.String(c.Identity)), nil
		}, connect.WithInterceptors(auth.Interceptor(s))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(k telemetry.Secret) (string, error) {
		cl := connect.NewClient[emptypb.Empty, wrapperspb.StringValue](http.DefaultClient, srv.URL+"/test.v1.Test/Who",
			connect.WithInterceptors(auth.ClientKey(k)))
		resp, err := cl.CallUnary(ctx, connect.NewRequest(&emptypb.Empty{}))
		if err != nil {
			return "", err
		}
		return resp.Msg.GetValue(), nil
	}
	if who, err := call(key); err != nil || who != "idn-bob" {
		t.Fatalf("with the key: %q %v", who, err)
	}
	_, err = call(telemetry.Secret{})
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "ACCESSBUS_API_KEY") {
		t.Fatalf("without a key: %v", err)
	}
	wrong := telemetry.NewSecret(auth.KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	_, err = call(wrong)
	if connect.CodeOf(err) != connect.CodeUnauthenticated || strings.Contains(err.Error(), wrong.Reveal()) {
		t.Fatalf("with an unknown key: %v", err)
	}
}

// TestOpenConcurrently: the sync, provisioning and catalog services open
// the store at the same time on a fresh JetStream (accessbus dev starts
// them together); every Open succeeds, and a key made through one Store
// authenticates through the others.
func TestOpenConcurrently(t *testing.T) {
	js := testkit.StartNATS(t).JetStream(t)
	ctx := context.Background()
	const n = 8
	stores := make([]*auth.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = auth.Open(ctx, js, auth.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	key, err := stores[0].NewKey(ctx, "idn-ann", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := stores[1].Grant(ctx, "idn-ann", auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if c, err := s.Authenticate(ctx, key.Reveal()); err != nil || c.Identity != "idn-ann" || !c.Has(auth.ConnectorAdmin) {
			t.Fatalf("store %d: %+v %v", i, c, err)
		}
	}
	// Opened again later (a restart), the buckets and what they hold stay.
	again, err := auth.Open(ctx, js, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := again.Authenticate(ctx, key.Reveal()); err != nil || c.Identity != "idn-ann" {
		t.Fatalf("after reopening: %+v %v", c, err)
	}
}

// TestRequire: a context without a caller (a handler mounted without the
// Interceptor) is refused with Unauthenticated and how to send a key.
func TestRequire(t *testing.T) {
	_, err := auth.Require(context.Background())
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "Authorization: Bearer <API key>") ||
		!strings.Contains(err.Error(), "ACCESSBUS_API_KEY") {
		t.Fatalf("no caller: %v", err)
	}
	if _, err := auth.Require(auth.WithCaller(context.Background(), auth.Caller{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a caller without an identity: %v", err)
	}
	c, err := auth.Require(auth.WithCaller(context.Background(), auth.Caller{Identity: "idn-ann", Roles: []auth.Role{auth.ConnectorAdmin}}))
	if err != nil || c.Identity != "idn-ann" || !c.Has(auth.ConnectorAdmin) {
		t.Fatalf("with a caller: %+v %v", c, err)
	}
}

// TestMayActOn: a Super Administrator acts on any connector, a Connector
// Administrator on those they own; everyone else is refused with
// PermissionDenied naming the role or the ownership needed.
func TestMayActOn(t *testing.T) {
	owned := &eventsv1.Connector{Id: "c1", Owners: []*eventsv1.ConnectorOwner{{IdentityId: "idn-ann", Email: "ann@example.com"}}}
	orphan := &eventsv1.Connector{Id: "c2"}
	for _, tc := range []struct {
		name   string
		caller auth.Caller
		conn   *eventsv1.Connector
		want   []string // empty: allowed
	}{
		{"super admin, not an owner", auth.Caller{Identity: "idn-root", Roles: []auth.Role{auth.SuperAdmin}}, owned, nil},
		{"super admin, no owners", auth.Caller{Identity: "idn-root", Roles: []auth.Role{auth.SuperAdmin}}, orphan, nil},
		{"connector admin, owner", auth.Caller{Identity: "idn-ann", Roles: []auth.Role{auth.ConnectorAdmin}}, owned, nil},
		{"connector admin, not an owner", auth.Caller{Identity: "idn-bob", Roles: []auth.Role{auth.ConnectorAdmin}}, owned,
			[]string{"starting a sync on connector c1", "owners", "ann@example.com", "idn-bob", "set-owners c1"}},
		{"connector admin, no owners", auth.Caller{Identity: "idn-bob", Roles: []auth.Role{auth.ConnectorAdmin}}, orphan,
			[]string{"it has no owners", "Super Administrator"}},
		{"owner without a role", auth.Caller{Identity: "idn-ann"}, owned,
			[]string{"Super Administrator role, or the Connector Administrator role", "idn-ann", "holds neither", "roles assign"}},
		{"no role", auth.Caller{Identity: "idn-eve"}, orphan, []string{"Connector Administrator", "holds neither"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := auth.MayActOn(tc.caller, tc.conn, "starting a sync")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("want PermissionDenied, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	if auth.IsOwner(owned, "") || auth.IsOwner(nil, "idn-ann") || !auth.IsOwner(owned, "idn-ann") {
		t.Fatal("IsOwner")
	}
}
