package oktasim

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// newFaultyFixture is a fixture whose server injects the given faults.
func newFaultyFixture(t *testing.T, faults Faults) *fixture {
	t.Helper()
	f := newFixture(t, NoLimits)
	// As NewServer would have built it with these faults.
	f.srv.opts.Faults = faults
	f.srv.rng = newFaultRand(faults.Seed)
	return f
}

func TestFaultErrorRateAnswers500AsOkta(t *testing.T) {
	f := newFaultyFixture(t, Faults{ErrorRate: 1})
	resp, b := f.do(f.ro, "GET", "/api/v1/users", nil)
	if resp.StatusCode != 500 || errorCode(b) != codeInternal || resp.Header.Get("X-Okta-Request-Id") == "" {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
	// A rate of one half fails about half, the same requests for the same seed.
	pattern := func() []int {
		f := newFaultyFixture(t, Faults{ErrorRate: 0.5, Seed: 42})
		var codes []int
		for range 40 {
			resp, _ := f.do(f.ro, "GET", "/api/v1/users", nil)
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}
	a, b2 := pattern(), pattern()
	fails := 0
	for i := range a {
		if a[i] != b2[i] {
			t.Fatalf("same seed, different faults at request %d", i)
		}
		if a[i] == 500 {
			fails++
		}
	}
	if fails < 8 || fails > 32 {
		t.Fatalf("%d of 40 requests failed at rate 0.5", fails)
	}
}

func TestFaultCutsTheBodyInTheMiddle(t *testing.T) {
	f := newFaultyFixture(t, Faults{CutRate: 1})
	addUsers(t, f.org, 50)
	req, _ := http.NewRequest("GET", f.url+"/api/v1/users", nil)
	req.Header.Set("Authorization", "SSWS "+f.ro)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the whole body arrived (%d bytes of %d)", len(body), resp.ContentLength)
	}
	if int64(len(body)) >= resp.ContentLength || len(body) == 0 {
		t.Fatalf("read %d of %d bytes before the cut", len(body), resp.ContentLength)
	}
}

func TestFaultLatencyDelaysEveryRequest(t *testing.T) {
	f := newFaultyFixture(t, Faults{Latency: 150 * time.Millisecond})
	start := time.Now()
	if resp, _ := f.do(f.ro, "GET", "/api/v1/users/me", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %s, before the injected latency", d)
	}
}
