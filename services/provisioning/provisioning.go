// Package provisioning is the provisioning service: it carries out
// provisioning requests from provisioning.<connector>.request in Okta, one
// outcome per request_id, and revokes time-bound grants when they expire.
// docs/provisioning.md describes the contract.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"

	"github.com/accessbus/accessbus/services/provisioning/internal/api"
	"github.com/accessbus/accessbus/services/provisioning/internal/executor"
	"github.com/accessbus/accessbus/services/provisioning/internal/expiry"
	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
)

// Name is the service's name in logs, metrics and readiness reports.
const Name = "provisioning"

// Config is the provisioning service's configuration, read from the environment.
type Config struct {
	service.Config
	// SecretsKey opens the connectors' Okta API tokens (the same key as the
	// sync's and the catalog's).
	SecretsKey secrets.Key `env:"ACCESSBUS_SECRETS_KEY"`
	// Workers is how many requests one replica carries out at once.
	Workers int `env:"ACCESSBUS_PROVISIONING_WORKERS, default=16"`
	// WarnBefore is how long before a time-bound grant's expiry the
	// expiring warning is published (grants shorter than twice this are
	// warned at half their lifetime).
	WarnBefore time.Duration `env:"ACCESSBUS_PROVISIONING_WARN_BEFORE, default=24h"`
	// RateLimitShare is the share of each Okta bucket a connector whose
	// options set none may use: the same budget as the sync's.
	RateLimitShare float64 `env:"ACCESSBUS_RATE_LIMIT_SHARE, default=0.5"`
	// OktaTimeScale is for a time-scaled Okta simulator only.
	OktaTimeScale float64 `env:"ACCESSBUS_OKTA_TIME_SCALE, default=1"`
	// ExpiryEvery is how often due time-bound grants are looked for.
	ExpiryEvery time.Duration `env:"ACCESSBUS_PROVISIONING_EXPIRY_EVERY, default=1s"`
	// CheckTTL is how long a user, group or app that passed the checks
	// before a write is taken as still passing them without reading it
	// again; negative reads every one for every request.
	CheckTTL time.Duration `env:"ACCESSBUS_PROVISIONING_CHECK_TTL, default=2s"`
}

// ConfigFromEnv reads Config from the process environment with its defaults.
func ConfigFromEnv(ctx context.Context) (Config, error) {
	return service.LoadEnv[Config](ctx, Name)
}

// Validate checks the provisioning settings beyond the shared ones.
func (c Config) Validate() error {
	var errs []error
	if c.SecretsKey.IsZero() {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SECRETS_KEY is not set: the provisioning service opens the connectors' Okta tokens with it; %s", secrets.HowToCreate))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_PROVISIONING_WORKERS %d: must be 1 or more", c.Workers))
	}
	if c.WarnBefore <= 0 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_PROVISIONING_WARN_BEFORE %s: must be positive, for example 24h", c.WarnBefore))
	}
	if c.RateLimitShare <= 0 || c.RateLimitShare > 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_RATE_LIMIT_SHARE %g: must be in (0, 1], for example 0.5", c.RateLimitShare))
	}
	if c.OktaTimeScale < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_OKTA_TIME_SCALE %g: must be 1 (Okta) or more (a time-scaled simulator)", c.OktaTimeScale))
	}
	if c.CheckTTL > time.Minute {
		errs = append(errs, fmt.Errorf("ACCESSBUS_PROVISIONING_CHECK_TTL %s: at most 1m, since checks older than that let stale objects through; for example 2s, or -1s to read every object every time", c.CheckTTL))
	}
	if c.ExpiryEvery < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("ACCESSBUS_PROVISIONING_EXPIRY_EVERY %s: must be at least 10ms, for example 1s", c.ExpiryEvery))
	}
	return errors.Join(errs...)
}

// Deps are what Run needs: the shared process dependencies and the config.
type Deps struct {
	service.Deps
	Config Config
	// HTTPClient carries the Okta calls; nil means libs/okta's default.
	HTTPClient *http.Client
}

// Service wraps Run for service.Main and for the all-in-one accessbus dev.
func Service(cfg Config) service.Service {
	return service.Service{Name: Name, Run: func(ctx context.Context, d service.Deps) error {
		return Run(ctx, Deps{Deps: d, Config: cfg})
	}}
}

