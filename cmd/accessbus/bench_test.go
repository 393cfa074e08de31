package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/libs/oktasim"
	syncsvc "github.com/accessbus/accessbus/services/sync"
)

// The bench on the small org at a high time scale: two syncs, each a JSON
// line whose figures agree with each other. Speed is not checked. The
// simulator and the JetStream server run in this process: the test binary
// is not accessbus, so it cannot be re-executed as their processes
// (services/sync tests those processes, and TestBenchChildCommands the
// commands they run).
func TestBenchSyncJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	err := realMain(context.Background(), []string{"bench", "sync", "--profile", "small", "--json", "--time-scale", "1000", "--seed", "3", "--sim-in-process", "--nats-in-process"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench sync: %v (stderr %q)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one JSON object per sync:\n%s", len(lines), out.String())
	}
	required := []string{"profile", "wall_seconds", "rate_limit_bound_seconds", "bound_ratio", "api_calls", "min_api_calls",
		"calls_ratio", "http_429", "peak_rss_bytes", "events_published", "calls_by_bucket"}
	var runs []syncsvc.BenchSync
	for i, l := range lines {
		var fields map[string]any
		if err := json.Unmarshal([]byte(l), &fields); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, l)
		}
		for _, f := range required {
			if _, ok := fields[f]; !ok {
				t.Errorf("line %d has no %q: %s", i+1, f, l)
			}
		}
		var r syncsvc.BenchSync
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		runs = append(runs, r)
	}
	for i, r := range runs {
		if r.Profile != "small" || r.Sync != i+1 || r.Seed != 3 || r.TimeScale != 1000 || r.Share != 1 {
			t.Errorf("sync %d: settings %+v", i+1, r)
		}
		checkBenchConsistent(t, r)
	}
	first, second := runs[0], runs[1]
	if first.APICalls < first.MinAPICalls {
		t.Errorf("first sync made %d calls, fewer than the minimum %d: the minimum is wrong", first.APICalls, first.MinAPICalls)
	}
	if first.EventsPublished == 0 || second.EventsPublished != 0 {
		t.Errorf("events published: %d then %d; want some, then none for the unchanged org", first.EventsPublished, second.EventsPublished)
	}
	if first.HTTP429 != first.ClientHTTP429 || second.HTTP429 != second.ClientHTTP429 {
		t.Errorf("429s: simulator %d/%d, client %d/%d", first.HTTP429, second.HTTP429, first.ClientHTTP429, second.ClientHTTP429)
	}
	if first.PeakRSSBytes <= 0 || second.PeakRSSBytes < first.PeakRSSBytes {
		t.Errorf("peak RSS %d then %d: want positive and not shrinking", first.PeakRSSBytes, second.PeakRSSBytes)
	}
	// The bench's garbage collector settings, as the JSON says.
	for _, r := range runs {
		if !r.SimInProcess || !r.NATSInProcess || r.GOGC != benchGOGC || r.MemoryLimitBytes != benchMemLimit {
			t.Errorf("sync %d: simulator in process %v, GOGC %d, memory limit %d; want true, %d, %d",
				r.Sync, r.SimInProcess, r.GOGC, r.MemoryLimitBytes, benchGOGC, benchMemLimit)
		}
	}
}

// The hidden commands the bench runs as its simulator's and its JetStream
// server's processes: each reads its configuration, answers where it
// serves, and stops when its input closes.
func TestBenchChildCommands(t *testing.T) {
	run := func(command, in string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		root := newRootCmd(&out, &errOut)
		root.SetIn(strings.NewReader(in))
		root.SetArgs([]string{"bench", command})
		err := root.ExecuteContext(t.Context())
		return out.String(), err
	}
	var ready struct {
		URL      string `json:"url"`
		AdminKey string `json:"admin_key"`
	}
	out, err := run(benchSimCommand, `{"profile":"small","seed":1,"time_scale":1000}`+"\n")
	if err != nil {
		t.Fatalf("bench %s: %v", benchSimCommand, err)
	}
	if err := json.Unmarshal([]byte(out), &ready); err != nil || !strings.HasPrefix(ready.URL, "http://127.0.0.1:") || ready.AdminKey == "" {
		t.Errorf("simulator's answer %q: %v", out, err)
	}
	out, err = run(benchNATSCommand, "{}\n")
	if err != nil {
		t.Fatalf("bench %s: %v", benchNATSCommand, err)
	}
	if err := json.Unmarshal([]byte(out), &ready); err != nil || !strings.HasPrefix(ready.URL, "nats://127.0.0.1:") {
		t.Errorf("NATS's answer %q: %v", out, err)
	}
	for _, command := range []string{benchSimCommand, benchNATSCommand} {
		if _, err := run(command, ""); err == nil || !strings.Contains(err.Error(), "configuration") {
			t.Errorf("%s with no configuration: %v, want an error about it", command, err)
		}
	}
}

