package service_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
)

func TestLoadAppliesDefaults(t *testing.T) {
	var cfg service.Config
	if err := service.Load(context.Background(), &cfg, envconfig.MapLookuper(nil)); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.NATSURL != "nats://127.0.0.1:4222" || cfg.RedisURL != "" ||
		cfg.Replicas != 1 || cfg.LogLevel != "info" || cfg.ShutdownTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestLoadReadsEmbeddingStruct(t *testing.T) {
	type svcConfig struct {
		service.Config
		Interval time.Duration `env:"ACCESSBUS_TEST_INTERVAL, default=1h"`
	}
	var cfg svcConfig
	err := service.Load(context.Background(), &cfg, envconfig.MapLookuper(map[string]string{
		"ACCESSBUS_HTTP_ADDR": "127.0.0.1:9999", "ACCESSBUS_TEST_INTERVAL": "5m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9999" || cfg.Interval != 5*time.Minute {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoadRefusesUnparsableValues(t *testing.T) {
	var cfg service.Config
	err := service.Load(context.Background(), &cfg, envconfig.MapLookuper(map[string]string{"ACCESSBUS_SHUTDOWN_TIMEOUT": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "ACCESSBUS_SHUTDOWN_TIMEOUT") {
		t.Fatalf("got %v, want an error naming ACCESSBUS_SHUTDOWN_TIMEOUT", err)
	}
}

func TestValidateNamesEachBadSetting(t *testing.T) {
	ok := service.Config{HTTPAddr: ":8080", NATSURL: "nats://127.0.0.1:4222", Replicas: 1, StreamReplicas: 1, LogLevel: "info", ShutdownTimeout: time.Second}
	for _, tc := range []struct {
		name string
		mod  func(*service.Config)
		want string
	}{
		{"http addr", func(c *service.Config) { c.HTTPAddr = "8080" }, "ACCESSBUS_HTTP_ADDR"},
		{"nats scheme", func(c *service.Config) { c.NATSURL = "http://x:4222" }, "ACCESSBUS_NATS_URL"},
		{"nats host", func(c *service.Config) { c.NATSURL = "nats://" }, "ACCESSBUS_NATS_URL"},
		{"redis", func(c *service.Config) { c.RedisURL = "redis://:bad:port:x" }, "ACCESSBUS_REDIS_URL"},
		{"replicas without redis", func(c *service.Config) { c.Replicas = 2 }, "needs ACCESSBUS_REDIS_URL"},
		{"replicas zero", func(c *service.Config) { c.Replicas = 0 }, "ACCESSBUS_REPLICAS"},
		{"stream replicas", func(c *service.Config) { c.StreamReplicas = 7 }, "ACCESSBUS_STREAM_REPLICAS"},
		{"log level", func(c *service.Config) { c.LogLevel = "chatty" }, "ACCESSBUS_LOG_LEVEL"},
		{"shutdown", func(c *service.Config) { c.ShutdownTimeout = 0 }, "ACCESSBUS_SHUTDOWN_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	c := ok
	c.Replicas, c.RedisURL = 3, "redis://127.0.0.1:6379/0"
	if err := c.Validate(); err != nil {
		t.Fatalf("replicas with redis: %v", err)
	}
}

func TestRedisURLErrorsHidePasswords(t *testing.T) {
	_, err := service.ParseRedisURL("redis://user:hunter2@host:notaport/0")
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestHealthReportsWhatIsNotReady(t *testing.T) {
	h := service.NewHealth()
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := &http.Server{Handler: mux}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	h.Register("sync")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "sync") {
		t.Fatalf("/readyz while starting: %d %s", code, body)
	}
	h.SetReady("sync", nil)
	h.AddCheck("redis", func(context.Context) error { return errors.New("connection refused") })
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz with a failing check: %d %s", code, body)
	}
	h.AddCheck("redis", func(context.Context) error { return nil })
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz when ready: %d", code)
	}
	h.ShuttingDown()
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz while shutting down: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
}

// startProcess serves the given services on an embedded NATS until stop.
func startProcess(t *testing.T, timeout time.Duration, svcs ...service.Service) (addr string, stop func() error, logs *strings.Builder) {
	t.Helper()
	srv := testkit.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &strings.Builder{}
	log := telemetry.NewLogger(&lockedWriter{w: logs}, 0)
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deps, err := service.Connect(ctx, service.ConnectOptions{Logger: log, Telemetry: tel, NATSURL: srv.URL, ClientName: "t", StreamStorage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	errCh := make(chan error, 1)
	go func() {
		errCh <- service.Serve(ctx, service.Process{Listener: ln, ShutdownTimeout: timeout, Deps: deps, Services: svcs})
	}()
	return ln.Addr().String(), func() error { cancel(); return <-errCh }, logs
}

type lockedWriter struct {
	w  io.Writer
	mu chanMutex
}

type chanMutex struct{ ch chan struct{} }

func (l *lockedWriter) Write(p []byte) (int, error) {
	if l.mu.ch == nil {
		l.mu.ch = make(chan struct{}, 1)
	}
	l.mu.ch <- struct{}{}
	defer func() { <-l.mu.ch }()
	return l.w.Write(p)
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	for range 200 {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("not ready in 4s")
}

func TestServeStopsServicesBeforeDrainingAndReportsStuckOnes(t *testing.T) {
	stopped := make(chan struct{})
	ready := func(name string) service.Service {
		return service.Service{Name: name, Run: func(ctx context.Context, d service.Deps) error {
			d.Health.SetReady(name, nil)
			<-ctx.Done()
			// The NATS connection is still open while the service stops.
			if d.NATS.IsClosed() {
				t.Errorf("%s: NATS closed before the service stopped", name)
			}
			close(stopped)
			return nil
		}}
	}
	addr, stop, logs := startProcess(t, 5*time.Second, ready("a"))
	waitReady(t, addr)
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	<-stopped
	if !strings.Contains(logs.String(), "stopped cleanly") {
		t.Fatalf("logs: %s", logs.String())
	}

	stuck := service.Service{Name: "stuck", Run: func(ctx context.Context, d service.Deps) error {
		d.Health.SetReady("stuck", nil)
		<-ctx.Done()
		time.Sleep(3 * time.Second)
		return nil
	}}
	addr, stop, _ = startProcess(t, 300*time.Millisecond, stuck)
	waitReady(t, addr)
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "did not stop") {
		t.Fatalf("stuck service: %v", err)
	}
}

func TestServeShutsDownWhenAServiceFails(t *testing.T) {
	boom := service.Service{Name: "boom", Run: func(ctx context.Context, d service.Deps) error {
		return errors.New("cannot read the connector bucket")
	}}
	_, stop, _ := startProcess(t, 5*time.Second, boom)
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "service boom: cannot read the connector bucket") {
		t.Fatalf("got %v", err)
	}
}

func TestMainRefusesInvalidConfig(t *testing.T) {
	err := service.Main(context.Background(), service.Config{HTTPAddr: "x"}, service.Service{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "invalid configuration") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadEnvNamesTheServiceAndVariable(t *testing.T) {
	t.Setenv("ACCESSBUS_SHUTDOWN_TIMEOUT", "soon")
	_, err := service.LoadEnv[service.Config](context.Background(), "catalog")
	if err == nil || !strings.Contains(err.Error(), "catalog") || !strings.Contains(err.Error(), "ACCESSBUS_SHUTDOWN_TIMEOUT") {
		t.Fatalf("got %v", err)
	}
	t.Setenv("ACCESSBUS_SHUTDOWN_TIMEOUT", "5s")
	cfg, err := service.LoadEnv[service.Config](context.Background(), "catalog")
	if err != nil || cfg.ShutdownTimeout != 5*time.Second {
		t.Fatalf("got %+v %v", cfg, err)
	}
}

// /readyz never answers ready while a service has not said it is, not even
// for a probe that arrives as the listener opens.
func TestReadyzIsNotReadyBeforeTheServices(t *testing.T) {
	release := make(chan struct{})
	slow := service.Service{Name: "slow", Run: func(ctx context.Context, d service.Deps) error {
		<-release
		d.Health.SetReady("slow", nil)
		<-ctx.Done()
		return nil
	}}
	// Probes sent as the process starts (Serve runs in its own goroutine).
	answers := make(chan int, 20)
	addr, stop, _ := startProcess(t, 5*time.Second, slow)
	for range cap(answers) {
		go func() {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				answers <- 0
				return
			}
			resp.Body.Close()
			answers <- resp.StatusCode
		}()
	}
	for range cap(answers) {
		if code := <-answers; code == http.StatusOK {
			t.Fatal("/readyz answered ready before the service was")
		}
	}
	close(release)
	waitReady(t, addr)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
