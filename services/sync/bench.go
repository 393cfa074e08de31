package syncsvc

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// BenchConfig configures Bench.
type BenchConfig struct {
	// Profile is the simulator's org size: small, medium or large.
	Profile string
	// Seed generates the org; default 1.
	Seed uint64
	// TimeScale runs the simulator's clock (and the budget's) that many
	// times faster than real time; default 100.
	TimeScale float64
	// Share is the connector's rate_limit_share, in (0, 1]; default 1.
	Share float64
	// JetStream is where the events and the sync state go; required. The
	// caller decides the server (accessbus bench runs one as accessbus dev
	// does, file storage in a temporary directory).
	JetStream jetstream.JetStream
	// Storage of the streams and the state bucket; file unless set.
	Storage jetstream.StorageType
	// SimCommand, when set, serves the simulated org in a child process
	// running this command (its first element is the executable), which
	// must call ServeBenchSim: `accessbus bench sync` re-executes itself.
	// Unset, the org is served in this process, and the simulator's heap
	// and work count in this process's figures.
	SimCommand []string
	// NATSProcess is the JetStream server's process when the caller runs
	// it apart (StartBenchNATSProcess), for its CPU time and memory; nil
	// when the server runs in this process (or was not started by the
	// caller).
	NATSProcess *BenchNATS
	// Log receives the syncs' logs; nil discards them.
	Log *slog.Logger
}

// BenchSync is what Bench measured for one full sync. The JSON names are
// the ones `accessbus bench sync --json` prints and the acceptance script
// reads.
type BenchSync struct {
	// Profile is the org's size; Sync numbers the run (1: first, 2: again
	// on the unchanged org).
	Profile string `json:"profile"`
	Sync    int    `json:"sync"`
	// Seed, TimeScale and Share are the run's settings.
	Seed      uint64  `json:"seed"`
	TimeScale float64 `json:"time_scale"`
	Share     float64 `json:"share"`
	// WallSeconds is the real duration of fullsync.Run.
	WallSeconds float64 `json:"wall_seconds"`
	// FirstEventSeconds is the real time from the start of the run to the
	// first access event published: the read, before any commit.
	FirstEventSeconds float64 `json:"first_event_seconds"`
	// RateLimitBoundSeconds is the real time the rate limits alone impose:
	// per bucket, its requests / (share x limit per window) x the window's
	// real length; the largest. BindingBucket is the bucket that gives it.
	RateLimitBoundSeconds float64 `json:"rate_limit_bound_seconds"`
	BindingBucket         string  `json:"binding_bucket"`
	// BoundRatio is WallSeconds / RateLimitBoundSeconds.
	BoundRatio float64 `json:"bound_ratio"`
	// APICalls are the requests the simulator received (refused ones too).
	APICalls int64 `json:"api_calls"`
	// MinAPICalls is the fewest calls that read the org at maximum page
	// sizes (oktasim's Org.MinAPICalls); CallsRatio is APICalls over it.
	MinAPICalls int64   `json:"min_api_calls"`
	CallsRatio  float64 `json:"calls_ratio"`
	// HTTP429 counts the 429s the simulator answered; ClientHTTP429 those
	// the client's budget saw (they should agree).
	HTTP429       int64 `json:"http_429"`
	ClientHTTP429 int64 `json:"client_http_429"`
	// PeakRSSBytes is the peak resident set (VmHWM) of the process that
	// ran the sync, after the run: the sync, and whatever else runs in that
	// process: the JetStream server when NATSInProcess, the simulator when
	// SimInProcess.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// CPUSeconds is the CPU time (user and system) that process spent
	// during the sync.
	CPUSeconds float64 `json:"cpu_seconds"`
	// SimInProcess says the simulator ran in the same process; otherwise
	// SimCPUSeconds and SimPeakRSSBytes are its own process's CPU time
	// during the sync and peak resident set.
	SimInProcess    bool    `json:"sim_in_process"`
	SimCPUSeconds   float64 `json:"sim_cpu_seconds"`
	SimPeakRSSBytes int64   `json:"sim_peak_rss_bytes"`
	// NATSInProcess says the JetStream server ran in that process (or
	// somewhere the bench does not measure); otherwise NATSCPUSeconds and
	// NATSPeakRSSBytes are its own process's CPU time during the sync and
	// peak resident set.
	NATSInProcess    bool    `json:"nats_in_process"`
	NATSCPUSeconds   float64 `json:"nats_cpu_seconds"`
	NATSPeakRSSBytes int64   `json:"nats_peak_rss_bytes"`
	// GOGC and MemoryLimitBytes are that process's garbage collector
	// settings (GOGC -1: off; a memory limit of math.MaxInt64: none).
	GOGC             int   `json:"gogc"`
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	// GCCycles and AllocBytes are the garbage collections and the bytes
	// allocated in that process during the sync.
	GCCycles   uint32 `json:"gc_cycles"`
	AllocBytes uint64 `json:"alloc_bytes"`
	// EventsPublished counts the access events published by the run.
	EventsPublished int64 `json:"events_published"`
	// UnchangedGroups counts groups whose members were not re-listed.
	UnchangedGroups int `json:"unchanged_groups"`
	// CallsByBucket, MinCallsByBucket and BoundByBucket detail the figures
	// above per bucket (bound in real seconds).
	CallsByBucket    map[string]int64   `json:"calls_by_bucket"`
	MinCallsByBucket map[string]int64   `json:"min_calls_by_bucket"`
	BoundByBucket    map[string]float64 `json:"bound_by_bucket_seconds"`
	// LastCallByBucket is, per bucket, the real time from the start of the
	// run to its last response: which bucket held the read up.
	LastCallByBucket map[string]float64 `json:"last_call_by_bucket_seconds"`
	// WaitedByBucket is, per bucket, the time the sync's calls spent
	// waiting for the rate budget, added up over the calls (the rate
	// budget's BucketStats.Waited): a bucket whose last call comes late
	// though its calls hardly waited was short of calls to make, not of
	// budget.
	WaitedByBucket map[string]float64 `json:"budget_waited_by_bucket_seconds"`
}