// checkBenchConsistent recomputes the derived figures of one sync from its
// counts.
func checkBenchConsistent(t *testing.T, r syncsvc.BenchSync) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	var calls int64
	var bound float64
	binding := ""
	window := 60 / r.TimeScale
	for b, n := range r.CallsByBucket {
		calls += n
		limit := oktasim.Workforce.PerMinute[b]
		if limit == 0 {
			t.Errorf("sync %d: calls in bucket %q, which has no limit", r.Sync, b)
			continue
		}
		bb := float64(n) / (r.Share * float64(limit)) * window
		if !near(r.BoundByBucket[b], bb) {
			t.Errorf("sync %d: bound of %s %v, want %v", r.Sync, b, r.BoundByBucket[b], bb)
		}
		if bb > bound {
			bound, binding = bb, b
		}
	}
	if calls != r.APICalls {
		t.Errorf("sync %d: api_calls %d, but the buckets add up to %d", r.Sync, r.APICalls, calls)
	}
	if !near(r.RateLimitBoundSeconds, bound) || r.BindingBucket != binding {
		t.Errorf("sync %d: bound %v (%s), want %v (%s)", r.Sync, r.RateLimitBoundSeconds, r.BindingBucket, bound, binding)
	}
	if bound <= 0 || !near(r.BoundRatio, r.WallSeconds/bound) {
		t.Errorf("sync %d: bound ratio %v, want wall %v / bound %v", r.Sync, r.BoundRatio, r.WallSeconds, bound)
	}
	var minCalls int64
	for _, n := range r.MinCallsByBucket {
		minCalls += n
	}
	if minCalls != r.MinAPICalls || minCalls <= 0 || !near(r.CallsRatio, float64(r.APICalls)/float64(minCalls)) {
		t.Errorf("sync %d: min calls %d (buckets %d), calls ratio %v", r.Sync, r.MinAPICalls, minCalls, r.CallsRatio)
	}
	if r.WallSeconds <= 0 || r.FirstEventSeconds > r.WallSeconds {
		t.Errorf("sync %d: wall %v, first event at %v", r.Sync, r.WallSeconds, r.FirstEventSeconds)
	}
}

// Without --json the figures come as a table naming every row.
func TestBenchSyncTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := realMain(context.Background(), []string{"bench", "sync", "--profile", "small", "--time-scale", "1000", "--sim-in-process", "--nats-in-process"}, &out, &errOut); err != nil {
		t.Fatalf("bench sync: %v (stderr %q)", err, errOut.String())
	}
	for _, want := range []string{"bound ratio", "calls ratio", "http 429", "events published", "peak rss", "resync calls / first", "calls apps",
		"cpu (s)", "simulator cpu, peak rss", "nats cpu, peak rss", "in process"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// Settings that cannot run fail before anything is measured.
func TestBenchSyncRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		is   error
		says string
	}{
		{[]string{"--share", "0"}, syncsvc.ErrBenchConfig, "share"},
		{[]string{"--share", "1.5"}, syncsvc.ErrBenchConfig, "share"},
		{[]string{"--time-scale", "0.5"}, syncsvc.ErrBenchConfig, "--time-scale 0.5"},
		{[]string{"--profile", "huge", "--sim-in-process", "--nats-in-process"}, nil, "huge"},
		{[]string{"--memory-limit", "-1"}, syncsvc.ErrBenchConfig, "--memory-limit"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"bench", "sync", "--profile", "small", "--json"}, tc.args...)
		err := realMain(context.Background(), args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.says) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%v: %v, want an error about %q", tc.args, err, tc.says)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q", tc.args, out.String())
		}
	}
}
