package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpRequest is one request received by a fake collector.
type otlpRequest struct {
	path        string
	contentType string
	body        []byte
}

// fakeCollector is an OTLP/HTTP endpoint that records what it receives.
type fakeCollector struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []otlpRequest
}

func newFakeCollector(t *testing.T) *fakeCollector {
	t.Helper()
	c := &fakeCollector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, otlpRequest{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: body})
		c.mu.Unlock()
		// An empty protobuf body is a valid, fully successful export response.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeCollector) requests() []otlpRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]otlpRequest(nil), c.reqs...)
}

func shutdown(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Not parallel: it sets the standard endpoint variable to prove that Setup
// itself ignores the environment.
func TestSetupWithoutEndpointExportsNothing(t *testing.T) {
	col := newFakeCollector(t)
	t.Setenv(EnvOTLPEndpoint, col.srv.URL)

	tel, err := Setup(context.Background(), Config{ServiceName: "sync"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
	sc := span.SpanContext()
	if !sc.IsValid() || !sc.IsSampled() {
		t.Errorf("span context %+v: want valid and sampled", sc)
	}
	counter, err := tel.MeterProvider().Meter("test").Int64Counter("ops")
	if err != nil {
		t.Fatalf("create counter: %v", err)
	}
	counter.Add(ctx, 1)

	carrier := propagation.MapCarrier{}
	tel.Propagator().Inject(ctx, carrier)
	if tp := carrier.Get("traceparent"); !strings.Contains(tp, sc.TraceID().String()) {
		t.Errorf("traceparent = %q, want it to carry trace id %s", tp, sc.TraceID())
	}
	span.End()

	shutdown(t, tel)
	if reqs := col.requests(); len(reqs) != 0 {
		t.Errorf("collector received %d requests, want none", len(reqs))
	}
}

func TestSetupWithEndpointExportsOTLP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		prefix     string
		tracesPath string
	}{
		{"root", "", "/v1/traces"},
		{"root with slash", "/", "/v1/traces"},
		{"path prefix", "/otlp", "/otlp/v1/traces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := newFakeCollector(t)
			tel, err := Setup(context.Background(), Config{
				ServiceName:    "provisioning",
				ServiceVersion: "1.2.3",
				OTLPEndpoint:   col.srv.URL + tc.prefix,
			})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "grant.add")
			counter, err := tel.MeterProvider().Meter("test").Int64Counter("grants")
			if err != nil {
				t.Fatalf("create counter: %v", err)
			}
			counter.Add(ctx, 2)
			span.End()

			shutdown(t, tel)

			var sawTrace, sawMetrics bool
			for _, r := range col.requests() {
				switch r.path {
				case tc.tracesPath:
					sawTrace = true
					if r.contentType != "application/x-protobuf" {
						t.Errorf("trace export content type = %q, want application/x-protobuf", r.contentType)
					}
					var req collectortrace.ExportTraceServiceRequest
					if err := proto.Unmarshal(r.body, &req); err != nil {
						t.Fatalf("decode trace export: %v", err)
					}
					if got := exportedSpanNames(&req); !strings.Contains(got, "grant.add") {
						t.Errorf("exported spans %q, want grant.add", got)
					}
				case strings.TrimSuffix(tc.tracesPath, "traces") + "metrics":
					sawMetrics = true
				default:
					t.Errorf("unexpected request to %s", r.path)
				}
			}
			if !sawTrace {
				t.Errorf("no trace export request on %s", tc.tracesPath)
			}
			if !sawMetrics {
				t.Error("no metric export request")
			}
		})
	}
}

func exportedSpanNames(req *collectortrace.ExportTraceServiceRequest) string {
	var names []string
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				names = append(names, s.GetName())
			}
		}
	}
	return strings.Join(names, ",")
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestMetricsHandlerServesOwnRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, err := Setup(ctx, Config{ServiceName: "catalog"})
	if err != nil {
		t.Fatalf("Setup a: %v", err)
	}
	t.Cleanup(func() { shutdown(t, a) })
	b, err := Setup(ctx, Config{ServiceName: "notifier"})
	if err != nil {
		t.Fatalf("Setup b (a second Telemetry must not collide with the first): %v", err)
	}
	t.Cleanup(func() { shutdown(t, b) })

	for tel, name := range map[*Telemetry]string{a: "catalog_apps_seen", b: "notifier_mails_sent"} {
		c, err := tel.MeterProvider().Meter("test").Int64Counter(name)
		if err != nil {
			t.Fatalf("create counter %s: %v", name, err)
		}
		c.Add(ctx, 3)
	}

	bodyA, bodyB := scrape(t, a.MetricsHandler()), scrape(t, b.MetricsHandler())
	checks := []struct {
		body, want, wantNot string
	}{
		{bodyA, "catalog_apps_seen_total", "notifier_mails_sent_total"},
		{bodyB, "notifier_mails_sent_total", "catalog_apps_seen_total"},
		{bodyA, `service_name="catalog"`, `service_name="notifier"`},
		{bodyA, "go_goroutines", ""},
		{bodyA, "process_", ""},
	}
	for _, c := range checks {
		if !strings.Contains(c.body, c.want) {
			t.Errorf("scrape lacks %q", c.want)
		}
		if c.wantNot != "" && strings.Contains(c.body, c.wantNot) {
			t.Errorf("scrape has %q, which belongs to the other Telemetry", c.wantNot)
		}
	}
	if !strings.Contains(bodyA, "catalog_apps_seen_total{") || !strings.Contains(bodyA, "} 3") {
		t.Errorf("scrape lacks the recorded value 3:\n%s", bodyA)
	}
}

func TestShutdownIsIdempotent(t *testing.T) {
	t.Parallel()
	tel, err := Setup(context.Background(), Config{ServiceName: "sync"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	shutdown(t, tel)
	shutdown(t, tel)
	// After shutdown, instrumentation is a no-op rather than an error.
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "late")
	span.End()
	_ = scrape(t, tel.MetricsHandler())
}

func TestSetupRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no service name", Config{ServiceName: " "}},
		{"no scheme", Config{ServiceName: "s", OTLPEndpoint: "otel-collector:4318"}},
		{"grpc scheme", Config{ServiceName: "s", OTLPEndpoint: "grpc://otel-collector:4317"}},
		{"no host", Config{ServiceName: "s", OTLPEndpoint: "http:///v1"}},
		{"unparsable", Config{ServiceName: "s", OTLPEndpoint: "http://bad host\x7f:1"}},
		{"credentials in URL", Config{ServiceName: "s", OTLPEndpoint: "https://user:" + rawToken + "@collector:4318"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tel, err := Setup(context.Background(), tc.cfg)
			if err == nil {
				shutdown(t, tel)
				t.Fatal("Setup succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), rawToken) {
				t.Errorf("error %q leaks the credential", err)
			}
		})
	}
}

// Not parallel: it sets environment variables.
func TestConfigFromEnv(t *testing.T) {
	t.Setenv(EnvOTLPEndpoint, "http://collector:4318")
	t.Setenv(EnvServiceName, "")
	cfg := ConfigFromEnv("sync")
	if cfg.ServiceName != "sync" || cfg.OTLPEndpoint != "http://collector:4318" {
		t.Errorf("ConfigFromEnv = %+v", cfg)
	}

	t.Setenv(EnvServiceName, "sync-canary")
	t.Setenv(EnvOTLPEndpoint, "")
	cfg = ConfigFromEnv("sync")
	if cfg.ServiceName != "sync-canary" || cfg.OTLPEndpoint != "" {
		t.Errorf("ConfigFromEnv with overrides = %+v", cfg)
	}
}
