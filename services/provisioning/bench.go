package provisioning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"

	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// ErrBenchConfig reports a BenchConfig (or a --mix) that cannot run.
var ErrBenchConfig = errors.New("provisioning bench: invalid config")

// The kinds of request the bench submits, all group memberships (the
// names --mix takes).
const (
	// MixGrant adds a user to a group, permanently.
	MixGrant = "grant"
	// MixRevoke removes a user from a group the bench made it a member of
	// before measuring.
	MixRevoke = "revoke"
	// MixTimed adds a user to a group for a duration (1, 4, 8 or 24 hours):
	// a time-bound grant, whose timer the service records.
	MixTimed = "timed"
)

// Mix is the share of each kind of request, as weights (they need not add
// up to 100).
type Mix struct {
	Grant, Revoke, Timed float64
}

// DefaultMix is the mix the bench submits unless told otherwise: 45%
// permanent grants, 40% revokes, 15% time-bound grants.
var DefaultMix = Mix{Grant: 45, Revoke: 40, Timed: 15}

// String is the mix in --mix form.
func (m Mix) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return MixGrant + "=" + f(m.Grant) + "," + MixRevoke + "=" + f(m.Revoke) + "," + MixTimed + "=" + f(m.Timed)
}

// ParseMix reads a mix such as "grant=45,revoke=40,timed=15"; kinds left
// out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return Mix{}, fmt.Errorf("%w: mix %q: %q is not kind=weight, such as grant=45", ErrBenchConfig, s, part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
			return Mix{}, fmt.Errorf("%w: mix %q: the weight of %s must be a number, 0 or more", ErrBenchConfig, s, k)
		}
		if seen[k] {
			return Mix{}, fmt.Errorf("%w: mix %q: %s is given twice", ErrBenchConfig, s, k)
		}
		seen[k] = true
		switch k {
		case MixGrant:
			m.Grant = w
		case MixRevoke:
			m.Revoke = w
		case MixTimed:
			m.Timed = w
		default:
			return Mix{}, fmt.Errorf("%w: mix %q: unknown kind %q: use %s, %s and %s", ErrBenchConfig, s, k, MixGrant, MixRevoke, MixTimed)
		}
	}
	if m.Grant+m.Revoke+m.Timed <= 0 {
		return Mix{}, fmt.Errorf("%w: mix %q: give at least one kind a positive weight, such as %s", ErrBenchConfig, s, DefaultMix)
	}
	return m, nil
}

// counts splits n requests by the mix's weights, the remainder of the
// rounding going to the heaviest kinds first.
func (m Mix) counts(n int) map[string]int {
	total := m.Grant + m.Revoke + m.Timed
	kinds := []struct {
		name string
		w    float64
	}{{MixGrant, m.Grant}, {MixRevoke, m.Revoke}, {MixTimed, m.Timed}}
	out := map[string]int{}
	left := n
	for _, k := range kinds {
		c := int(math.Floor(float64(n) * k.w / total))
		out[k.name] = c
		left -= c
	}
	sort.SliceStable(kinds, func(i, j int) bool { return kinds[i].w > kinds[j].w })
	for i := 0; left > 0; i = (i + 1) % len(kinds) {
		if kinds[i].w > 0 {
			out[kinds[i].name]++
			left--
		}
	}
	return out
}

// BenchConfig configures Bench. Zero values take the defaults.
type BenchConfig struct {
	// Requests is how many requests each run submits; default 5,000.
	Requests int
	// TimeScale runs the simulator's clock and the rate budget that many
	// times faster than real time in the limited run; default 100.
	TimeScale float64
	// Share is the connector's rate_limit_share, in (0, 1]; default 1.
	Share float64
	// Seed generates the org and picks the requests; default 1.
	Seed uint64
	// Mix is the share of each kind of request; default DefaultMix.
	Mix Mix
	// Workers is how many requests the service carries out at once
	// (ACCESSBUS_PROVISIONING_WORKERS); default DefaultBenchWorkers.
	Workers int
	// UnlimitedRate is the requests per second the run without rate limits
	// submits at; 0 submits at the throughput the limited run achieved.
	UnlimitedRate float64
	// JetStream is where the requests, results and the service's state go;
	// required. The caller decides the server (accessbus bench runs one as
	// accessbus dev does, file storage in a temporary directory).
	JetStream jetstream.JetStream
	// Storage of the streams; file unless set. The service's own buckets
	// (connectors, ledger) are always file-backed, as in production.
	Storage jetstream.StorageType
	// Log receives the service's logs; nil discards them.
	Log *slog.Logger
}

