package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/services/provisioning"
)

// benchProvisionCLI runs `accessbus <args>` through the root command, as a
// user does: `bench provision` must be registered under `bench`.
func benchProvisionCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// A short bench through the real command: one JSON line per run, the
// limited run first with every figure the acceptance script reads, every
// request succeeded with exactly one write, no 429.
func TestBenchProvisionJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	const n = 60
	err := benchProvisionCLI(context.Background(), []string{"bench", "provision", "--json", "--requests", "60", "--seed", "2"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench provision: %v (stderr %q)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one JSON object per run:\n%s", len(lines), out.String())
	}
	required := []string{"requests", "succeeded", "failed", "bucket_utilization", "p50_ms", "p99_ms", "http_429",
		"api_calls", "api_calls_by_bucket", "wall_s", "writes_by_bucket", "cpu_s", "cpu_ms_per_request"}
	var runs []provisioning.BenchResult
	for i, l := range lines {
		var fields map[string]any
		if err := json.Unmarshal([]byte(l), &fields); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, l)
		}
		for _, f := range required {
			if _, ok := fields[f]; !ok && (i == 0 || f != "bucket_utilization") {
				t.Errorf("line %d has no %q: %s", i+1, f, l)
			}
		}
		var r provisioning.BenchResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		runs = append(runs, r)
	}
	for i, r := range runs {
		want := []string{provisioning.RunLimited, provisioning.RunUnlimited}[i]
		if r.Run != want || r.Seed != 2 || r.TimeScale != 100 || r.Share != 1 || r.Workers != provisioning.DefaultBenchWorkers {
			t.Errorf("run %d: %s with settings %+v, want %s with the defaults", i+1, r.Run, r, want)
		}
		if r.Requests != n || r.Succeeded != n || r.Failed != 0 || r.NoOp != 0 || len(r.Failures) != 0 {
			t.Errorf("%s run: %d requests, %d succeeded (%d no-ops), %d failed %q; want all %d carried out",
				r.Run, r.Requests, r.Succeeded, r.NoOp, r.Failed, r.Failures, n)
		}
		if r.HTTP429 != 0 {
			t.Errorf("%s run: %d 429s", r.Run, r.HTTP429)
		}
		if r.WritesByBucket["groups"] != n || r.Writes != n {
			t.Errorf("%s run: writes %v (%d), want one membership write per request", r.Run, r.WritesByBucket, r.Writes)
		}
		var calls int64
		for _, c := range r.CallsByBucket {
			calls += c
		}
		if calls != r.APICalls || r.CallsByBucket["groups"] != n || r.APICalls <= int64(n) {
			t.Errorf("%s run: api calls %d by bucket %v", r.Run, r.APICalls, r.CallsByBucket)
		}
		kinds := 0
		for _, c := range r.RequestsByKind {
			kinds += c
		}
		if kinds != n || r.RequestsByKind["grant"] == 0 || r.RequestsByKind["revoke"] == 0 || r.RequestsByKind["timed"] == 0 {
			t.Errorf("%s run: requests by kind %v, want the default mix of %d", r.Run, r.RequestsByKind, n)
		}
		if !(r.P50MS > 0 && r.P50MS <= r.P99MS && r.P99MS <= r.MaxMS) || r.WallSeconds <= 0 {
			t.Errorf("%s run: p50 %v, p99 %v, max %v, wall %v", r.Run, r.P50MS, r.P99MS, r.MaxMS, r.WallSeconds)
		}
		if r.CPUSeconds <= 0 || math.Abs(r.CPUMSPerRequest-r.CPUSeconds*1000/n) > 1e-6 {
			t.Errorf("%s run: cpu %v s, %v ms per request", r.Run, r.CPUSeconds, r.CPUMSPerRequest)
		}
	}
	limited, unlimited := runs[0], runs[1]
	if limited.BucketUtilization == nil || *limited.BucketUtilization <= 0 || limited.UtilizationBucket != "groups" ||
		limited.BucketLimit != 500 || limited.MaxWritesPerWindow > 500 {
		t.Errorf("limited run: utilization %v of %s (limit %d), at most %d writes in a window",
			limited.BucketUtilization, limited.UtilizationBucket, limited.BucketLimit, limited.MaxWritesPerWindow)
	}
	if limited.RateLimits != "workforce" || limited.SubmitRate != 0 {
		t.Errorf("limited run: limits %q, submitted at %v/s; want workforce, at once", limited.RateLimits, limited.SubmitRate)
	}
	if unlimited.BucketUtilization != nil || unlimited.RateLimits != "none" || unlimited.SubmitRate != limited.Throughput {
		t.Errorf("unlimited run: utilization %v, limits %q, submitted at %v/s; want none, none, the limited run's %v/s",
			unlimited.BucketUtilization, unlimited.RateLimits, unlimited.SubmitRate, limited.Throughput)
	}
	sum := 0
	for _, w := range limited.WritesByWindow {
		sum += w
	}
	if sum != n || len(unlimited.WritesByWindow) != 0 {
		t.Errorf("writes by window: limited %v (adding up to %d, want %d), unlimited %v (want none)",
			limited.WritesByWindow, sum, n, unlimited.WritesByWindow)
	}
}

// Without --json the runs come as a table naming every row.
func TestBenchProvisionTable(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "provision", "--requests", "30", "--mix", "grant=1,revoke=1", "--unlimited-rate", "200", "--workers", "4"}
	if err := benchProvisionCLI(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("bench provision: %v (stderr %q)", err, errOut.String())
	}
	for _, want := range []string{"limited", "unlimited", "at once", "200/s", "bucket utilization", "(groups)", "p99 ms",
		"http 429", "calls groups (writes)", "30 (30)", "cpu ms per request"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "failure") {
		t.Errorf("table shows failures:\n%s", out.String())
	}
}

// Settings that cannot run fail before anything is measured, naming the
// setting.
func TestBenchProvisionRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--share", "0"}, "--share 0"},
		{[]string{"--share", "1.5"}, "--share 1.5"},
		{[]string{"--time-scale", "0.5"}, "--time-scale 0.5"},
		{[]string{"--requests", "0"}, "--requests 0"},
		{[]string{"--workers", "0"}, "--workers 0"},
		{[]string{"--unlimited-rate", "-1"}, "--unlimited-rate -1"},
		{[]string{"--mix", "grant=1,promote=2"}, `unknown kind "promote"`},
		{[]string{"--mix", "grant=-1"}, "weight of grant"},
		{[]string{"--mix", "grant=0,revoke=0"}, "positive weight"},
		{[]string{"--mix", "grant"}, "kind=weight"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"bench", "provision", "--json", "--requests", "5"}, tc.args...)
		err := benchProvisionCLI(context.Background(), args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.says) || !errors.Is(err, provisioning.ErrBenchConfig) {
			t.Errorf("%v: %v, want an ErrBenchConfig about %q", tc.args, err, tc.says)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q", tc.args, out.String())
		}
	}
}
