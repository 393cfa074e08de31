// Package catalog is the catalog service: it owns connectors, applications and platform identities.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"
)

// Name is the service's name in logs, metrics and readiness reports.
const Name = "catalog"

// Config is the catalog service's configuration, read from the environment.
type Config struct {
	service.Config
	// SecretsKey seals and opens the connectors' Okta API tokens: base64 of
	// 32 random bytes (`openssl rand -base64 32`). Run refuses to start
	// without it. `accessbus dev` sets it from its data dir's key file when
	// the environment leaves it empty.
	SecretsKey secrets.Key `env:"ACCESSBUS_SECRETS_KEY"`
	// AdminEmail is the email of the first Super Administrator, created at
	// the first start (when nobody holds a platform role yet).
	AdminEmail string `env:"ACCESSBUS_ADMIN_EMAIL, default=admin@accessbus.local"`
	// AdminKeyFile, when set, receives the first Super Administrator's API
	// key (mode 0600) unless OnBootstrapKey takes it.
	AdminKeyFile string `env:"ACCESSBUS_ADMIN_API_KEY_FILE"`
	// OnBootstrapKey, when set, is handed the first Super Administrator
	// and their API key, once, at the start that creates them (accessbus
	// dev prints the key and writes <data-dir>/admin-api-key). An error
	// stops Run before the role is granted, so the next start tries again.
	OnBootstrapKey func(ctx context.Context, admin BootstrapAdmin) error
}

// ConfigFromEnv reads Config from the process environment with its defaults.
func ConfigFromEnv(ctx context.Context) (Config, error) {
	return service.LoadEnv[Config](ctx, Name)
}

// ErrNoSecretsKey is returned by Run when Config.SecretsKey is not set.
var ErrNoSecretsKey = errors.New(secrets.EnvKey + " is not set")

// Deps are what Run needs: the shared process dependencies and the config.
type Deps struct {
	service.Deps
	Config Config
}

// Service wraps Run for service.Main and for the all-in-one accessbus dev.
func Service(cfg Config) service.Service {
	return service.Service{Name: Name, Run: func(ctx context.Context, d service.Deps) error {
		return Run(ctx, Deps{Deps: d, Config: cfg})
	}}
}

// defaultStopTimeout bounds the consumer's shutdown when the config names
// no shutdown timeout (a Config built in code).
const defaultStopTimeout = 10 * time.Second

// Run opens the connector store, follows sync runs to keep each
// connector's status current, follows the orgs' users and apps into
// platform identities and catalog applications (Discovery) and their app
// assignments into the applications' counts, creates the
// first Super Administrator on a fresh installation, and serves the
// catalog's Connect API on deps.Mux, until ctx ends.
func Run(ctx context.Context, deps Deps) error {
	cfg := deps.Config
	if cfg.SecretsKey.IsZero() {
		return fmt.Errorf("%s: %w: set it to base64 of 32 random bytes; %s", Name, ErrNoSecretsKey, secrets.HowToCreate)
	}
	store, err := connectors.Open(ctx, deps.Bus.JetStream(), connectors.Options{Replicas: cfg.StreamReplicas, Key: cfg.SecretsKey})
	if err != nil {
		return fmt.Errorf("%s: open connector store: %w", Name, err)
	}
	disc, err := OpenDiscovery(ctx, deps.Bus, cfg.StreamReplicas, jetstream.FileStorage, deps.Logger.With("service", Name))
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	log := deps.Logger.With("service", Name)
	authStore, err := auth.Open(ctx, deps.Bus.JetStream(), auth.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return fmt.Errorf("%s: open the API keys and roles: %w", Name, err)
	}
	if err := bootstrap(ctx, cfg, authStore, disc, log); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	var rateStore ratelimit.Store
	if deps.Redis != nil {
		// The credential check spends the org's shared budget, as the sync does.
		rateStore = ratelimit.NewRedisStore(deps.Redis, "accessbus:ratelimit:")
	}
	api, err := NewAPI(APIDeps{Bus: deps.Bus, Connectors: store, Discovery: disc, Auth: authStore, Log: log, RateStore: rateStore})
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	discSub, err := disc.Follow(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	counts, err := disc.FollowAssignments(ctx)
	if err != nil {
		return errors.Join(fmt.Errorf("%s: %w", Name, err), discSub.Stop(context.WithoutCancel(ctx)))
	}
	sub, err := FollowRunStatus(ctx, deps.Bus, store, deps.Logger)
	if err != nil {
		return errors.Join(fmt.Errorf("%s: %w", Name, err), discSub.Stop(context.WithoutCancel(ctx)), counts.Stop(context.WithoutCancel(ctx)))
	}
	if deps.Mux != nil {
		api.Mount(deps.Mux)
	}
	deps.Logger.Info("service started", "service", Name, "secrets_key_id", cfg.SecretsKey.ID())
	deps.Health.SetReady(Name, nil)
	<-ctx.Done()

	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = defaultStopTimeout
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := errors.Join(sub.Stop(stopCtx), discSub.Stop(stopCtx), counts.Stop(stopCtx)); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	deps.Logger.Info("service stopped", "service", Name)
	return nil
}