// DefaultBenchWorkers is the bench's default Workers: the service's own
// default (ACCESSBUS_PROVISIONING_WORKERS).
const DefaultBenchWorkers = 16

// The runs of the bench.
const (
	// RunLimited is the run against Workforce limits at the time scale,
	// every request submitted at once.
	RunLimited = "limited"
	// RunUnlimited is the run without rate limits, requests submitted at a
	// steady rate.
	RunUnlimited = "unlimited"
)

// BenchResult is what one run measured. The JSON names are the ones
// `accessbus bench provision --json` prints; the acceptance script reads
// requests, succeeded, failed, bucket_utilization, p99_ms and http_429 of
// the first line (the limited run).
type BenchResult struct {
	// Run is RunLimited or RunUnlimited; RateLimits the simulator's
	// profile (workforce or none).
	Run        string `json:"run"`
	RateLimits string `json:"rate_limits"`
	// Settings of the run.
	Seed      uint64  `json:"seed"`
	TimeScale float64 `json:"time_scale"`
	Share     float64 `json:"share"`
	Workers   int     `json:"workers"`
	Mix       string  `json:"mix"`
	// SubmitRate is the requests per second asked for; 0 is all at once.
	SubmitRate float64 `json:"submit_rate_per_s"`
	// Requests submitted, by kind; the outcomes of their results.
	Requests       int            `json:"requests"`
	RequestsByKind map[string]int `json:"requests_by_kind"`
	Succeeded      int            `json:"succeeded"`
	Failed         int            `json:"failed"`
	NoOp           int            `json:"no_op"`
	// Failures holds up to five failed results' reasons and messages.
	Failures []string `json:"failures,omitempty"`
	// Latencies from a request's publish to its result's stream timestamp.
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
	// WallSeconds is from the first request published to the last result
	// stored; SubmitSeconds from the first request published to the last.
	WallSeconds   float64 `json:"wall_s"`
	SubmitSeconds float64 `json:"submit_s"`
	// Throughput is Requests / WallSeconds.
	Throughput float64 `json:"throughput_per_s"`
	// BucketUtilization (limited run only) is how full the writes kept the
	// bucket they go to, from the first write sent to the last result
	// stored (MeasuredSeconds): writes / (share x limit x MeasuredSeconds
	// / window), the window being 60 s of the org's clock in real time.
	BucketUtilization *float64 `json:"bucket_utilization,omitempty"`
	UtilizationBucket string   `json:"utilization_bucket,omitempty"`
	BucketLimit       int      `json:"bucket_limit_per_min,omitempty"`
	WindowSeconds     float64  `json:"window_s,omitempty"`
	MeasuredSeconds   float64  `json:"measured_s,omitempty"`
	// WritesPerWindow is the bucket's writes per window over the measured
	// time; MaxWritesPerWindow the most writes sent within any window's
	// length of real time (the share allows share x limit).
	WritesPerWindow    float64 `json:"writes_per_window,omitempty"`
	MaxWritesPerWindow int     `json:"max_writes_per_window,omitempty"`
	// WritesByWindow counts the writes in each window's length of real
	// time from the first write on (the last one cut short by the end):
	// where the bucket was not kept busy.
	WritesByWindow []int `json:"writes_by_window,omitempty"`
	// CPUSeconds is the CPU time (user and system) the bench's process
	// spent from the first request published to the last result stored:
	// the service, the simulator, the JetStream server and the bench's
	// publishing and collecting, all in this process. CPUMSPerRequest is it
	// over Requests: what the host must give each request, whatever else
	// runs on it.
	CPUSeconds      float64 `json:"cpu_s"`
	CPUMSPerRequest float64 `json:"cpu_ms_per_request"`
	// HTTP429 counts the 429s the simulator answered.
	HTTP429 int64 `json:"http_429"`
	// APICalls are the requests the simulator received, in all and by
	// bucket; Writes the PUT, POST and DELETE requests the service sent,
	// by bucket.
	APICalls       int64            `json:"api_calls"`
	CallsByBucket  map[string]int64 `json:"api_calls_by_bucket"`
	Writes         int64            `json:"writes"`
	WritesByBucket map[string]int64 `json:"writes_by_bucket"`
}

