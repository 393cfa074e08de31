// Package service is the shape every accessbus service's main follows:
// configuration from the environment, telemetry, NATS and Redis connections,
// /healthz, /readyz and /metrics, and a graceful shutdown under a deadline.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// Deps are the shared dependencies handed to a service's Run.
type Deps struct {
	Logger    *slog.Logger
	Telemetry *telemetry.Telemetry
	NATS      *nats.Conn
	Bus       *bus.Bus
	// Redis is nil when the process runs with in-memory shared state.
	Redis *redis.Client
	// Mux is the process's HTTP mux; a service mounts its APIs here.
	Mux *http.ServeMux
	// Health is where a service reports readiness under its own name.
	Health *Health
}

// Service is one service's entry point. Run starts the service's work, calls
// deps.Health.SetReady(name, nil) once it is ready, and returns after ctx ends
// and its consumers are stopped.
type Service struct {
	Name string
	Run  func(ctx context.Context, deps Deps) error
}

// Process describes a running process: its dependencies, its services and
// how to take it down.
type Process struct {
	// Listener serves HTTP; when nil, HTTPAddr is listened on.
	Listener        net.Listener
	HTTPAddr        string
	ShutdownTimeout time.Duration
	Deps            Deps
	Services        []Service
	// AfterDrain runs last, after NATS is drained and HTTP stopped (for
	// example to shut down an embedded NATS server).
	AfterDrain []func(context.Context) error
}

// Serve runs the services until ctx ends or one of them fails, then shuts
// down in order: not ready, services stop their consumers, NATS drains
// (flushing acks and publishes), HTTP stops, Redis closes, telemetry flushes.
// The whole shutdown is bounded by ShutdownTimeout.
func Serve(ctx context.Context, p Process) error {
	d := p.Deps
	log := d.Logger
	d.Health.Mount(d.Mux)
	d.Mux.Handle("GET /metrics", d.Telemetry.MetricsHandler())
	// Every service is starting, not ready, before the first probe can be
	// answered: /readyz never answers ready before the services are.
	for _, s := range p.Services {
		d.Health.Register(s.Name)
	}

	ln := p.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", p.HTTPAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", p.HTTPAddr, err)
		}
	}
	srv := &http.Server{Handler: d.Mux, ReadHeaderTimeout: 10 * time.Second}
	httpErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
		}
	}()
	log.Info("http listening", "addr", ln.Addr().String())

	runCtx, stopServices := context.WithCancel(ctx)
	defer stopServices()
	done := make(chan error, len(p.Services))
	for _, s := range p.Services {
		go func() {
			err := s.Run(runCtx, d)
			if err != nil {
				err = fmt.Errorf("service %s: %w", s.Name, err)
			}
			done <- err
		}()
	}

	var runErr error
	remaining := len(p.Services)
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-done:
		remaining--
		runErr = err
		if runErr == nil {
			runErr = errors.New("a service stopped on its own")
		}
		log.Error("service stopped; shutting the process down", "err", runErr)
	case err := <-httpErr:
		runErr = err
		log.Error("HTTP server failed; shutting down", "err", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.ShutdownTimeout)
	defer cancel()
	d.Health.ShuttingDown()
	stopServices()
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	for remaining > 0 {
		select {
		case err := <-done:
			remaining--
			if err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, err)
			}
		case <-shutdownCtx.Done():
			errs = append(errs, fmt.Errorf("%d service(s) did not stop within %s", remaining, p.ShutdownTimeout))
			remaining = 0
		}
	}
	if err := drainNATS(shutdownCtx, d.NATS); err != nil {
		errs = append(errs, err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP: %w", err))
	}
	if d.Redis != nil {
		if err := d.Redis.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close Redis: %w", err))
		}
	}
	for _, f := range p.AfterDrain {
		if err := f(shutdownCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.Telemetry.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("flush telemetry: %w", err))
	}
	if len(errs) == 0 {
		log.Info("stopped cleanly")
	}
	return errors.Join(errs...)
}

// drainNATS flushes pending publishes and acks and closes the connection.
func drainNATS(ctx context.Context, nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain NATS: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain NATS: %w", ctx.Err())
	}
}

