package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/accessbus/accessbus/libs/testkit"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startDev runs accessbus dev on dataDir until the returned stop is called.
func startDev(t *testing.T, dataDir string) (httpAddr, natsURL string, stop func() error, logs *testkit.Buffer) {
	t.Helper()
	return startDevWith(t, devOptions{dataDir: dataDir})
}

// startDevWith runs accessbus dev with o (on a free loopback port, at log
// level info) until the returned stop is called.
func startDevWith(t *testing.T, o devOptions) (httpAddr, natsURL string, stop func() error, logs *testkit.Buffer) {
	t.Helper()
	o.httpAddr, o.logLevel, o.shutdownTimeout = "127.0.0.1:0", "info", 20*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan [2]string, 1)
	errCh := make(chan error, 1)
	logs = &testkit.Buffer{}
	go func() {
		errCh <- runDev(ctx, o, io.Discard, logs, func(h, n string) { readyCh <- [2]string{h, n} })
	}()
	select {
	case a := <-readyCh:
		var once sync.Once
		var err error
		stop = func() error { once.Do(func() { cancel(); err = <-errCh }); return err }
		t.Cleanup(func() { _ = stop() })
		return a[0], a[1], stop, logs
	case err := <-errCh:
		cancel()
		t.Fatalf("accessbus dev stopped before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("accessbus dev not ready in 60s\n%s", logs.String())
	}
	return "", "", nil, nil
}

// devJetStream connects to a dev's NATS for the rest of the test and
// returns its JetStream context.
func devJetStream(t *testing.T, natsURL string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDevServesHealthAndMetricsAndResumes(t *testing.T) {
	dir := t.TempDir()
	httpAddr, natsURL, stop, logs := startDev(t, dir)
	if code, body := get(t, "http://"+httpAddr+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d %s", code, body)
	}
	if code, _ := get(t, "http://"+httpAddr+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	code, metrics := get(t, "http://"+httpAddr+"/metrics")
	if code != 200 || !strings.Contains(metrics, "go_goroutines") {
		t.Fatalf("/metrics %d", code)
	}
	// CLI commands find the embedded server through the data dir.
	got, err := resolveNATSURL("", dir)
	if err != nil || got != natsURL {
		t.Fatalf("resolved NATS URL %q %v, want %q", got, err, natsURL)
	}
	// A second dev on the same data dir is refused while the first runs.
	err = runDev(context.Background(), devOptions{dataDir: dir, httpAddr: "127.0.0.1:0", logLevel: "info", shutdownTimeout: time.Second}, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second dev on the same data dir: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in the logs:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, natsURLFile)); !os.IsNotExist(err) {
		t.Fatalf("nats-url file left behind: %v", err)
	}
	// Second start on the same data dir: the streams are already there.
	_, _, stop2, logs2 := startDev(t, dir)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs2.String(), `"outcome":"created"`) {
		t.Fatalf("restart re-created streams instead of resuming:\n%s", logs2.String())
	}
	if !strings.Contains(logs.String(), `"outcome":"created"`) {
		t.Fatalf("first start did not log its stream declarations:\n%s", logs.String())
	}
}

func TestDevRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		o    devOptions
		want string
	}{
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "loud"}, "--log-level"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "127.0.0.1:0", logLevel: "info", natsURL: "http://x"}, "--nats-url"},
		{devOptions{dataDir: t.TempDir(), httpAddr: "nope", logLevel: "info"}, "--http"},
	} {
		err := runDev(context.Background(), tc.o, io.Discard, &bytes.Buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.o, err, tc.want)
		}
	}
}

// TestDevDemoServesTheSimulatorOrg: dev --demo serves the simulator's org,
// says where, and its demo connector belongs to the first Super
// Administrator, so the key dev keeps in its data dir lists it as "mine".
func TestDevDemoServesTheSimulatorOrg(t *testing.T) {
	t.Setenv(envAPIKey, "")
	t.Setenv("ACCESSBUS_ADMIN_API_KEY_FILE", "")
	t.Setenv("ACCESSBUS_ADMIN_EMAIL", "")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	errCh := make(chan error, 1)
	var out testkit.Buffer
	go func() {
		errCh <- runDev(ctx, devOptions{dataDir: dir, httpAddr: "127.0.0.1:0", logLevel: "info", shutdownTimeout: 20 * time.Second, demo: true},
			&out, io.Discard, func(httpAddr, _ string) { ready <- httpAddr })
	}()
	var httpAddr string
	select {
	case httpAddr = <-ready:
	case err := <-errCh:
		t.Fatalf("dev --demo stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev --demo not ready in 60s")
	}
	b, err := os.ReadFile(filepath.Join(dir, demoTokensFile))
	if err != nil {
		t.Fatal(err)
	}
	var demo struct {
		URL      string `json:"url"`
		ReadOnly string `json:"read_only_admin"`
	}
	if err := json.Unmarshal(b, &demo); err != nil || demo.URL == "" || demo.ReadOnly == "" {
		t.Fatalf("demo file %s: %v", b, err)
	}
	req, _ := http.NewRequest("GET", demo.URL+"/api/v1/users?limit=5", nil)
	req.Header.Set("Authorization", "SSWS "+demo.ReadOnly)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("demo org answered %d", resp.StatusCode)
	}
	cli := func(args ...string) string {
		t.Helper()
		var b bytes.Buffer
		root := newRootCmd(&b, &b)
		root.SetArgs(append(args, "--server", "http://"+httpAddr, "--data-dir", dir))
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("accessbus %s: %v\n%s", strings.Join(args, " "), err, b.String())
		}
		return b.String()
	}
	if mine := cli("connectors", "list", "--mine"); !strings.Contains(mine, "demo ") || !strings.Contains(mine, "admin@accessbus.local") {
		t.Fatalf("connectors list --mine with dev's key:\n%s", mine)
	}
	if who := cli("admin", "whoami"); !strings.Contains(who, "admin@accessbus.local") || !strings.Contains(who, "super_admin") {
		t.Fatalf("whoami: %s", who)
	}
	// The demo connects, as the README says a person will see. (It also
	// lets dev stop cleanly: a stop waits for a running sync.)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if out := cli("connectors", "list", "--mine", "--status", "connected"); strings.Contains(out, "demo ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo connector is not connected in 90s:\n%s", cli("connectors", "get", "demo"))
		}
	}
	cancel()
	if err := <-errCh; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if !strings.Contains(out.String(), "demo Okta org") {
		t.Fatalf("dev did not say where the demo org is: %s", out.String())
	}
}

// TestDevNATSTakesLargeGroups: the embedded server takes messages of a few
// MiB, as the state of a group with 100,000 members needs.
func TestDevNATSTakesLargeGroups(t *testing.T) {
	_, natsURL, stop, _ := startDevWith(t, devOptions{dataDir: t.TempDir()})
	defer stop()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got < 4<<20 {
		t.Fatalf("max payload %d bytes, want at least 4 MiB", got)
	}
	if err := nc.Publish("dev.test.large", make([]byte, 3<<20)); err != nil {
		t.Fatalf("publish 3 MiB: %v", err)
	}
}