// ErrBenchConfig reports a BenchConfig that cannot run.
var ErrBenchConfig = errors.New("sync bench: invalid config")

// benchConnector is the connector id the bench syncs.
const benchConnector = "bench"

// Bench serves a generated org on the Okta simulator with Workforce limits
// on a time-scaled clock (in a child process with SimCommand), runs a full
// sync of it with the super admin token, then a second full sync of the
// unchanged org, and measures both.
func Bench(ctx context.Context, cfg BenchConfig) ([]BenchSync, error) {
	if cfg.JetStream == nil {
		return nil, fmt.Errorf("%w: no JetStream", ErrBenchConfig)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 100
	}
	if cfg.Share == 0 {
		cfg.Share = 1
	}
	if !(cfg.Share > 0 && cfg.Share <= 1) || !(cfg.TimeScale >= 1) {
		return nil, fmt.Errorf("%w: share %v must be in (0, 1] and time scale %v at least 1", ErrBenchConfig, cfg.Share, cfg.TimeScale)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	limits := oktasim.Workforce
	simCfg := benchSimConfig{Profile: cfg.Profile, Seed: cfg.Seed, TimeScale: cfg.TimeScale}
	var org *benchOrg
	var err error
	if len(cfg.SimCommand) > 0 {
		org, err = startBenchOrgProcess(ctx, simCfg, cfg.SimCommand)
	} else {
		org, err = startBenchOrgHere(ctx, simCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("sync bench: start the simulator: %w", err)
	}
	tr := &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: ratelimit.DefaultConcurrency, IdleConnTimeout: 90 * time.Second}
	spans := &lastCalls{base: tr}
	defer func() {
		tr.CloseIdleConnections()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = org.close(cctx)
	}()
	if _, err := bus.DeclareStreams(ctx, cfg.JetStream, bus.Streams(bus.StreamOptions{Storage: cfg.Storage})...); err != nil {
		return nil, fmt.Errorf("sync bench: declare streams: %w", err)
	}
	b, err := bus.New(cfg.JetStream, bus.Options{Logger: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("sync bench: %w", err)
	}
	store, err := state.Open(ctx, cfg.JetStream, state.Options{Storage: cfg.Storage})
	if err != nil {
		return nil, fmt.Errorf("sync bench: %w", err)
	}
	budget, err := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{
		Share: cfg.Share, TimeScale: cfg.TimeScale, Concurrency: limits.Concurrency, Logger: cfg.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("sync bench: %w", err)
	}
	client, err := okta.New(ctx, okta.Config{
		OrgURL: org.url, Token: telemetry.NewSecret(org.token), Budget: budget,
		HTTPClient: &http.Client{Transport: spans},
	})
	if err != nil {
		return nil, fmt.Errorf("sync bench: %w", err)
	}
	minCalls := org.minCalls
	window := time.Minute.Seconds() / cfg.TimeScale
	var out []BenchSync
	for i := 1; i <= 2; i++ {
		pub := &firstEvent{bus: b}
		before, err := org.counts(ctx)
		if err != nil {
			return out, fmt.Errorf("sync bench: %w", err)
		}
		simCPU0, _, _ := org.usage()
		natsCPU0, _, _ := cfg.NATSProcess.usage()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		stats0 := budget.Stats()
		cpu0 := processCPUSelf()
		start := time.Now()
		pub.start = start
		spans.reset(start)
		var rep fullsync.Report
		// Labelled so that a CPU profile of the bench tells the syncs
		// apart (go tool pprof -tagfocus 'sync=^1$': a bare 1 is read as a range).
		pprof.Do(ctx, pprof.Labels("sync", strconv.Itoa(i)), func(ctx context.Context) {
			rep, err = fullsync.Run(ctx, fullsync.Deps{Okta: client, Bus: pub, State: store, Budget: budget, Log: cfg.Log},
				fullsync.Connector{ID: benchConnector, Options: fullsync.DefaultOptions(), RunID: fmt.Sprintf("bench-%d", i)})
		})
		wall := time.Since(start)
		cpu := processCPUSelf() - cpu0
		runtime.ReadMemStats(&ms1)
		if err != nil {
			return out, fmt.Errorf("sync bench: sync %d: %w", i, err)
		}
		after, err := org.counts(ctx)
		if err != nil {
			return out, fmt.Errorf("sync bench: %w", err)
		}
		s := BenchSync{
			Profile: cfg.Profile, Sync: i, Seed: cfg.Seed, TimeScale: cfg.TimeScale, Share: cfg.Share,
			WallSeconds: wall.Seconds(), FirstEventSeconds: pub.first().Seconds(),
			MinAPICalls: minCalls.Total, MinCallsByBucket: minCalls.ByBucket,
			ClientHTTP429: rep.HTTP429, EventsPublished: pub.events(), UnchangedGroups: rep.Unchanged,
			CallsByBucket: map[string]int64{}, BoundByBucket: map[string]float64{}, LastCallByBucket: spans.get(),
			CPUSeconds: cpu.Seconds(), SimInProcess: len(cfg.SimCommand) == 0, NATSInProcess: cfg.NATSProcess == nil,
			GCCycles: ms1.NumGC - ms0.NumGC, AllocBytes: ms1.TotalAlloc - ms0.TotalAlloc,
		}
		s.GOGC, s.MemoryLimitBytes = gcSettings()
		s.WaitedByBucket = map[string]float64{}
		for bucket, st := range budget.Stats() {
			if d := st.Waited - stats0[bucket].Waited; d > 0 {
				s.WaitedByBucket[bucket] = d.Seconds()
			}
		}
		if simCPU, simRSS, ok := org.usage(); ok {
			s.SimCPUSeconds, s.SimPeakRSSBytes = (simCPU - simCPU0).Seconds(), simRSS
		}
		if natsCPU, natsRSS, ok := cfg.NATSProcess.usage(); ok {
			s.NATSCPUSeconds, s.NATSPeakRSSBytes = (natsCPU - natsCPU0).Seconds(), natsRSS
		}
		for bucket, n := range after.Requests {
			n -= before.Requests[bucket]
			if n <= 0 {
				continue
			}
			s.CallsByBucket[bucket] = n
			s.APICalls += n
			if limit := limits.PerMinute[bucket]; limit > 0 {
				bound := float64(n) / (cfg.Share * float64(limit)) * window
				s.BoundByBucket[bucket] = bound
				if bound > s.RateLimitBoundSeconds {
					s.RateLimitBoundSeconds, s.BindingBucket = bound, bucket
				}
			}
		}
		for bucket, n := range after.Limited {
			s.HTTP429 += n - before.Limited[bucket]
		}
		if s.RateLimitBoundSeconds > 0 {
			s.BoundRatio = s.WallSeconds / s.RateLimitBoundSeconds
		}
		if s.MinAPICalls > 0 {
			s.CallsRatio = float64(s.APICalls) / float64(s.MinAPICalls)
		}
		s.PeakRSSBytes = PeakRSS()
		out = append(out, s)
	}
	return out, nil
}

// firstEvent passes events on to the bus, counting the access events and
// noting when the first one was published (the end of the read).
type firstEvent struct {
	bus   *bus.Bus
	start time.Time

	mu    sync.Mutex
	at    time.Duration
	count int64
}

// Publish implements changes.Publisher.
func (f *firstEvent) Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error) {
	f.note(subject)
	return f.bus.Publish(ctx, subject, msgID, payload)
}

// PublishAsync implements changes.AsyncPublisher.
func (f *firstEvent) PublishAsync(ctx context.Context, subject, msgID string, payload proto.Message) (jetstream.PubAckFuture, error) {
	f.note(subject)
	return f.bus.PublishAsync(ctx, subject, msgID, payload)
}

// PublishBatch implements changes.BatchPublisher.
func (f *firstEvent) PublishBatch(ctx context.Context, events iter.Seq[bus.Event]) (bus.BatchResult, error) {
	return f.bus.PublishBatch(ctx, func(yield func(bus.Event) bool) {
		for ev := range events {
			f.note(ev.Subject)
			if !yield(ev) {
				return
			}
		}
	})
}

var _ changes.BatchPublisher = (*firstEvent)(nil)

func (f *firstEvent) note(subject string) {
	if len(subject) < 7 || subject[:7] != "access." {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == 0 {
		f.at = time.Since(f.start)
	}
	f.count++
}

func (f *firstEvent) first() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

func (f *firstEvent) events() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// lastCalls notes, per bucket, when the last response of a run came.
type lastCalls struct {
	base http.RoundTripper

	mu    sync.Mutex
	start time.Time
	last  map[string]time.Duration
}

// RoundTrip implements http.RoundTripper.
func (l *lastCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	bucket := ratelimit.BucketOf(req.Method, req.URL.Path)
	l.mu.Lock()
	l.last[bucket] = time.Since(l.start)
	l.mu.Unlock()
	return resp, err
}

func (l *lastCalls) reset(start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start, l.last = start, map[string]time.Duration{}
}

func (l *lastCalls) get() map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]float64, len(l.last))
	for b, d := range l.last {
		out[b] = d.Seconds()
	}
	return out
}
