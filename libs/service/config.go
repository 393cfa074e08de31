package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/accessbus/accessbus/libs/telemetry"
)

// Config is the part of every service's configuration that the process shape
// needs. Each service embeds it in its own Config struct.
type Config struct {
	// HTTPAddr serves /healthz, /readyz, /metrics and the service's APIs.
	HTTPAddr string `env:"ACCESSBUS_HTTP_ADDR, default=:8080"`
	// NATSURL is the NATS server (JetStream enabled) to connect to.
	NATSURL string `env:"ACCESSBUS_NATS_URL, default=nats://127.0.0.1:4222"`
	// RedisURL is the Redis that holds the shared rate budget, leases and
	// dedupe keys; empty means in memory, which allows one replica only.
	RedisURL string `env:"ACCESSBUS_REDIS_URL"`
	// Replicas is how many replicas of the service run; more than one requires Redis.
	Replicas int `env:"ACCESSBUS_REPLICAS, default=1"`
	// StreamReplicas is the JetStream replica count of the declared streams.
	StreamReplicas int `env:"ACCESSBUS_STREAM_REPLICAS, default=1"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"ACCESSBUS_LOG_LEVEL, default=info"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `env:"ACCESSBUS_SHUTDOWN_TIMEOUT, default=30s"`
}

// Load fills cfg (a pointer to a struct that embeds Config, or to Config
// itself) from lookup, applying defaults; a nil lookup reads the process
// environment. Validation is separate: call Validate on the result.
func Load(ctx context.Context, cfg any, lookup envconfig.Lookuper) error {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: lookup}); err != nil {
		return fmt.Errorf("read configuration from the environment: %w", nameVariables(reflect.TypeOf(cfg), err))
	}
	return nil
}

// nameVariables rewrites the Go field names at the start of envconfig's
// errors ("ShutdownTimeout: ...") into the variables a person sets.
func nameVariables(t reflect.Type, err error) error {
	msg := err.Error()
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		return err
	}
	if name := envName(t, field); name != "" {
		return fmt.Errorf("%s: %s", name, rest)
	}
	return err
}

// envName finds the environment variable of a (possibly embedded) field.
func envName(t reflect.Type, field string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == field {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return name
		}
		if f.Anonymous {
			if n := envName(f.Type, field); n != "" {
				return n
			}
		}
	}
	return ""
}

// Validate returns one clear error per invalid setting, naming the variable
// and what to put there.
func (c Config) Validate() error {
	var errs []error
	if err := validateHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("ACCESSBUS_HTTP_ADDR %q: %w", c.HTTPAddr, err))
	}
	if err := ValidateNATSURL(c.NATSURL); err != nil {
		errs = append(errs, fmt.Errorf("ACCESSBUS_NATS_URL %q: %w", c.NATSURL, err))
	}
	if c.RedisURL != "" {
		if _, err := ParseRedisURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("ACCESSBUS_REDIS_URL: %w", err))
		}
	}
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_REPLICAS %d: must be 1 or more", c.Replicas))
	} else if c.Replicas > 1 && c.RedisURL == "" {
		errs = append(errs, fmt.Errorf("ACCESSBUS_REPLICAS %d: more than one replica needs ACCESSBUS_REDIS_URL, since without Redis the rate budget and leases live in one process's memory", c.Replicas))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_STREAM_REPLICAS %d: must be between 1 and 5", c.StreamReplicas))
	}
	if _, err := telemetry.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("ACCESSBUS_LOG_LEVEL: %w", err))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SHUTDOWN_TIMEOUT %s: must be positive, for example 30s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

func validateHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port such as :8080 or 127.0.0.1:8080: %w", err)
	}
	if port == "" {
		return errors.New("want host:port such as :8080: the port is missing")
	}
	return nil
}

// ValidateNATSURL checks a NATS server URL (nats://, tls://, ws:// or wss://;
// several may be given comma-separated).
func ValidateNATSURL(raw string) error {
	if raw == "" {
		return errors.New("empty; set it to a server such as nats://127.0.0.1:4222")
	}
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("not a URL: %w", err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("scheme %q: use nats://, tls://, ws:// or wss://", u.Scheme)
		}
		if u.Host == "" {
			return errors.New("the host is missing, for example nats://127.0.0.1:4222")
		}
	}
	return nil
}

// LoadEnv reads a service's configuration struct T (which embeds Config)
// from the process environment with its defaults; errors name the service.
func LoadEnv[T any](ctx context.Context, name string) (T, error) {
	var cfg T
	if err := Load(ctx, &cfg, nil); err != nil {
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}
