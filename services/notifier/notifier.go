// Package notifier is the notifier service: it emails connector owners,
// requesters and grantees when they must act, over SMTP, once per event.
// docs/notifier.md says what is sent when, to whom, and with which
// guarantees.
package notifier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/notifier/internal/delivery"
	"github.com/accessbus/accessbus/services/notifier/internal/directory"
	"github.com/accessbus/accessbus/services/notifier/internal/mailer"
	"github.com/accessbus/accessbus/services/notifier/internal/rules"
)

// Name is the service's name in logs, metrics and readiness reports.
const Name = "notifier"

// Durable consumer names.
const (
	ConsumerDirectory    = "notifier-directory"
	ConsumerConnectors   = "notifier-connectors"
	ConsumerSync         = "notifier-sync"
	ConsumerProvisioning = "notifier-provisioning"
)

// Password is the SMTP password: a telemetry.Secret that the environment
// can fill, so it prints as [REDACTED] wherever it ends up.
type Password struct{ telemetry.Secret }

// EnvDecode lets github.com/sethvargo/go-envconfig fill a Password.
func (p *Password) EnvDecode(val string) error {
	p.Secret = telemetry.NewSecret(val)
	return nil
}

// Config is the notifier service's configuration, read from the environment.
type Config struct {
	service.Config
	// SMTPAddr is the SMTP server, host:port (required).
	SMTPAddr string `env:"ACCESSBUS_SMTP_ADDR"`
	// SMTPUsername and SMTPPassword authenticate when the username is set;
	// the password is never logged.
	SMTPUsername string   `env:"ACCESSBUS_SMTP_USERNAME"`
	SMTPPassword Password `env:"ACCESSBUS_SMTP_PASSWORD"`
	// SMTPTLS is starttls, starttls-required, none or tls.
	SMTPTLS string `env:"ACCESSBUS_SMTP_TLS, default=starttls-required"`
	// SMTPTimeout bounds connecting and each SMTP command.
	SMTPTimeout time.Duration `env:"ACCESSBUS_SMTP_TIMEOUT, default=30s"`
	// MailFrom is the sender, such as "accessbus <accessbus@example.com>" (required).
	MailFrom string `env:"ACCESSBUS_MAIL_FROM"`
	// PublicBaseURL is where people open accessbus; links in emails start with it.
	PublicBaseURL string `env:"ACCESSBUS_PUBLIC_BASE_URL, default=http://127.0.0.1:8080"`
	// PerRecipientPerHour caps the emails one address gets in any hour.
	PerRecipientPerHour int `env:"ACCESSBUS_MAIL_PER_RECIPIENT_PER_HOUR, default=20"`
	// MaxAttempts bounds the attempts of an email that SMTP refuses for now (4xx).
	MaxAttempts int `env:"ACCESSBUS_MAIL_MAX_ATTEMPTS, default=8"`
	// RetryBase and RetryMax shape the growing delay between those attempts.
	RetryBase time.Duration `env:"ACCESSBUS_MAIL_RETRY_BASE, default=30s"`
	RetryMax  time.Duration `env:"ACCESSBUS_MAIL_RETRY_MAX, default=10m"`
	// MaxEventAge: events stored longer ago are not mailed about.
	MaxEventAge time.Duration `env:"ACCESSBUS_MAIL_MAX_EVENT_AGE, default=24h"`
	// Workers is how many events each consumer handles at once.
	Workers int `env:"ACCESSBUS_NOTIFIER_WORKERS, default=4"`
}

// ConfigFromEnv reads Config from the process environment with its defaults.
func ConfigFromEnv(ctx context.Context) (Config, error) {
	return service.LoadEnv[Config](ctx, Name)
}

