package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	"github.com/accessbus/accessbus/libs/testkit"
)

// TestAPIKeyResolution: ACCESSBUS_API_KEY wins over the data dir's key
// file, which is read (trimmed) when the variable is empty; with neither
// the key is unset.
func TestAPIKeyResolution(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(envAPIKey, "")
	if apiKey(dir).IsSet() {
		t.Fatal("a key without a variable or a file")
	}
	if err := os.WriteFile(filepath.Join(dir, adminAPIKeyFile), []byte("abk_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := apiKey(dir).Reveal(); got != "abk_fromfile" {
		t.Fatalf("from the file: %q", got)
	}
	t.Setenv(envAPIKey, " abk_fromenv ")
	if got := apiKey(dir).Reveal(); got != "abk_fromenv" {
		t.Fatalf("from the environment: %q", got)
	}
	if s := apiKey(dir).String(); strings.Contains(s, "abk_fromenv") {
		t.Fatalf("the key prints: %s", s)
	}
}

// TestAPIKeyOptionSendsKey: a client with apiKeyOption sends the key as a
// bearer token.
func TestAPIKeyOptionSendsKey(t *testing.T) {
	var mu sync.Mutex
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("Authorization")
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(envAPIKey, "abk_sent")
	c := catalogv1connect.NewAdminServiceClient(http.DefaultClient, srv.URL, apiKeyOption(t.TempDir()))
	_, _ = c.WhoAmI(context.Background(), connect.NewRequest(&catalogv1.WhoAmIRequest{}))
	mu.Lock()
	defer mu.Unlock()
	if got != "Bearer abk_sent" {
		t.Fatalf("Authorization %q", got)
	}
}

// catalogDev is an accessbus dev whose first Super Administrator's key was
// written to <dir>/admin-api-key, as the CLI expects it.
type catalogDev struct {
	server, dir, natsURL string
	logs                 *testkit.Buffer
	// outputs keeps every command's output, to search for secrets.
	mu      sync.Mutex
	outputs []string
}

// startCatalogDev starts accessbus dev on a new data dir. The catalog
// writes the bootstrap key into the data dir (ACCESSBUS_ADMIN_API_KEY_FILE),
// so the CLI finds it there when ACCESSBUS_API_KEY is empty.
func startCatalogDev(t *testing.T) *catalogDev {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("ACCESSBUS_ADMIN_API_KEY_FILE", filepath.Join(dir, adminAPIKeyFile))
	t.Setenv(envAPIKey, "")
	addr, natsURL, _, logs := startDevWith(t, devOptions{dataDir: dir})
	d := &catalogDev{server: "http://" + addr, dir: dir, natsURL: natsURL, logs: logs}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, adminAPIKeyFile)); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the data dir\n%s", adminAPIKeyFile, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs one command against the dev server with key (empty: the data
// dir's key file) and stdin, and returns its output (stdout and stderr).
func (d *catalogDev) run(t *testing.T, key, stdin string, args ...string) (string, error) {
	t.Helper()
	t.Setenv(envAPIKey, key)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	root := newRootCmd(&out, &out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append(args, "--server", d.server, "--data-dir", d.dir))
	err := root.ExecuteContext(ctx)
	d.mu.Lock()
	d.outputs = append(d.outputs, out.String())
	if err != nil {
		d.outputs = append(d.outputs, err.Error())
	}
	d.mu.Unlock()
	return out.String(), err
}

// must runs a command that must succeed.
func (d *catalogDev) must(t *testing.T, key string, args ...string) string {
	t.Helper()
	out, err := d.run(t, key, "", args...)
	if err != nil {
		t.Fatalf("accessbus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// refused runs a command that must fail with an error saying each of says.
func (d *catalogDev) refused(t *testing.T, key, stdin string, args []string, says ...string) {
	t.Helper()
	out, err := d.run(t, key, stdin, args...)
	if err == nil {
		t.Fatalf("accessbus %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("accessbus %s: error %q does not say %q", strings.Join(args, " "), err, s)
		}
	}
}

// adminKey is the bootstrap key the catalog wrote.
func (d *catalogDev) adminKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, adminAPIKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
