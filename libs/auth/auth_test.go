package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/accessbus/accessbus/libs/auth"
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