// Validate checks the notifier's settings beyond the shared ones; each
// error names the variable and what to put there.
func (c Config) Validate() error {
	var errs []error
	if c.SMTPAddr == "" {
		errs = append(errs, errors.New("ACCESSBUS_SMTP_ADDR is not set: set it to the SMTP server's host:port, such as smtp.example.com:587"))
	}
	mode, err := mailer.ParseTLSMode(c.SMTPTLS)
	if err != nil {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SMTP_TLS %w", err))
	}
	if c.SMTPUsername != "" && mode == mailer.TLSNone {
		errs = append(errs, errors.New("ACCESSBUS_SMTP_USERNAME is set but ACCESSBUS_SMTP_TLS is none: the password would cross the network in the clear; use starttls-required or tls"))
	}
	if c.SMTPUsername == "" && c.SMTPPassword.IsSet() {
		errs = append(errs, errors.New("ACCESSBUS_SMTP_PASSWORD is set without ACCESSBUS_SMTP_USERNAME: set the username too"))
	}
	if c.SMTPTimeout <= 0 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_SMTP_TIMEOUT %s: must be positive, for example 30s", c.SMTPTimeout))
	}
	if c.MailFrom == "" {
		errs = append(errs, errors.New("ACCESSBUS_MAIL_FROM is not set: set it to the sender, such as \"accessbus <accessbus@example.com>\""))
	}
	u, err := url.Parse(c.PublicBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("ACCESSBUS_PUBLIC_BASE_URL %q: want an absolute http or https URL, such as https://accessbus.example.com", c.PublicBaseURL))
	}
	if c.PerRecipientPerHour < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_MAIL_PER_RECIPIENT_PER_HOUR %d: must be 1 or more", c.PerRecipientPerHour))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_MAIL_MAX_ATTEMPTS %d: must be 1 or more", c.MaxAttempts))
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("ACCESSBUS_MAIL_RETRY_BASE %s and ACCESSBUS_MAIL_RETRY_MAX %s: both positive, the maximum not below the base", c.RetryBase, c.RetryMax))
	}
	if c.MaxEventAge <= 0 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_MAIL_MAX_EVENT_AGE %s: must be positive, for example 24h", c.MaxEventAge))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("ACCESSBUS_NOTIFIER_WORKERS %d: must be 1 or more", c.Workers))
	}
	if len(errs) == 0 {
		// The sender's address is checked the way the mailer will use it.
		if _, err := mailer.New(c.mailerConfig(nil)); err != nil {
			errs = append(errs, fmt.Errorf("ACCESSBUS_SMTP_ADDR / ACCESSBUS_MAIL_FROM: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) mailerConfig(tlsCfg *tls.Config) mailer.Config {
	mode, _ := mailer.ParseTLSMode(c.SMTPTLS)
	return mailer.Config{Addr: c.SMTPAddr, Username: c.SMTPUsername, Password: c.SMTPPassword.Secret,
		TLS: mode, From: c.MailFrom, Timeout: c.SMTPTimeout, TLSConfig: tlsCfg}
}

// Deps are what Run needs: the shared process dependencies and the config.
type Deps struct {
	service.Deps
	Config Config
	// SMTPTLSConfig overrides the TLS settings of the SMTP connection (a
	// private CA, tests); nil uses the system's roots.
	SMTPTLSConfig *tls.Config
}

// Service wraps Run for service.Main and for the all-in-one accessbus dev.
func Service(cfg Config) service.Service {
	return service.Service{Name: Name, Run: func(ctx context.Context, d service.Deps) error {
		return Run(ctx, Deps{Deps: d, Config: cfg})
	}}
}

// Run follows the directory's identity events and mails about connector,
// sync and provisioning events until ctx ends.
func Run(ctx context.Context, deps Deps) error {
	cfg := deps.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: invalid configuration:\n%w", Name, err)
	}
	log := deps.Logger.With("service", Name)
	js := deps.Bus.JetStream()
	smtp, err := mailer.New(cfg.mailerConfig(deps.SMTPTLSConfig))
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	dir, err := directory.Open(ctx, js, directory.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return err
	}
	conns, err := connectors.Open(ctx, js, connectors.Options{Replicas: cfg.StreamReplicas})
	if err != nil {
		return err
	}
	streaks, err := rules.OpenStreaks(ctx, js, 0, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	domain := smtp.From()
	if i := strings.LastIndexByte(domain, '@'); i >= 0 {
		domain = domain[i+1:]
	}
	deliverer, err := delivery.Open(ctx, js, deps.Bus, smtp, log, delivery.Config{
		RatePerHour:     cfg.PerRecipientPerHour,
		MaxAttempts:     cfg.MaxAttempts,
		ClaimTTL:        max(delivery.DefaultClaimTTL, 10*cfg.SMTPTimeout),
		MessageIDDomain: domain,
		Replicas:        cfg.StreamReplicas,
	})
	if err != nil {
		return err
	}
	r, err := rules.New(dir, conns, deliverer, streaks, log, rules.Config{BaseURL: cfg.PublicBaseURL, MaxEventAge: cfg.MaxEventAge})
	if err != nil {
		return err
	}

	mailSpec := func(stream, durable, desc string, filter ...string) bus.ConsumerSpec {
		return bus.ConsumerSpec{
			Stream: stream, Durable: durable, Description: desc, Filter: filter,
			Concurrency: cfg.Workers, RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax,
			// Room for every SMTP attempt plus a few failed lookups; the
			// last SMTP attempt records the email as failed before the bus
			// would dead-letter the event.
			MaxDeliver: cfg.MaxAttempts + 4,
		}
	}
	consumers := []struct {
		spec   bus.ConsumerSpec
		routes []route
	}{
		{bus.ConsumerSpec{Stream: subjects.StreamCatalog, Durable: ConsumerDirectory, Concurrency: 1,
			Description: "notifier: identity emails and linked Okta users, for its directory",
			Filter:      []string{subjects.CatalogIdentityUpserted, subjects.CatalogIdentityDeleted}},
			[]route{
				on(func(ctx context.Context, _ rules.Source, ev *eventsv1.IdentityUpserted) error {
					_, err := dir.Upsert(ctx, ev.GetIdentity())
					return err
				}),
				on(func(ctx context.Context, _ rules.Source, ev *eventsv1.IdentityDeleted) error {
					_, err := dir.Delete(ctx, ev.GetIdentity())
					return err
				}),
			}},
		{mailSpec(subjects.StreamCatalog, ConsumerConnectors, "notifier: setup emails to the owners of new connectors",
			subjects.CatalogConnectorCreated, subjects.CatalogConnectorOwnersAssigned),
			[]route{on(r.ConnectorCreated), on(r.OwnersAssigned)}},
		{mailSpec(subjects.StreamSync, ConsumerSync, "notifier: emails to the owners when syncs keep failing",
			subjects.AllSyncRunsFailed, "sync.*.run.completed"),
			[]route{on(r.SyncFailed), on(r.SyncCompleted)}},
		{mailSpec(subjects.StreamProvisioning, ConsumerProvisioning, "notifier: emails about failed provisioning requests and expiring access",
			subjects.AllProvisioningFailed, subjects.AllProvisioningExpiring),
			[]route{on(r.ProvisioningFailed), on(r.Expiring)}},
	}
	var subs []*bus.Subscription
	stopAll := func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmpOr(cfg.ShutdownTimeout, 10*time.Second))
		defer cancel()
		var errs []error
		for _, s := range subs {
			errs = append(errs, s.Stop(stopCtx))
		}
		return errors.Join(errs...)
	}
	for _, c := range consumers {
		sub, err := bus.ConsumeRaw(ctx, deps.Bus, c.spec, dispatch(c.routes))
		if err != nil {
			return errors.Join(fmt.Errorf("%s: start consumer %s: %w", Name, c.spec.Durable, err), stopAll())
		}
		subs = append(subs, sub)
	}
	deps.Health.SetReady(Name, nil)
	log.Info("notifier ready", "smtp", cfg.SMTPAddr, "tls", cfg.SMTPTLS, "from", cfg.MailFrom,
		"per_recipient_per_hour", cfg.PerRecipientPerHour, "base_url", cfg.PublicBaseURL)
	<-ctx.Done()
	err = stopAll()
	log.Info("notifier stopped")
	return err
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// route handles one payload type of a consumer that receives several.
type route struct {
	typ    string
	handle func(ctx context.Context, src rules.Source, data []byte) error
}

// on makes a route for handler h of payload type T.
func on[T proto.Message](h func(ctx context.Context, src rules.Source, ev T) error) route {
	var zero T
	mt := zero.ProtoReflect().Type()
	return route{
		typ: string(mt.Descriptor().FullName()),
		handle: func(ctx context.Context, src rules.Source, data []byte) error {
			v := mt.New().Interface()
			if err := proto.Unmarshal(data, v); err != nil {
				return fmt.Errorf("decode %s: %v: %w", mt.Descriptor().FullName(), err, bus.ErrUndecodable)
			}
			return h(ctx, src, v.(T))
		},
	}
}

// dispatch routes each message by its payload type header (or, without
// one, by the type its subject carries).
func dispatch(routes []route) bus.RawHandler {
	return func(ctx context.Context, m *bus.RawMessage) error {
		typ := m.Header.Get(bus.HeaderPayloadType)
		if typ == "" {
			if s, err := subjects.Parse(m.Subject); err == nil {
				typ = s.PayloadType()
			}
		}
		for _, rt := range routes {
			if rt.typ == typ {
				src := rules.Source{Stream: m.Meta.Stream, Seq: m.Meta.Sequence.Stream, MsgID: m.Header.Get(bus.HeaderMsgID), Time: m.Meta.Timestamp}
				return rt.handle(ctx, src, m.Data)
			}
		}
		return fmt.Errorf("payload type %q on %s: the notifier does not handle it: %w", typ, m.Subject, bus.ErrUndecodable)
	}
}
