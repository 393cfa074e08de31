// Package syncsvc is the sync service: it reads Okta orgs and publishes every change of resources and grants on access.<connector>.>.
package syncsvc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"

	"github.com/accessbus/accessbus/services/sync/internal/api"
	"github.com/accessbus/accessbus/services/sync/internal/hooks"
	"github.com/accessbus/accessbus/services/sync/internal/runs"
	"github.com/accessbus/accessbus/services/sync/internal/state"
	"github.com/accessbus/accessbus/services/sync/internal/worker"
)

// Name is the service's name in logs, metrics and readiness reports.
const Name = "sync"

// Config is the sync service's configuration, read from the environment.
type Config struct {
	service.Config
	// SecretsKey opens the connectors' Okta API tokens (base64 of 32 random
	// bytes, the same key as the catalog's). `accessbus dev` sets it from
	// its data dir's key file when the environment leaves it empty.
	SecretsKey secrets.Key `env:"ACCESSBUS_SECRETS_KEY"`
	// Workers is how many connectors this replica syncs at once.
	Workers int `env:"ACCESSBUS_SYNC_WORKERS, default=4"`
	// Interval is the time between scheduled full syncs of a connector
	// whose options set none.
	Interval time.Duration `env:"ACCESSBUS_SYNC_INTERVAL, default=1h"`
	// ScheduleEvery is how often the scheduler looks for due connectors;
	// 0 turns scheduling off (requests still run).
	ScheduleEvery time.Duration `env:"ACCESSBUS_SYNC_SCHEDULE_EVERY, default=1m"`
	// RateLimitShare is the share of each Okta rate-limit bucket a connector
	// whose options set none may use.
	RateLimitShare float64 `env:"ACCESSBUS_RATE_LIMIT_SHARE, default=0.5"`
	// RemovalThreshold is the share of a connector's grants a full sync may
	// remove without confirmation, for connectors whose options set none.
	RemovalThreshold float64 `env:"ACCESSBUS_REMOVAL_THRESHOLD, default=0.2"`
	// LeaseTTL is how long a dead replica's lease blocks its connector.
	LeaseTTL time.Duration `env:"ACCESSBUS_SYNC_LEASE_TTL, default=30s"`
	// OktaTimeScale is for a time-scaled Okta simulator only (benchmarks,
	// tests, a fast demo): the org's clock runs this many times faster, and
	// the rate budget's windows shrink to match. Leave it at 1 for Okta.
	OktaTimeScale float64 `env:"ACCESSBUS_OKTA_TIME_SCALE, default=1"`
	// LogPollEvery is how often each connector's System Log is read for
	// changes a hook did not bring; 0 turns the catch-up off.
	LogPollEvery time.Duration `env:"ACCESSBUS_SYSTEM_LOG_POLL, default=60s"`
}

// ConfigFromEnv reads Config from the process environment with its defaults.
func ConfigFromEnv(ctx context.Context) (Config, error) {
	return service.LoadEnv[Config](ctx, Name)
}

// Validate checks the sync settings beyond the shared ones.
func (c Config) Validate() error {
	var errs []error
	if c.SecretsKey.IsZero() {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SECRETS_KEY is not set: the sync service opens the connectors' Okta tokens with it; %s", secrets.HowToCreate))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SYNC_WORKERS %d: must be 1 or more", c.Workers))
	}
	if c.Interval < time.Minute {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SYNC_INTERVAL %s: must be at least 1m, for example 1h", c.Interval))
	}
	if c.ScheduleEvery < 0 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SYNC_SCHEDULE_EVERY %s: must be 0 (off) or positive", c.ScheduleEvery))
	}
	if c.RateLimitShare <= 0 || c.RateLimitShare > 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_RATE_LIMIT_SHARE %g: must be in (0, 1], for example 0.5", c.RateLimitShare))
	}
	if c.RemovalThreshold <= 0 || c.RemovalThreshold > 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_REMOVAL_THRESHOLD %g: must be in (0, 1], for example 0.2", c.RemovalThreshold))
	}
	if c.LeaseTTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SYNC_LEASE_TTL %s: must be at least 3s", c.LeaseTTL))
	}
	if c.LogPollEvery < 0 || (c.LogPollEvery > 0 && c.LogPollEvery < time.Second) {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SYSTEM_LOG_POLL %s: must be 0 (off) or at least 1s, for example 60s", c.LogPollEvery))
	}
	if c.OktaTimeScale < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_OKTA_TIME_SCALE %g: must be 1 (Okta) or more (a time-scaled simulator)", c.OktaTimeScale))
	}
	return errors.Join(errs...)
}

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