// benchGroups is how many groups the bench makes; users are made to give
// every request a (user, group) pair of its own.
const benchGroups = 25

// stallTimeout ends a run whose results stop arriving.
const stallTimeout = 60 * time.Second

// Bench runs the provisioning service (Run, as accessbus dev does) twice
// against the Okta simulator's small org with a connector on the App and
// Group Administrator token: first with Okta's Workforce rate limits at
// cfg.TimeScale, every request submitted at once, then without limits,
// submitted at a steady rate. Each run gets fresh users and groups (made
// directly in the org before measuring) so that every request changes
// Okta: grants of memberships that do not exist, revokes of ones that do.
func Bench(ctx context.Context, cfg BenchConfig) ([]BenchResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	limited, err := benchRun(ctx, cfg, RunLimited, 0)
	if err != nil {
		return nil, err
	}
	out := []BenchResult{limited}
	rate := cfg.UnlimitedRate
	if rate == 0 {
		rate = limited.Throughput
	}
	unlimited, err := benchRun(ctx, cfg, RunUnlimited, rate)
	if err != nil {
		return out, err
	}
	return append(out, unlimited), nil
}

func (cfg *BenchConfig) defaults() error {
	if cfg.Requests == 0 {
		cfg.Requests = 5000
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 100
	}
	if cfg.Share == 0 {
		cfg.Share = 1
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Mix == (Mix{}) {
		cfg.Mix = DefaultMix
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultBenchWorkers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.JetStream == nil {
		errs = append(errs, errors.New("no JetStream"))
	}
	if cfg.Requests < 1 {
		errs = append(errs, fmt.Errorf("requests %d: must be 1 or more", cfg.Requests))
	}
	if !(cfg.TimeScale >= 1) || math.IsInf(cfg.TimeScale, 0) {
		errs = append(errs, fmt.Errorf("time scale %v: must be at least 1", cfg.TimeScale))
	}
	if !(cfg.Share > 0 && cfg.Share <= 1) {
		errs = append(errs, fmt.Errorf("share %v: must be in (0, 1]", cfg.Share))
	}
	if cfg.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d: must be 1 or more", cfg.Workers))
	}
	if !(cfg.UnlimitedRate >= 0) || math.IsInf(cfg.UnlimitedRate, 0) {
		errs = append(errs, fmt.Errorf("unlimited rate %v: must be 0 (the limited run's throughput) or more", cfg.UnlimitedRate))
	}
	if m := cfg.Mix; m.Grant < 0 || m.Revoke < 0 || m.Timed < 0 || m.Grant+m.Revoke+m.Timed <= 0 {
		errs = append(errs, fmt.Errorf("mix %s: weights must be 0 or more, one positive", m))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBenchConfig, errors.Join(errs...))
	}
	return nil
}

// benchRequest is one request the bench submits.
type benchRequest struct {
	kind string
	req  *eventsv1.ProvisioningRequest
}

