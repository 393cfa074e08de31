// Package notifier is the notifier service: it emails connector owners and requesters when they must act.
package notifier

import (
	"context"

	"github.com/accessbus/accessbus/libs/service"
)

// Name is the service's name in logs, metrics and readiness reports.
const Name = "notifier"

// Config is the notifier service's configuration, read from the environment.
type Config struct {
	service.Config
}

// ConfigFromEnv reads Config from the process environment with its defaults.
func ConfigFromEnv(ctx context.Context) (Config, error) {
	return service.LoadEnv[Config](ctx, Name)
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

// Run starts the service and returns when ctx ends. Its consumers and APIs
// arrive with the service's own issue; until then it starts, reports ready
// and stops cleanly.
func Run(ctx context.Context, deps Deps) error {
	return service.Idle(ctx, deps.Deps, Name)
}
