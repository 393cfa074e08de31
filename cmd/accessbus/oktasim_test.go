package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/testkit"
)

// startOktasim runs the command function until the test ends and returns
// the running simulator and what it printed.
func startOktasim(t *testing.T, o oktasimOptions) (*oktasim.Running, *testkit.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.Buffer{}
	readyCh := make(chan *oktasim.Running, 1)
	errCh := make(chan error, 1)
	go func() { errCh <- runOktasim(ctx, o, out, func(r *oktasim.Running) { readyCh <- r }) }()
	select {
	case run := <-readyCh:
		t.Cleanup(func() {
			cancel()
			if err := <-errCh; err != nil {
				t.Errorf("oktasim returned %v", err)
			}
		})
		return run, out
	case err := <-errCh:
		cancel()
		t.Fatalf("oktasim stopped before ready: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("oktasim not ready in 30s\n%s", out.String())
	}
	return nil, nil
}

func defaultOktasimOptions() oktasimOptions {
	return oktasimOptions{profile: "small", seed: 7, addr: "127.0.0.1:0", rateLimits: "workforce", timeScale: 1}
}

func getWith(t *testing.T, client *http.Client, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "SSWS "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestOktasimWritesTokensAndServes(t *testing.T) {
	dir := t.TempDir()
	o := defaultOktasimOptions()
	o.tokensOut = filepath.Join(dir, "tokens.json")
	run, out := startOktasim(t, o)

	b, err := os.ReadFile(o.tokensOut)
	if err != nil {
		t.Fatal(err)
	}
	var tokens map[string]string
	if err := json.Unmarshal(b, &tokens); err != nil {
		t.Fatalf("tokens file %s: %v", b, err)
	}
	want := map[string]string{"read_only_admin": run.Tokens.ReadOnlyAdmin, "app_group_admin": run.Tokens.AppGroupAdmin, "super_admin": run.Tokens.SuperAdmin}
	for k, v := range want {
		if tokens[k] != v || v == "" {
			t.Errorf("tokens file %s = %q, want %q", k, tokens[k], v)
		}
	}
	if fi, err := os.Stat(o.tokensOut); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %v (%v); want 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	printed := out.String()
	for _, s := range []string{run.URL, run.Tokens.ReadOnlyAdmin, run.Tokens.AppGroupAdmin, run.Tokens.SuperAdmin, "admin key"} {
		if !strings.Contains(printed, s) {
			t.Errorf("output lacks %q:\n%s", s, printed)
		}
	}
	// A random admin key was made and printed; it opens /_sim/.
	key := regexp.MustCompile(`admin key\s+([0-9a-f]{32})`).FindStringSubmatch(printed)
	if key == nil {
		t.Fatalf("no admin key printed:\n%s", printed)
	}
	req, _ := http.NewRequest("GET", run.URL+"/_sim/counters", nil)
	req.Header.Set("X-Sim-Admin-Key", key[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/_sim/counters with the printed key: %v %v", resp, err)
	}

	resp, body := getWith(t, http.DefaultClient, run.URL+"/api/v1/users?limit=50", tokens["read_only_admin"])
	var users []map[string]any
	if err := json.Unmarshal(body, &users); resp.StatusCode != 200 || err != nil || len(users) != 50 {
		t.Fatalf("users with the read-only token: %d, %d users, %v", resp.StatusCode, len(users), err)
	}
	if resp.Header.Get("X-Rate-Limit-Remaining") == "" || len(resp.Header.Values("Link")) != 2 {
		t.Errorf("headers %v", resp.Header)
	}
}

// The same seed serves the same org: same tokens, same users.
func TestOktasimSeedIsRepeatable(t *testing.T) {
	a, _ := startOktasim(t, defaultOktasimOptions())
	b, _ := startOktasim(t, defaultOktasimOptions())
	if a.Tokens != b.Tokens {
		t.Fatalf("tokens %+v and %+v", a.Tokens, b.Tokens)
	}
	_, ua := getWith(t, http.DefaultClient, a.URL+"/api/v1/users?limit=5", a.Tokens.SuperAdmin)
	_, ub := getWith(t, http.DefaultClient, b.URL+"/api/v1/users?limit=5", b.Tokens.SuperAdmin)
	strip := func(b []byte, url string) string { return strings.ReplaceAll(string(b), url, "") }
	if strip(ua, a.URL) != strip(ub, b.URL) {
		t.Fatalf("same seed, different users:\n%s\n%s", ua, ub)
	}
}

func TestOktasimTLS(t *testing.T) {
	dir := t.TempDir()
	o := defaultOktasimOptions()
	o.tls, o.certOut, o.rateLimits = true, filepath.Join(dir, "ca.pem"), "none"
	run, _ := startOktasim(t, o)
	pem, err := os.ReadFile(o.certOut)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("cert file is not PEM: %s", pem)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, b := getWith(t, client, run.URL+"/api/v1/users?limit=1", run.Tokens.ReadOnlyAdmin); resp.StatusCode != 200 {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, b)
	}
	if !strings.HasPrefix(run.URL, "https://") {
		t.Errorf("URL %s", run.URL)
	}
}

func TestOktasimRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "huge"}, "profile"},
		{[]string{"--rate-limits", "fast"}, "rate-limit"},
		{[]string{"--error-rate", "2"}, "--error-rate"},
		{[]string{"--cut-rate", "-1"}, "--cut-rate"},
		{[]string{"--time-scale", "0.5"}, "--time-scale"},
		{[]string{"--latency", "-1s"}, "--latency"},
		{[]string{"--membership-lag", "-1s"}, "--membership-lag"},
		{[]string{"--cert-out", "x.pem"}, "--tls"},
		{[]string{"--addr", "127.0.0.1:notaport"}, "listen"},
		{[]string{"extra"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"oktasim", "--addr", "127.0.0.1:0"}, tc.args...)
			err := realMain(context.Background(), args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want one about %s", err, tc.want)
			}
		})
	}
}

// The command as the acceptance check runs it: flags, then the tokens file
// appears, then Ctrl-C stops it cleanly.
func TestOktasimCommandLine(t *testing.T) {
	tokensOut := filepath.Join(t.TempDir(), "tok.json")
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.Buffer{}
	errCh := make(chan error, 1)
	go func() {
		errCh <- realMain(ctx, []string{"oktasim", "--profile", "small", "--seed", "7", "--addr", "127.0.0.1:0", "--tokens-out", tokensOut, "--admin-key", "k"}, out, io.Discard)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(tokensOut); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no tokens file in 20s: %v\n%s", <-errCh, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	url := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if url == nil || !strings.Contains(out.String(), "admin key        k ") {
		t.Fatalf("output:\n%s", out.String())
	}
	cancel()
	select {
	case err := <-errCh:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on cancel")
	}
	if _, err := http.Get(url[1] + "/api/v1/users"); err == nil {
		t.Fatal("still serving after stop")
	}
}