// benchRun is one run: a simulator, a connector on it, the service, the
// requests, and the figures.
func benchRun(ctx context.Context, cfg BenchConfig, run string, rate float64) (BenchResult, error) {
	fail := func(format string, args ...any) (BenchResult, error) {
		return BenchResult{}, fmt.Errorf("provisioning bench, %s run: "+format, append([]any{run}, args...)...)
	}
	limits, budgetScale := oktasim.Workforce, cfg.TimeScale
	if run == RunUnlimited {
		// No limits in the simulator, and a budget whose windows last
		// microseconds: neither paces anything.
		limits, budgetScale = oktasim.NoLimits, 1e6
	}
	sim, err := oktasim.Start(ctx, oktasim.Config{Profile: "small", Seed: cfg.Seed, RateLimits: limits, TimeScale: cfg.TimeScale})
	if err != nil {
		return fail("start the simulator: %w", err)
	}
	tr := &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 2 * ratelimit.DefaultConcurrency, IdleConnTimeout: 90 * time.Second}
	calls := &callLog{base: tr, writes: map[string]int64{}}
	defer func() {
		tr.CloseIdleConnections()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	}()

	nonce, err := benchNonce()
	if err != nil {
		return fail("%w", err)
	}
	connID := "bench-" + nonce + "-" + run
	reqs, err := benchOrg(sim, cfg, connID, nonce)
	if err != nil {
		return fail("make the org: %w", err)
	}

	js := cfg.JetStream
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: cfg.Storage})...); err != nil {
		return fail("declare streams: %w", err)
	}
	b, err := bus.New(js, bus.Options{Logger: cfg.Log})
	if err != nil {
		return fail("%w", err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		return fail("%w", err)
	}
	if err := benchConnector(ctx, js, key, connID, sim, cfg.Share); err != nil {
		return fail("connector: %w", err)
	}

	// The results, stamped by the stream when stored.
	col := &collector{sent: make(map[string]time.Time, len(reqs)), byID: map[string]*benchRequest{}, done: make(chan struct{}), want: len(reqs)}
	for i := range reqs {
		col.byID[reqs[i].req.GetRequestId()] = &reqs[i]
	}
	cons, err := js.OrderedConsumer(ctx, subjects.StreamProvisioning, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"provisioning." + connID + ".result.*"},
	})
	if err != nil {
		return fail("follow the results: %w", err)
	}
	cc, err := cons.Consume(col.add)
	if err != nil {
		return fail("follow the results: %w", err)
	}
	defer cc.Stop()

	// The service, as accessbus dev runs it.
	health := service.NewHealth()
	health.Register(Name)
	svcCtx, stopSvc := context.WithCancel(ctx)
	defer stopSvc()
	svcDone := make(chan error, 1)
	started, stopped := false, false
	start := func() error {
		started = true
		go func() {
			svcDone <- Run(svcCtx, Deps{
				Deps: service.Deps{Logger: cfg.Log, Bus: b, Health: health, Mux: http.NewServeMux()},
				Config: Config{
					Config:     service.Config{StreamReplicas: 1, ShutdownTimeout: 10 * time.Second},
					SecretsKey: key, Workers: cfg.Workers, WarnBefore: 24 * time.Hour,
					RateLimitShare: cfg.Share, OktaTimeScale: budgetScale, ExpiryEvery: time.Second,
				},
				HTTPClient: &http.Client{Transport: calls},
			})
		}()
		if err := waitReady(ctx, health, svcDone); err != nil {
			stopped = true // Run returned, or ctx ended
			return err
		}
		return nil
	}
	stop := func() error {
		if !started || stopped {
			return nil
		}
		stopped = true
		stopSvc()
		return <-svcDone
	}
	defer func() { _ = stop() }()

	subj, err := subjects.ProvisioningRequest(connID)
	if err != nil {
		return fail("%w", err)
	}
	before := sim.Server.Counts()
	cpuBefore := processCPU()
	var first, last time.Time
	if rate == 0 {
		// All at once: the whole backlog is on the queue before the
		// service starts, so that from its first write to its last result
		// the queue is never empty, and publishing it (other processes'
		// work in production) does not compete with the service.
		if first, last, err = submit(ctx, b, subj, reqs, rate, col); err != nil {
			return fail("submit: %w", err)
		}
		if err := start(); err != nil {
			return fail("start the service: %w", err)
		}
	} else {
		if err := start(); err != nil {
			return fail("start the service: %w", err)
		}
		if first, last, err = submit(ctx, b, subj, reqs, rate, col); err != nil {
			return fail("submit: %w", err)
		}
	}
	if err := col.wait(ctx); err != nil {
		return fail("%w", err)
	}
	cpu := processCPU() - cpuBefore
	if err := stop(); err != nil {
		return fail("stop the service: %w", err)
	}
	after := sim.Server.Counts()

	r := BenchResult{
		Run: run, RateLimits: limits.Name, Seed: cfg.Seed, TimeScale: cfg.TimeScale, Share: cfg.Share,
		Workers: cfg.Workers, Mix: cfg.Mix.String(), SubmitRate: rate, Requests: len(reqs),
		RequestsByKind: map[string]int{}, CallsByBucket: map[string]int64{}, WritesByBucket: map[string]int64{},
		SubmitSeconds: last.Sub(first).Seconds(), CPUSeconds: cpu.Seconds(),
		CPUMSPerRequest: float64(cpu) / float64(time.Millisecond) / float64(len(reqs)),
	}
	for _, q := range reqs {
		r.RequestsByKind[q.kind]++
	}
	lat := col.results(&r)
	end := col.lastStored()
	r.WallSeconds = end.Sub(first).Seconds()
	if r.WallSeconds > 0 {
		r.Throughput = float64(r.Requests) / r.WallSeconds
	}
	r.P50MS, r.P90MS, r.P99MS, r.MaxMS = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), percentile(lat, 1)
	for bucket, n := range after.Requests {
		if n -= before.Requests[bucket]; n > 0 {
			r.CallsByBucket[bucket] = n
			r.APICalls += n
		}
	}
	for bucket, n := range after.Limited {
		r.HTTP429 += n - before.Limited[bucket]
	}
	writes := calls.snapshot()
	for bucket, n := range writes.byBucket {
		r.WritesByBucket[bucket] = n
		r.Writes += n
	}
	if run == RunLimited {
		utilization(&r, writes.groups, end, limits.PerMinute[oktasim.BucketGroups])
	}
	return r, nil
}