// Run opens the sync state, runs the sync workers and the scheduler, and
// serves the SyncService and the AccessService (every call authenticated
// by its API key) until ctx ends.
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
	st, err := state.Open(ctx, js, state.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return err
	}
	rs, err := runs.Open(ctx, js, runs.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return err
	}
	// Shared by every replica of every service through Redis (in memory
	// without it), so that together they keep each connector's share.
	leaseStore, rateStore := lease.SharedStore(deps.Redis), ratelimit.SharedStore(deps.Redis)
	host, _ := os.Hostname()
	leases := lease.New(leaseStore, host, log)
	w, err := worker.New(worker.Deps{
		Bus: deps.Bus, Connectors: conns, State: st, Runs: rs, Leases: leases, RateStore: rateStore, Log: log,
	}, worker.Config{
		Concurrency: cfg.Workers, LeaseTTL: cfg.LeaseTTL, ScheduleEvery: scheduleEvery(cfg.ScheduleEvery),
		DefaultInterval: cfg.Interval, DefaultShare: cfg.RateLimitShare, DefaultRemovalThreshold: cfg.RemovalThreshold,
		TimeScale: cfg.OktaTimeScale,
	})
	if err != nil {
		return err
	}
	hookRegs, err := api.OpenHooks(ctx, js, cfg.StreamReplicas, 0)
	if err != nil {
		return err
	}
	// The catalog's API keys and roles: every call of the SyncService and
	// the AccessService is authenticated by its bearer key.
	keys, err := auth.Open(ctx, js, auth.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return fmt.Errorf("%s: open the API keys and roles: %w", Name, err)
	}
	path, h := api.New(api.Deps{Bus: deps.Bus, Connectors: conns, Runs: rs, Leases: leases,
		Hooks: hookRegs, Okta: w.OktaClient, HookEventTypes: hooks.HookEventTypes()},
		connect.WithInterceptors(auth.Interceptor(keys)))
	deps.Mux.Handle(path, h)
	// Okta's deliveries are stored before they are answered; the intake
	// turns them into sync requests.
	deps.Mux.Handle(hooks.PathPrefix, hooks.NewReceiver(deps.Bus, conns, hooks.ReceiverOptions{Logger: log}))
	var co hooks.Coalescer
	sink := hooks.SinkFunc(func(ctx context.Context, connector string, work []hooks.Work) error {
		return requestTargeted(ctx, deps.Bus, connector, work)
	})
	if deps.Redis != nil {
		if co, err = hooks.NewRedisCoalescer(deps.Redis, "accessbus:hooks:", sink, hooks.CoalescerOptions{}); err != nil {
			return err
		}
	} else {
		co = hooks.NewMemoryCoalescer(sink, hooks.CoalescerOptions{})
	}
	intake, err := hooks.NewIntake(ctx, deps.Bus, co, hooks.IntakeOptions{Replicas: cfg.StreamReplicas, Logger: log})
	if err != nil {
		return err
	}
	path, h, err = AccessHandler(ctx, js, AccessConfig{
		Auth:      keys,
		Hold:      holdFor(leases, cfg.LeaseTTL),
		Publisher: deps.Bus,
		Exists: func(ctx context.Context, id string) (bool, error) {
			_, err := conns.Get(ctx, id)
			if errors.Is(err, connectors.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		Log: log,
	})
	if err != nil {
		return err
	}
	deps.Mux.Handle(path, h)
	if err := w.Start(ctx); err != nil {
		return err
	}
	intakeSub, err := intake.Consume(ctx)
	if err != nil {
		return err
	}
	pollDone := make(chan struct{})
	if cfg.LogPollEvery > 0 {
		poller, err := hooks.NewPoller(ctx, js, intake, &pollSource{conns: conns, state: st, w: w},
			hooks.PollerOptions{Every: cfg.LogPollEvery, Replicas: cfg.StreamReplicas, Logger: log})
		if err != nil {
			return err
		}
		go func() { defer close(pollDone); poller.Run(ctx) }()
	} else {
		close(pollDone)
	}
	deps.Health.SetReady(Name, nil)
	log.Info("sync service ready", "workers", cfg.Workers, "interval", cfg.Interval.String())
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	<-pollDone
	return errors.Join(intakeSub.Stop(stopCtx), co.Close(), w.Stop(stopCtx))
}

// pollSource gives the System Log poller the connectors with a token, their
// Okta clients and their last completed full sync.
type pollSource struct {
	conns *connectors.Store
	state *state.Store
	w     *worker.Worker
}

func (p *pollSource) Connectors(ctx context.Context) ([]string, error) {
	cs, err := p.conns.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cs {
		if c.GetTokenSet() {
			ids = append(ids, c.GetId())
		}
	}
	return ids, nil
}

func (p *pollSource) Client(ctx context.Context, id string) (*okta.Client, error) {
	c, err := p.conns.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return p.w.OktaClient(ctx, c)
}

// SyncedSince is the Okta time (the org's clock, from its Date header) at
// which the connector's last full sync began, as the full sync records it.
func (p *pollSource) SyncedSince(ctx context.Context, id string) (time.Time, bool, error) {
	m, err := p.state.Meta(ctx, id)
	if err != nil {
		return time.Time{}, false, err
	}
	at := m.Watermark
	if at.IsZero() {
		at = m.LastFull
	}
	return at, !at.IsZero(), nil
}

// requestTargeted hands coalesced hook work to the sync workers as one
// targeted request. Its id is derived from the events behind it, so a
// handoff retried after a crash publishes the same message.
func requestTargeted(ctx context.Context, b *bus.Bus, connector string, work []hooks.Work) error {
	req := &eventsv1.SyncRequest{ConnectorId: connector, Mode: eventsv1.SyncMode_SYNC_MODE_TARGETED,
		RequestedBy: "okta-event-hook"}
	h := sha256.New()
	events := 0
	for _, wk := range work {
		req.Targets = append(req.Targets, wk.Target)
		for _, u := range wk.EventUUIDs {
			h.Write([]byte(u))
			h.Write([]byte{0})
			events++
		}
	}
	req.RequestId = "hook-" + hex.EncodeToString(h.Sum(nil))[:32]
	req.Reason = fmt.Sprintf("%d Okta events on %d targets", events, len(work))
	_, err := worker.Request(ctx, b, req)
	return err
}

// scheduleEvery maps the config's 0 (off) onto the worker's negative.
func scheduleEvery(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// snapshotWait bounds how long a snapshot waits for a running sync.
const snapshotWait = 30 * time.Second

// holdFor holds a connector's sync lease for a snapshot, waiting up to
// snapshotWait for a running sync to finish.
func holdFor(leases *lease.Manager, ttl time.Duration) func(ctx context.Context, connector string) (func(), error) {
	return func(ctx context.Context, connector string) (func(), error) {
		deadline := time.Now().Add(snapshotWait)
		for {
			_, l, err := leases.Acquire(ctx, worker.LeaseName(connector), ttl)
			if err == nil {
				return func() { _ = l.Release(context.WithoutCancel(ctx)) }, nil
			}
			if !errors.Is(err, lease.ErrHeld) {
				return nil, err
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("connector %s has been syncing for over %s: %w; try again when its run completes", connector, snapshotWait, ErrAccessBusy)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}
