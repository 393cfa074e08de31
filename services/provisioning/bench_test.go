package provisioning

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mix
	}{
		{"grant=45,revoke=40,timed=15", Mix{Grant: 45, Revoke: 40, Timed: 15}},
		{" revoke = 1 , grant=0.5 ", Mix{Grant: 0.5, Revoke: 1}},
		{"timed=3", Mix{Timed: 3}},
		{DefaultMix.String(), DefaultMix},
	} {
		got, err := ParseMix(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMix(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"", "positive weight"},
		{"grant=0", "positive weight"},
		{"grant", "kind=weight"},
		{"grant=x", "weight of grant"},
		{"grant=-2", "weight of grant"},
		{"grant=NaN", "weight of grant"},
		{"grant=1,grant=2", "given twice"},
		{"grant=1,suspend=1", `unknown kind "suspend"`},
	} {
		_, err := ParseMix(tc.in)
		if !errors.Is(err, ErrBenchConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseMix(%q): %v, want ErrBenchConfig saying %q", tc.in, err, tc.says)
		}
	}
}

// The kinds add up to n, each within one of its exact share.
func TestMixCounts(t *testing.T) {
	for _, m := range []Mix{DefaultMix, {Grant: 1, Revoke: 1, Timed: 1}, {Revoke: 1}, {Grant: 2, Timed: 1}} {
		for _, n := range []int{1, 2, 7, 60, 5000} {
			c := m.counts(n)
			total := m.Grant + m.Revoke + m.Timed
			sum := 0
			for k, w := range map[string]float64{MixGrant: m.Grant, MixRevoke: m.Revoke, MixTimed: m.Timed} {
				sum += c[k]
				if exact := float64(n) * w / total; math.Abs(float64(c[k])-exact) >= 1 || (w == 0 && c[k] != 0) {
					t.Errorf("mix %s, %d requests: %d %s, want about %.2f", m, n, c[k], k, exact)
				}
			}
			if sum != n {
				t.Errorf("mix %s, %d requests: counts %v add up to %d", m, n, c, sum)
			}
		}
	}
}

// Utilization is the writes per window over share x limit from the first
// write to the end; the busiest window is counted over any window's length.
func TestUtilization(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	// Time scale 100: a window is 600 ms. 900 writes 1.2 ms apart (the pace
	// of 500 a window) and the end 1.2 ms after the last.
	var sent []time.Time
	for i := range 900 {
		sent = append(sent, start.Add(time.Duration(i)*1200*time.Microsecond))
	}
	end := sent[len(sent)-1].Add(1200 * time.Microsecond)
	r := BenchResult{TimeScale: 100, Share: 1}
	utilization(&r, sent, end, 500)
	if r.BucketUtilization == nil || math.Abs(*r.BucketUtilization-1) > 1e-9 || r.MaxWritesPerWindow != 500 ||
		math.Abs(r.WindowSeconds-0.6) > 1e-12 || math.Abs(r.MeasuredSeconds-1.08) > 1e-9 || math.Abs(r.WritesPerWindow-500) > 1e-6 {
		t.Errorf("full pace: %+v (utilization %v)", r, deref(r.BucketUtilization))
	}
	if fmt.Sprint(r.WritesByWindow) != "[500 400]" {
		t.Errorf("full pace: writes by window %v, want [500 400]", r.WritesByWindow)
	}
	// Half the share: the same writes fill twice the allowance.
	r = BenchResult{TimeScale: 100, Share: 0.5}
	utilization(&r, sent, end, 500)
	if math.Abs(*r.BucketUtilization-2) > 1e-9 {
		t.Errorf("share 0.5: utilization %v, want 2", *r.BucketUtilization)
	}
	// Idle time before the end counts against it.
	r = BenchResult{TimeScale: 100, Share: 1}
	utilization(&r, sent, end.Add(1080*time.Millisecond), 500)
	if math.Abs(*r.BucketUtilization-0.5) > 1e-9 {
		t.Errorf("half idle: utilization %v, want 0.5", *r.BucketUtilization)
	}
	// No writes: zero, and still present for the acceptance script.
	r = BenchResult{TimeScale: 100, Share: 1}
	utilization(&r, nil, end, 500)
	if r.BucketUtilization == nil || *r.BucketUtilization != 0 || r.UtilizationBucket != "groups" {
		t.Errorf("no writes: %+v", r)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for q, want := range map[float64]float64{0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := percentile(xs, q); got != want {
			t.Errorf("p%v = %v, want %v", q*100, got, want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if got := percentile([]float64{3.14159}, 0.99); got != 3.1 {
		t.Errorf("p99 of one = %v, want it rounded to 0.1 ms", got)
	}
}

func TestBenchRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Bench(ctx, BenchConfig{}); !errors.Is(err, ErrBenchConfig) || !strings.Contains(err.Error(), "JetStream") {
		t.Errorf("no JetStream: %v", err)
	}
	for _, tc := range []struct {
		set  func(*BenchConfig)
		says string
	}{
		{func(c *BenchConfig) { c.Requests = -1 }, "requests -1"},
		{func(c *BenchConfig) { c.TimeScale = 0.5 }, "time scale 0.5"},
		{func(c *BenchConfig) { c.Share = 2 }, "share 2"},
		{func(c *BenchConfig) { c.Workers = -3 }, "workers -3"},
		{func(c *BenchConfig) { c.UnlimitedRate = -1 }, "unlimited rate -1"},
		{func(c *BenchConfig) { c.Mix = Mix{Grant: -1, Revoke: 2} }, "mix grant=-1"},
	} {
		var cfg BenchConfig
		tc.set(&cfg)
		if _, err := Bench(ctx, cfg); !errors.Is(err, ErrBenchConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", tc.says, err)
		}
	}
}
