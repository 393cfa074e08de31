package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Environment variables read by ConfigFromEnv. They are the standard
// OpenTelemetry names, so the usual collector setup works unchanged.
const (
	// EnvOTLPEndpoint holds the base URL of an OTLP/HTTP collector, e.g.
	// "http://otel-collector:4318".
	EnvOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	// EnvServiceName overrides the service name given to ConfigFromEnv.
	EnvServiceName = "OTEL_SERVICE_NAME"
)

// Config says what Setup builds.
type Config struct {
	// ServiceName is the service.name resource attribute, e.g. "sync".
	// Required.
	ServiceName string
	// ServiceVersion is the service.version resource attribute. Optional.
	ServiceVersion string
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector, with scheme
	// http or https and an optional path prefix; traces go to
	// <endpoint>/v1/traces and metrics to <endpoint>/v1/metrics, as the
	// OpenTelemetry spec defines for OTEL_EXPORTER_OTLP_ENDPOINT. Empty
	// means nothing is exported. Headers, timeouts and compression still
	// follow the standard OTEL_EXPORTER_OTLP_* variables.
	OTLPEndpoint string
}

// ConfigFromEnv returns the Config for service: OTLPEndpoint from
// OTEL_EXPORTER_OTLP_ENDPOINT, ServiceName from OTEL_SERVICE_NAME when set
// (so one binary can be told apart per deployment) and service otherwise,
// and ServiceVersion from the binary's build information when it has one.
func ConfigFromEnv(service string) Config {
	cfg := Config{
		ServiceName:    service,
		ServiceVersion: buildVersion(),
		OTLPEndpoint:   strings.TrimSpace(os.Getenv(EnvOTLPEndpoint)),
	}
	if name := strings.TrimSpace(os.Getenv(EnvServiceName)); name != "" {
		cfg.ServiceName = name
	}
	return cfg
}

// buildVersion returns the main module version, or the VCS revision for a
// development build, or "" when neither is recorded.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return ""
}

// Telemetry owns one service's tracing and metrics providers and its
// Prometheus registry. Create it with Setup and release it with Shutdown.
type Telemetry struct {
	tracerProvider *sdktrace.TracerProvider
	meterProvider  *sdkmetric.MeterProvider
	propagator     propagation.TextMapPropagator
	registry       *prometheus.Registry
	metricsHandler http.Handler

	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the providers for cfg. Spans are always recorded and sampled
// (unless an incoming parent says otherwise), so trace context propagates
// over the bus and log lines carry trace ids even when nothing is exported;
// with cfg.OTLPEndpoint set, spans and metrics are also sent there over
// OTLP/HTTP. Metrics are always served for Prometheus by MetricsHandler,
// from a registry of this Telemetry's own that also holds Go runtime and
// process collectors. Setup changes no global state; see InstallGlobal.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if strings.TrimSpace(cfg.ServiceName) == "" {
		return nil, fmt.Errorf("set up telemetry: %w: service name is empty", ErrInvalidConfig)
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("set up telemetry for %s: %w", cfg.ServiceName, err)
	}

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("set up telemetry for %s: register Go collector: %w", cfg.ServiceName, err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("set up telemetry for %s: register process collector: %w", cfg.ServiceName, err)
	}
	promExporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("set up telemetry for %s: create Prometheus exporter: %w", cfg.ServiceName, err)
	}

	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// Explicit, so OTEL_TRACES_SAMPLER cannot silently turn off the
		// trace ids that logs and bus headers rely on.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	meterOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(promExporter),
	}
	if cfg.OTLPEndpoint != "" {
		ep, err := parseEndpoint(cfg.OTLPEndpoint)
		if err != nil {
			return nil, fmt.Errorf("set up telemetry for %s: %w", cfg.ServiceName, err)
		}
		spanExporter, err := otlptracehttp.New(ctx, ep.traceOptions()...)
		if err != nil {
			return nil, fmt.Errorf("set up telemetry for %s: create OTLP trace exporter for %s: %w", cfg.ServiceName, ep, err)
		}
		metricExporter, err := otlpmetrichttp.New(ctx, ep.metricOptions()...)
		if err != nil {
			// Nothing has been sent yet; the shutdown only releases the client.
			_ = spanExporter.Shutdown(ctx)
			return nil, fmt.Errorf("set up telemetry for %s: create OTLP metric exporter for %s: %w", cfg.ServiceName, ep, err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(spanExporter))
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExporter)))
	}

	return &Telemetry{
		tracerProvider: sdktrace.NewTracerProvider(traceOpts...),
		meterProvider:  sdkmetric.NewMeterProvider(meterOpts...),
		propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:       reg,
		metricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			// A broken collector should cost its own series, not the
			// whole scrape; the failure is counted in
			// promhttp_metric_handler_errors_total on reg.
			ErrorHandling: promhttp.ContinueOnError,
			Registry:      reg,
		}),
	}, nil
}