// utilization fills the limited run's bucket figures from the send times
// of the writes in the groups bucket (memberships: PUT and DELETE
// /api/v1/groups/{g}/users/{u}) and the time the last result was stored.
func utilization(r *BenchResult, sent []time.Time, end time.Time, limit int) {
	r.UtilizationBucket, r.BucketLimit = oktasim.BucketGroups, limit
	window := time.Duration(float64(time.Minute) / r.TimeScale)
	r.WindowSeconds = window.Seconds()
	u := 0.0
	defer func() { r.BucketUtilization = &u }()
	if len(sent) == 0 || limit == 0 {
		return
	}
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	measured := end.Sub(sent[0])
	if measured <= 0 {
		return
	}
	r.MeasuredSeconds = measured.Seconds()
	r.WritesPerWindow = float64(len(sent)) / (measured.Seconds() / window.Seconds())
	u = r.WritesPerWindow / (r.Share * float64(limit))
	r.WritesByWindow = make([]int, int(math.Ceil(measured.Seconds()/window.Seconds())))
	for _, t := range sent {
		if i := int(t.Sub(sent[0]) / window); i < len(r.WritesByWindow) {
			r.WritesByWindow[i]++
		}
	}
	// The most writes within any window's length: two pointers over the
	// sorted send times.
	j := 0
	for i := range sent {
		for sent[i].Sub(sent[j]) >= window {
			j++
		}
		r.MaxWritesPerWindow = max(r.MaxWritesPerWindow, i-j+1)
	}
}

// percentile is the nearest-rank q-quantile of sorted xs (q in (0, 1]).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return math.Round(xs[max(0, min(i, len(xs)-1))]*10) / 10
}