// Main runs one service as its own process from cfg: it sets up telemetry
// and logs, connects to NATS and (when configured) Redis, declares the
// streams, and serves until ctx ends. cmd/<name>/main.go calls it.
func Main(ctx context.Context, cfg Config, svc Service) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	level, _ := telemetry.ParseLevel(cfg.LogLevel)
	log := telemetry.NewLogger(os.Stdout, level).With("service", svc.Name)
	ctx = telemetry.WithLogger(ctx, log)

	tel, err := telemetry.Setup(ctx, telemetry.ConfigFromEnv(svc.Name))
	if err != nil {
		return err
	}
	deps, err := Connect(ctx, ConnectOptions{
		Logger:         log,
		Telemetry:      tel,
		NATSURL:        cfg.NATSURL,
		ClientName:     "accessbus-" + svc.Name,
		RedisURL:       cfg.RedisURL,
		StreamReplicas: cfg.StreamReplicas,
	})
	if err != nil {
		_ = tel.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	return Serve(ctx, Process{
		HTTPAddr:        cfg.HTTPAddr,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Deps:            deps,
		Services:        []Service{svc},
	})
}

// ConnectOptions say how Connect reaches NATS and Redis.
type ConnectOptions struct {
	Logger    *slog.Logger
	Telemetry *telemetry.Telemetry
	// NATSURL is used unless NATSOptions already name a server (for example
	// an in-process connection to an embedded server).
	NATSURL     string
	NATSOptions []nats.Option
	ClientName  string
	RedisURL    string
	// StreamReplicas and StreamStorage shape the declared streams.
	StreamReplicas int
	StreamStorage  jetstream.StorageType
}

// Connect opens the NATS connection (retrying while the server starts),
// declares every stream, and opens Redis when configured; it returns the
// Deps a Process serves with. On error nothing stays open.
func Connect(ctx context.Context, o ConnectOptions) (Deps, error) {
	log := o.Logger
	opts := append([]nats.Option{
		nats.Name(o.ClientName),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}, o.NATSOptions...)
	nc, err := nats.Connect(o.NATSURL, opts...)
	if err != nil {
		return Deps{}, fmt.Errorf("connect to NATS at %s: %w", o.NATSURL, err)
	}
	// An asynchronous publish whose ack never comes (lost in a reconnect)
	// fails after a minute instead of holding a place among the pending
	// publishes for the life of the process.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Minute))
	if err != nil {
		nc.Close()
		return Deps{}, fmt.Errorf("open JetStream: %w", err)
	}
	b, err := bus.New(js, bus.Options{
		TracerProvider: o.Telemetry.TracerProvider(),
		MeterProvider:  o.Telemetry.MeterProvider(),
		Propagator:     o.Telemetry.Propagator(),
		Logger:         log,
	})
	if err != nil {
		nc.Close()
		return Deps{}, err
	}
	declCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := declareWhenReachable(declCtx, js, bus.Streams(bus.StreamOptions{Replicas: o.StreamReplicas, Storage: o.StreamStorage}), log); err != nil {
		nc.Close()
		return Deps{}, err
	}
	health := NewHealth()
	health.AddCheck("nats", func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", s)
		}
		return nil
	})
	deps := Deps{Logger: log, Telemetry: o.Telemetry, NATS: nc, Bus: b, Mux: http.NewServeMux(), Health: health}
	if o.RedisURL != "" {
		rdb, err := ConnectRedis(ctx, o.RedisURL)
		if err != nil {
			nc.Close()
			return Deps{}, err
		}
		health.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
		deps.Redis = rdb
	}
	return deps, nil
}

// declareWhenReachable declares the streams, retrying while NATS is still
// coming up, and logs what changed.
func declareWhenReachable(ctx context.Context, js jetstream.JetStream, cfgs []jetstream.StreamConfig, log *slog.Logger) error {
	for {
		results, err := bus.DeclareStreams(ctx, js, cfgs...)
		if err == nil {
			for _, r := range results {
				if r.Outcome != bus.Unchanged {
					log.Info("stream declared", "stream", r.Name, "outcome", string(r.Outcome), "changed", r.Changed)
				}
			}
			return nil
		}
		if errors.Is(err, bus.ErrStreamConflict) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("declare streams (is NATS running with JetStream?): %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Idle is the Run of a service whose work arrives with its own issue: it
// reports ready, waits for ctx to end and stops cleanly.
func Idle(ctx context.Context, d Deps, name string) error {
	d.Logger.Info("service started", "service", name)
	d.Health.SetReady(name, nil)
	<-ctx.Done()
	d.Logger.Info("service stopped", "service", name)
	return nil
}
