package catalog_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/auth"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/catalog"
)

// running is one catalog.Run serving its API over real HTTP.
type running struct {
	url  string
	stop func() error
}

// runCatalog runs the catalog service with cfg until the returned stop,
// waiting until it is ready; a Run that fails before is returned as err.
func (e *env) runCatalog(t *testing.T, cfg catalog.Config, logs *testkit.Buffer) (*running, error) {
	t.Helper()
	cfg.SecretsKey = e.key
	health := service.NewHealth()
	health.Register(catalog.Name)
	mux := http.NewServeMux()
	deps := catalog.Deps{
		Deps:   service.Deps{Logger: telemetry.NewLogger(logs, slog.LevelDebug), Bus: e.bus, Health: health, Mux: mux},
		Config: cfg,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- catalog.Run(ctx, deps) }()
	deadline := time.Now().Add(wait)
	for len(health.Problems(context.Background())) != 0 {
		select {
		case err := <-done:
			cancel()
			return nil, err
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("catalog not ready")
		}
	}
	srv := httptest.NewServer(mux)
	stop := func() error {
		srv.Close()
		cancel()
		return <-done
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			_ = stop()
		}
	})
	return &running{url: srv.URL, stop: stop}, nil
}

func adminClient(url string, key telemetry.Secret) catalogv1connect.AdminServiceClient {
	return catalogv1connect.NewAdminServiceClient(http.DefaultClient, url, connect.WithInterceptors(auth.ClientKey(key)))
}

// TestRunBootstrapsFirstSuperAdmin: the first start, with nobody holding a
// role, creates the Super Administrator (identity, key handed to the hook,
// role); the key works over the mounted API; the next start creates none.
func TestRunBootstrapsFirstSuperAdmin(t *testing.T) {
	e := newEnv(t)
	logs := &testkit.Buffer{}
	got := make(chan catalog.BootstrapAdmin, 2)
	cfg := catalog.Config{AdminEmail: "Root@Example.com", OnBootstrapKey: func(_ context.Context, a catalog.BootstrapAdmin) error {
		got <- a
		return nil
	}}
	r, err := e.runCatalog(t, cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	var admin catalog.BootstrapAdmin
	select {
	case admin = <-got:
	default:
		t.Fatal("no bootstrap key handed over")
	}
	if admin.Email != "root@example.com" || admin.IdentityID != catalog.IdentityID("root@example.com") || !strings.HasPrefix(admin.Key.Reveal(), auth.KeyPrefix) {
		t.Fatalf("admin %+v", admin)
	}
	ctx := context.Background()
	who, err := adminClient(r.url, admin.Key).WhoAmI(ctx, connect.NewRequest(&catalogv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetEmail() != "root@example.com" || len(who.Msg.GetRoles()) != 1 || who.Msg.GetRoles()[0] != catalogv1.Role_ROLE_SUPER_ADMIN {
		t.Fatalf("whoami %v %v", who, err)
	}
	if _, err := adminClient(r.url, telemetry.Secret{}).WhoAmI(ctx, connect.NewRequest(&catalogv1.WhoAmIRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("without a key: %v", err)
	}
	// The administrator is an identity, so they can own a connector.
	conns := catalogv1connect.NewConnectorServiceClient(http.DefaultClient, r.url, connect.WithInterceptors(auth.ClientKey(admin.Key)))
	if _, err := conns.AddConnector(ctx, connect.NewRequest(&catalogv1.AddConnectorRequest{
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}, OwnerEmails: []string{"root@example.com"}})); err != nil {
		t.Fatalf("admin as owner: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), admin.Key.Reveal()) {
		t.Fatal("the bootstrap key appears in the log")
	}

	if _, err := e.runCatalog(t, cfg, logs); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		t.Fatalf("a second bootstrap on restart: %s", a.Email)
	default:
	}
}

// TestRunBootstrapHandOverFails: when the key cannot be handed over, Run
// fails and grants nothing, so the next start bootstraps again; with
// ACCESSBUS_ADMIN_API_KEY_FILE and no hook the key goes to that file;
// with neither, nothing is created.
func TestRunBootstrapHandOverFails(t *testing.T) {
	e := newEnv(t)
	logs := &testkit.Buffer{}
	ctx := context.Background()
	store, err := auth.Open(ctx, e.js, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := e.runCatalog(t, catalog.Config{}, logs); err != nil {
		t.Fatal(err)
	}
	if has, _ := store.HasAnyRoles(ctx); has || !strings.Contains(logs.String(), "ACCESSBUS_ADMIN_API_KEY_FILE") {
		t.Fatalf("nowhere to hand the key: roles %v, log %s", has, logs.String())
	}

	_, err = e.runCatalog(t, catalog.Config{OnBootstrapKey: func(context.Context, catalog.BootstrapAdmin) error {
		return errors.New("disk full")
	}}, logs)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run with a failing hook: %v", err)
	}
	if has, _ := store.HasAnyRoles(ctx); has {
		t.Fatal("a role was granted though the key was not handed over")
	}

	file := filepath.Join(t.TempDir(), "keys", "admin-api-key")
	r, err := e.runCatalog(t, catalog.Config{AdminKeyFile: file}, logs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	who, err := adminClient(r.url, telemetry.NewSecret(strings.TrimSpace(string(b)))).WhoAmI(ctx, connect.NewRequest(&catalogv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetEmail() != catalog.DefaultAdminEmail {
		t.Fatalf("whoami with the file's key: %v %v", who, err)
	}
}