// newResource describes the service to every span and metric. It does not
// read OTEL_RESOURCE_ATTRIBUTES: what a service reports should follow from
// its Config alone.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(attrs...),
	)
	if err != nil {
		return nil, fmt.Errorf("describe service resource: %w", err)
	}
	return res, nil
}

// otlpEndpoint is a parsed OTLPEndpoint.
type otlpEndpoint struct {
	host     string
	basePath string
	insecure bool
	raw      string
}

// String returns the endpoint for error messages.
func (e otlpEndpoint) String() string { return e.raw }

// parseEndpoint checks an OTLP base URL. The exporters' own WithEndpointURL
// would take the path literally instead of appending /v1/traces, which is
// not what OTEL_EXPORTER_OTLP_ENDPOINT means, so the parts are set one by one.
func parseEndpoint(raw string) (otlpEndpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The url.Error repeats the raw text, which may hold credentials.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return otlpEndpoint{}, fmt.Errorf("parse OTLP endpoint: %w: %w", ErrInvalidConfig, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return otlpEndpoint{}, fmt.Errorf("parse OTLP endpoint %s: %w: scheme must be http or https, as in http://otel-collector:4318", u.Redacted(), ErrInvalidConfig)
	}
	if u.Host == "" {
		return otlpEndpoint{}, fmt.Errorf("parse OTLP endpoint %s: %w: no host", u.Redacted(), ErrInvalidConfig)
	}
	if u.User != nil {
		// The exporters ignore user info; failing beats silently sending
		// unauthenticated requests.
		return otlpEndpoint{}, fmt.Errorf("parse OTLP endpoint %s: %w: credentials in the URL are not supported, use OTEL_EXPORTER_OTLP_HEADERS", u.Redacted(), ErrInvalidConfig)
	}
	return otlpEndpoint{
		host:     u.Host,
		basePath: strings.TrimSuffix(u.Path, "/"),
		insecure: u.Scheme == "http",
		raw:      u.Redacted(),
	}, nil
}

// traceOptions configures otlptracehttp for e.
func (e otlpEndpoint) traceOptions() []otlptracehttp.Option {
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(e.host),
		otlptracehttp.WithURLPath(e.basePath + "/v1/traces"),
	}
	if e.insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return opts
}

// metricOptions configures otlpmetrichttp for e.
func (e otlpEndpoint) metricOptions() []otlpmetrichttp.Option {
	opts := []otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpoint(e.host),
		otlpmetrichttp.WithURLPath(e.basePath + "/v1/metrics"),
	}
	if e.insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	}
	return opts
}

// TracerProvider returns the provider to create tracers from.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracerProvider }

// MeterProvider returns the provider to create meters from. Its
// instruments appear on MetricsHandler and, with an OTLP endpoint, are
// exported there too.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meterProvider }

// Propagator returns the W3C Trace Context and Baggage propagator used to
// carry trace context in NATS and HTTP headers.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Registry returns this Telemetry's Prometheus registry, for code that
// exposes its own prometheus.Collectors next to the OpenTelemetry metrics.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// MetricsHandler returns the HTTP handler that serves the registry in the
// Prometheus exposition format, to mount at /metrics.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metricsHandler }

// InstallGlobal makes t's providers and propagator the otel package globals,
// for mains whose dependencies instrument themselves through otel.Tracer and
// friends. Libraries must not call it; with several Telemetry values in one
// process, the last call wins.
func (t *Telemetry) InstallGlobal() {
	otel.SetTracerProvider(t.tracerProvider)
	otel.SetMeterProvider(t.meterProvider)
	otel.SetTextMapPropagator(t.propagator)
}

// Shutdown flushes pending spans and metrics to the OTLP endpoint, if any,
// and stops the providers; spans and instruments created afterwards do
// nothing. It waits at most until ctx is done. Only the first call does the
// work; later calls return its result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		var errs []error
		if err := t.tracerProvider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down tracer provider: %w", err))
		}
		if err := t.meterProvider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down meter provider: %w", err))
		}
		if err := errors.Join(errs...); err != nil {
			t.shutdownErr = fmt.Errorf("shut down telemetry: %w", err)
		}
	})
	return t.shutdownErr
}