// benchOrg adds fresh active users and OKTA_GROUP groups to the simulated
// org, without API calls, and returns the requests: one per (user, group)
// pair, in a seeded random order, each kind as the mix says. The revoked
// pairs are made members here, before measuring.
func benchOrg(sim *oktasim.Running, cfg BenchConfig, connID, nonce string) ([]benchRequest, error) {
	org := sim.Org
	n := cfg.Requests
	nUsers := (n + benchGroups - 1) / benchGroups
	groups := make([]string, benchGroups)
	for i := range groups {
		g, err := org.CreateGroup(nil, oktasim.GroupOkta, fmt.Sprintf("Bench %s %02d", nonce, i), "accessbus bench provision", "", time.Time{})
		if err != nil {
			return nil, err
		}
		groups[i] = g.ID
	}
	users := make([]string, nUsers)
	for i := range users {
		login := fmt.Sprintf("bench.%s.%d@example.com", nonce, i)
		u, err := org.CreateUser(nil, oktasim.UserProfile{Login: login, Email: login, FirstName: "Bench", LastName: strconv.Itoa(i)}, "ACTIVE", time.Time{})
		if err != nil {
			return nil, err
		}
		users[i] = u.ID
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, 0xbe4c4))
	pairs := rng.Perm(nUsers * benchGroups)[:n]
	counts := cfg.Mix.counts(n)
	kinds := make([]string, 0, n)
	for _, k := range []string{MixGrant, MixRevoke, MixTimed} {
		for range counts[k] {
			kinds = append(kinds, k)
		}
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	durations := []time.Duration{time.Hour, 4 * time.Hour, 8 * time.Hour, 24 * time.Hour}
	out := make([]benchRequest, n)
	for i, p := range pairs {
		uid, gid := users[p/benchGroups], groups[p%benchGroups]
		action := eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT
		if kinds[i] == MixRevoke {
			action = eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE
			if _, err := org.AddMember(nil, gid, uid); err != nil {
				return nil, err
			}
		}
		req := &eventsv1.ProvisioningRequest{
			RequestId: fmt.Sprintf("bench-%s-%d", nonce, i), ConnectorId: connID, Action: action,
			Target: &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
				GroupMembership: &eventsv1.GroupMembershipTarget{UserId: uid, GroupId: gid}}},
			RequestedBy: "accessbus-bench", Reason: "accessbus bench provision",
		}
		if kinds[i] == MixTimed {
			req.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(durations[rng.IntN(len(durations))])}
		}
		out[i] = benchRequest{kind: kinds[i], req: req}
	}
	return out, nil
}

// benchConnector creates the run's connector as the catalog leaves it after
// a first sync: Connected, with the App and Group Administrator token, its
// capabilities, and the share.
func benchConnector(ctx context.Context, js jetstream.JetStream, key secrets.Key, id string, sim *oktasim.Running, share float64) error {
	conns, err := connectors.Open(ctx, js, connectors.Options{Key: key})
	if err != nil {
		return err
	}
	if _, err := conns.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: sim.URL}); err != nil {
		return err
	}
	if _, err := conns.SetToken(ctx, id, telemetry.NewSecret(sim.Tokens.AppGroupAdmin)); err != nil {
		return err
	}
	_, err = conns.Update(ctx, id, func(c *eventsv1.Connector) error {
		c.Status = eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED
		c.Capabilities = &eventsv1.Capabilities{ReviewGroupMembership: true, ProvisionGroupMembership: true,
			ReviewAppAssignment: true, ProvisionAppAssignment: true}
		if c.Options == nil {
			c.Options = &eventsv1.ConnectorOptions{}
		}
		c.Options.RateLimitShare = share
		return nil
	})
	return err
}

// waitReady waits until the service reports ready, or fails to start.
func waitReady(ctx context.Context, h *service.Health, done <-chan error) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(time.Minute)
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("it stopped before it was ready")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("not ready after a minute: %v", h.Problems(ctx))
		case <-t.C:
			if len(h.Problems(ctx)) == 0 {
				return nil
			}
		}
	}
}

// submit publishes the requests, all at once (rate 0) or rate per second,
// noting each one's publish time; it returns the first and last.
func submit(ctx context.Context, b *bus.Bus, subj string, reqs []benchRequest, rate float64, col *collector) (first, last time.Time, err error) {
	const batch = 500 // acks awaited per batch, well under the pending limit
	var pending []jetstream.PubAckFuture
	flush := func() error {
		for _, f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pending = pending[:0]
		return nil
	}
	start := time.Now()
	for i, q := range reqs {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if err := flush(); err != nil {
					return first, last, err
				}
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					return first, last, ctx.Err()
				}
			}
		}
		now := col.published(q.req.GetRequestId())
		if i == 0 {
			first = now
		}
		last = now
		f, err := b.PublishAsync(ctx, subj, request.MsgID(q.req), q.req)
		if err != nil {
			return first, last, err
		}
		if pending = append(pending, f); len(pending) >= batch {
			if err := flush(); err != nil {
				return first, last, err
			}
		}
	}
	return first, last, flush()
}