// Run carries out provisioning requests and expires time-bound grants
// until ctx ends.
func Run(ctx context.Context, deps Deps) error {
	cfg := deps.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: invalid configuration:\n%w", Name, err)
	}
	log := deps.Logger.With("service", Name)
	js := deps.Bus.JetStream()
	conns, err := connectors.Open(ctx, js, connectors.Options{Replicas: cfg.StreamReplicas, Key: cfg.SecretsKey})
	if err != nil {
		return err
	}
	led, err := ledger.Open(ctx, js, ledger.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return err
	}
	// Shared by every replica of every service through Redis (in memory
	// without it), so that together they keep each connector's share.
	leaseStore, rateStore := lease.SharedStore(deps.Redis), ratelimit.SharedStore(deps.Redis)
	// The catalog's API keys and roles: every call of the
	// ProvisioningService is authenticated by its bearer key.
	keys, err := auth.Open(ctx, js, auth.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return fmt.Errorf("%s: open the API keys and roles: %w", Name, err)
	}
	path, h := api.New(api.Deps{Bus: deps.Bus, Ledger: led, Connectors: conns}, connect.WithInterceptors(auth.Interceptor(keys)))
	deps.Mux.Handle(path, h)
	host, _ := os.Hostname()
	clients := &oktaClients{conns: conns, store: rateStore, share: cfg.RateLimitShare, timeScale: cfg.OktaTimeScale,
		httpClient: deps.HTTPClient, budgets: map[string]*budgetFor{}}
	ex, err := executor.New(executor.Deps{Bus: deps.Bus, Ledger: led, Connectors: conns, Okta: clients.client, Log: log},
		executor.Config{Concurrency: cfg.Workers, WarnBefore: cfg.WarnBefore, CheckTTL: cfg.CheckTTL})
	if err != nil {
		return err
	}
	if err := ex.Start(ctx); err != nil {
		return err
	}
	follower, err := expiry.Follow(ctx, deps.Bus, led, log)
	if err != nil {
		return errors.Join(err, ex.Stop(context.WithoutCancel(ctx)))
	}
	sched := &expiry.Scheduler{Bus: deps.Bus, Ledger: led, Leases: lease.New(leaseStore, host, log), Log: log, Every: cfg.ExpiryEvery}
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); sched.Run(ctx) }()
	deps.Health.SetReady(Name, nil)
	log.Info("provisioning service ready", "workers", cfg.Workers)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	<-schedDone
	return errors.Join(ex.Stop(stopCtx), follower.Stop(stopCtx))
}

// oktaClients builds each connector's Okta client on the org's shared rate
// budget (the same store and keys as the sync's, so both services together
// stay within the connector's share).
type oktaClients struct {
	conns      *connectors.Store
	store      ratelimit.Store
	share      float64
	timeScale  float64
	httpClient *http.Client

	mu      sync.Mutex
	budgets map[string]*budgetFor
}

// budgetFor is a connector's client and budget, kept while the connector's
// domain, token version and share stay the same: building a client per
// request would cost CPU and, without a shared HTTP client, a new TLS
// connection to Okta per request.
type budgetFor struct {
	share   float64
	domain  string
	version int64
	b       *ratelimit.Budget
	client  *okta.Client
}

func (c *oktaClients) client(ctx context.Context, conn *eventsv1.Connector) (*okta.Client, error) {
	share := conn.GetOptions().GetRateLimitShare()
	if share <= 0 || share > 1 {
		share = c.share
	}
	c.mu.Lock()
	bf, ok := c.budgets[conn.GetId()]
	c.mu.Unlock()
	if ok && bf.share == share && bf.domain == conn.GetOktaDomain() && bf.version == conn.GetSecretVersion() && bf.client != nil {
		return bf.client, nil
	}
	orgURL, err := connectors.OrgURLFor(conn.GetId(), conn.GetOktaDomain())
	if err != nil {
		return nil, err
	}
	token, version, err := c.conns.Token(ctx, conn.GetId())
	if err != nil {
		return nil, err
	}
	b := (*ratelimit.Budget)(nil)
	if ok && bf.share == share {
		b = bf.b // the same budget: its pacing state carries over
	} else if b, err = ratelimit.New(c.store, ratelimit.Options{Share: share, TimeScale: c.timeScale}); err != nil {
		return nil, fmt.Errorf("rate budget of %s: %w", conn.GetId(), err)
	}
	cl, err := okta.New(ctx, okta.Config{OrgURL: orgURL, Token: token, Budget: b, HTTPClient: c.httpClient})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.budgets[conn.GetId()] = &budgetFor{share: share, domain: conn.GetOktaDomain(), version: version, b: b, client: cl}
	c.mu.Unlock()
	return cl, nil
}
