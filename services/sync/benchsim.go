package syncsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/accessbus/accessbus/libs/oktasim"
)

// The simulated org of a bench runs in a process of its own by default
// (BenchConfig.SimCommand), as Okta is remote in production: its heap
// (600 MB for the large org), its garbage collector and its serving stay
// out of the process whose time and memory the bench measures. It is a
// bench child (benchchild.go) told what to serve (benchSimConfig), which
// answers where (benchSimReady). The request counters come from the
// simulator's own /_sim/counters.

// benchSimConfig is what a bench simulator serves.
type benchSimConfig struct {
	Profile   string  `json:"profile"`
	Seed      uint64  `json:"seed"`
	TimeScale float64 `json:"time_scale"`
}

// benchSimReady is what a bench simulator answers once it serves.
type benchSimReady struct {
	URL      string           `json:"url"`
	Token    string           `json:"token"`
	AdminKey string           `json:"admin_key"`
	MinCalls oktasim.MinCalls `json:"min_calls"`
	Error    string           `json:"error,omitempty"`
}

// benchOrg is the org a bench syncs, wherever it is served.
type benchOrg struct {
	url      string
	token    string
	minCalls oktasim.MinCalls
	counts   func(context.Context) (oktasim.Counts, error)
	// usage is the CPU time and peak RSS of the process serving the org
	// when it is a child; ok false otherwise.
	usage func() (cpu time.Duration, peakRSS int64, ok bool)
	close func(context.Context) error
}

func (c benchSimConfig) oktasim() oktasim.Config {
	return oktasim.Config{Profile: c.Profile, Seed: c.Seed, RateLimits: oktasim.Workforce, TimeScale: c.TimeScale}
}

// startBenchOrgHere serves the org in this process.
func startBenchOrgHere(ctx context.Context, c benchSimConfig) (*benchOrg, error) {
	sim, err := oktasim.Start(ctx, c.oktasim())
	if err != nil {
		return nil, err
	}
	return &benchOrg{
		url: sim.URL, token: sim.Tokens.SuperAdmin, minCalls: sim.Org.MinAPICalls(),
		counts: func(context.Context) (oktasim.Counts, error) { return sim.Server.Counts(), nil },
		usage:  func() (time.Duration, int64, bool) { return 0, 0, false },
		close:  sim.Close,
	}, nil
}

// startBenchOrgProcess serves the org in a child process: command (the
// first element is the executable) must run ServeBenchSim.
func startBenchOrgProcess(ctx context.Context, c benchSimConfig, command []string) (*benchOrg, error) {
	var r benchSimReady
	child, err := startBenchChild(ctx, "simulator", command, c, &r)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		_ = child.stop()
		return nil, fmt.Errorf("the simulator process: %s", r.Error)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	return &benchOrg{
		url: r.URL, token: r.Token, minCalls: r.MinCalls,
		counts: func(ctx context.Context) (oktasim.Counts, error) {
			return simCounters(ctx, hc, r.URL, r.AdminKey)
		},
		usage: child.usage,
		close: func(context.Context) error { return child.stop() },
	}, nil
}

// simCounters reads the simulator's request counters.
func simCounters(ctx context.Context, hc *http.Client, url, key string) (oktasim.Counts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_sim/counters", nil)
	if err != nil {
		return oktasim.Counts{}, fmt.Errorf("read the simulator's counters: %w", err)
	}
	req.Header.Set("X-Sim-Admin-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return oktasim.Counts{}, fmt.Errorf("read the simulator's counters: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return oktasim.Counts{}, fmt.Errorf("read the simulator's counters: %s", resp.Status)
	}
	var c oktasim.Counts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return oktasim.Counts{}, fmt.Errorf("read the simulator's counters: %w", err)
	}
	return c, nil
}

// ServeBenchSim is the simulator process of a bench (see BenchConfig.
// SimCommand): it reads what to serve from in, serves it, writes the URL,
// the super admin token and the admin key of its /_sim/ endpoints to out,
// and serves until in closes or ctx ends. A simulator that cannot start
// answers why.
func ServeBenchSim(ctx context.Context, in io.Reader, out io.Writer) error {
	var c benchSimConfig
	return serveBenchChild(ctx, "simulator", in, out, &c, func() (any, func(), <-chan struct{}, error) {
		key, err := newAdminKey()
		if err != nil {
			return nil, nil, nil, err
		}
		cfg := c.oktasim()
		cfg.AdminKey = key
		sim, err := oktasim.Start(ctx, cfg)
		if err != nil {
			// Told to the bench, which would otherwise only see the
			// process exit.
			b, _ := json.Marshal(benchSimReady{Error: err.Error()})
			_, _ = out.Write(append(b, '\n'))
			return nil, nil, nil, err
		}
		stop := func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = sim.Close(cctx)
		}
		return benchSimReady{URL: sim.URL, Token: sim.Tokens.SuperAdmin, AdminKey: key, MinCalls: sim.Org.MinAPICalls()}, stop, sim.Done(), nil
	})
}

func newAdminKey() (string, error) {
	b := make([]byte, 16)
	if _, err := randRead(b); err != nil {
		return "", fmt.Errorf("bench simulator: make an admin key: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}