// collector gathers the results of one run.
type collector struct {
	want int
	byID map[string]*benchRequest

	mu       sync.Mutex
	sent     map[string]time.Time
	got      map[string]*eventsv1.ProvisioningResult
	at       map[string]time.Time
	latest   time.Time
	progress time.Time
	bad      error
	done     chan struct{}
}

// published notes that a request is being published now.
func (c *collector) published(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.sent[id] = now
	return now
}

func (c *collector) add(m jetstream.Msg) {
	res := &eventsv1.ProvisioningResult{}
	meta, err := m.Metadata()
	if err == nil {
		err = proto.Unmarshal(m.Data(), res)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got, c.at = map[string]*eventsv1.ProvisioningResult{}, map[string]time.Time{}
	}
	c.progress = time.Now()
	if err != nil {
		if c.bad == nil {
			c.bad = fmt.Errorf("read a result on %s: %w", m.Subject(), err)
			close(c.done)
		}
		return
	}
	id := res.GetRequestId()
	if _, ours := c.byID[id]; !ours || c.got[id] != nil || c.bad != nil {
		return
	}
	c.got[id], c.at[id] = res, meta.Timestamp
	if meta.Timestamp.After(c.latest) {
		c.latest = meta.Timestamp
	}
	if len(c.got) == c.want {
		close(c.done)
	}
}

// wait waits for every result, failing when none comes for stallTimeout.
func (c *collector) wait(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	c.mu.Lock()
	c.progress = time.Now()
	c.mu.Unlock()
	for {
		select {
		case <-c.done:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.bad
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			c.mu.Lock()
			stalled, n := time.Since(c.progress) > stallTimeout, len(c.got)
			c.mu.Unlock()
			if stalled {
				return fmt.Errorf("%d of %d results after no new one for %s", n, c.want, stallTimeout)
			}
		}
	}
}

// results counts the outcomes into r and returns the latencies in
// milliseconds, sorted.
func (c *collector) results(r *BenchResult) []float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	lat := make([]float64, 0, len(c.got))
	ids := make([]string, 0, len(c.got))
	for id := range c.got {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		res := c.got[id]
		switch res.GetOutcome() {
		case eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED:
			r.Succeeded++
			if res.GetNoOp() {
				r.NoOp++
			}
		default:
			r.Failed++
			if len(r.Failures) < 5 {
				r.Failures = append(r.Failures, res.GetFailureReason().String()+": "+res.GetMessage())
			}
		}
		lat = append(lat, float64(c.at[id].Sub(c.sent[id]))/float64(time.Millisecond))
	}
	sort.Float64s(lat)
	return lat
}

func (c *collector) lastStored() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest
}

// callLog is the service's HTTP transport to the simulator: it counts the
// writes by bucket and notes when each write to the groups bucket was sent.
type callLog struct {
	base http.RoundTripper

	mu     sync.Mutex
	writes map[string]int64
	groups []time.Time
}

// RoundTrip implements http.RoundTripper.
func (l *callLog) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		bucket := oktasim.BucketOf(req.Method, req.URL.Path)
		l.mu.Lock()
		l.writes[bucket]++
		if bucket == oktasim.BucketGroups {
			l.groups = append(l.groups, time.Now())
		}
		l.mu.Unlock()
	}
	return l.base.RoundTrip(req)
}

type callCounts struct {
	byBucket map[string]int64
	groups   []time.Time
}

func (l *callLog) snapshot() callCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := callCounts{byBucket: make(map[string]int64, len(l.writes)), groups: slices.Clone(l.groups)}
	for k, v := range l.writes {
		c.byBucket[k] = v
	}
	return c
}

// processCPU is the CPU time (user and system) this process has used, 0
// where that is not known.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchNonce() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
