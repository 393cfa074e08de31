package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/subjects"
	syncsvc "github.com/accessbus/accessbus/services/sync"
)

// errBenchRealtime marks a realtime benchmark that could not run (as
// opposed to one that ran and measured a bad figure).
var errBenchRealtime = errors.New("bench realtime")

// The two paths a change can take to the bus.
const (
	pathHook      = "hook"
	pathSystemLog = "system_log"
)

// benchRealtimeOptions are the flags of `accessbus bench realtime`.
type benchRealtimeOptions struct {
	json      bool
	changes   int
	rate      float64
	profile   string
	logPoll   time.Duration
	missAfter time.Duration
	paths     []string
	seed      uint64
	timeScale float64
}

func newBenchRealtimeCmd() *cobra.Command {
	o := benchRealtimeOptions{}
	cmd := &cobra.Command{
		Use:   "realtime",
		Short: "Measure how fast a change made in Okta reaches access.> through event hooks and through the System Log",
		Long: `Runs every accessbus service in one process as "accessbus dev --demo" does (a
temporary data dir, an embedded NATS JetStream, the Okta simulator serving a
generated org with Okta's Workforce rate limits, run --time-scale times faster)
and waits for the demo connector's first sync. Then, per path:

  hook        the demo connector's event hook is registered (through the
              SyncService API, pointing at the in-process receiver) and the
              System Log catch-up is off;
  system_log  no hook; the System Log is polled every --log-poll.

--changes changes of mixed kinds (group membership added and removed, user
assigned to and unassigned from an app, user suspended and unsuspended) are
made directly on the simulated org at --rate per second, as its Super
Administrator, and for each the time from the change to the first matching
event on access.demo.> is measured. A change without its event within
--miss-after is missed; a change's event seen again is a duplicate. api_calls
counts the requests the simulator received during the measurement (the
connector's own reads: the benchmark makes its changes without API calls).

The default --rate 50 at --time-scale 50 puts the org's rate limits under the
pressure of one governance change per second of Okta time, a busy org: 2,000
changes then take 40 s instead of 33 minutes. At --time-scale 1 the same rate
is 50 changes per real second, which Okta's apps bucket (100 requests a
minute) cannot confirm: the figures then measure Okta's limits, not accessbus
(docs/performance.md has both).

--json prints one line holding a JSON array of one object per path, the hook
path first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchRealtime(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print a JSON array on one line, one object per path, the hook path first")
	f.IntVar(&o.changes, "changes", 2000, "changes to make per path")
	f.Float64Var(&o.rate, "rate", 50, "changes per second")
	f.StringVar(&o.profile, "profile", "small", "org size: small, medium or large")
	f.DurationVar(&o.logPoll, "log-poll", 2*time.Second, "System Log poll interval of the system_log path")
	f.DurationVar(&o.missAfter, "miss-after", 30*time.Second, "a change whose event has not arrived after this long is missed")
	f.StringSliceVar(&o.paths, "paths", []string{pathHook, pathSystemLog}, "paths to measure, in this order: hook, system_log")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the changes' choice")
	f.Float64Var(&o.timeScale, "time-scale", 50, "run the simulator's clock and the sync's rate budget this many times faster; with --rate, sets how hard the changes press on Okta's rate limits (--rate / --time-scale changes per second of Okta time)")
	return cmd
}

// realtimeResult is what one path measured.
type realtimeResult struct {
	Path          string         `json:"path"`
	Profile       string         `json:"profile"`
	Changes       int            `json:"changes"`
	ChangesByKind map[string]int `json:"changes_by_kind"`
	EventsMatched int            `json:"events_matched"`
	Missed        int            `json:"missed"`
	Duplicates    int            `json:"duplicates"`
	P50MS         float64        `json:"p50_ms"`
	P90MS         float64        `json:"p90_ms"`
	P99MS         float64        `json:"p99_ms"`
	MaxMS         float64        `json:"max_ms"`
	APICalls      int64          `json:"api_calls"`
	HTTP429       int64          `json:"http_429"`
	// CallsByBucket splits APICalls by Okta rate-limit bucket.
	CallsByBucket map[string]int64 `json:"api_calls_by_bucket"`
	TimeScale     float64          `json:"time_scale"`
	// Rate is the changes per second asked; AchievedRate what was made.
	Rate         float64 `json:"rate_per_s"`
	AchievedRate float64 `json:"achieved_rate_per_s"`
	LogPollMS    int64   `json:"log_poll_ms,omitempty"`
	// SyncRuns counts the connector's sync runs completed during the
	// measurement, with their mean and longest duration: what a handoff costs.
	SyncRuns int `json:"sync_runs"`
	// TargetedRuns counts the targeted resyncs whose changes reached the
	// bus (those that found nothing new publish nothing, and no targeted
	// run publishes run events).
	TargetedRuns    int     `json:"targeted_runs"`
	SyncRunMeanMS   float64 `json:"sync_run_mean_ms"`
	SyncRunMaxMS    float64 `json:"sync_run_max_ms"`
	HookDeliveries  int     `json:"hook_deliveries,omitempty"`
	WallSeconds     float64 `json:"wall_s"`
	AccessEventsAll int     `json:"access_events"`
}

func runBenchRealtime(ctx context.Context, o benchRealtimeOptions, stdout, stderr io.Writer) error {
	if !(o.timeScale >= 1) {
		return fmt.Errorf("%w: --time-scale %v must be at least 1", errBenchRealtime, o.timeScale)
	}
	if o.changes < 1 || !(o.rate > 0) || o.missAfter <= 0 {
		return fmt.Errorf("%w: --changes %d, --rate %v and --miss-after %s must be positive", errBenchRealtime, o.changes, o.rate, o.missAfter)
	}
	if o.logPoll < time.Second {
		// The sync service refuses a shorter poll.
		return fmt.Errorf("%w: --log-poll %s must be at least 1s", errBenchRealtime, o.logPoll)
	}
	if !slices.Contains(oktasim.Profiles(), o.profile) {
		return fmt.Errorf("%w: --profile %q: use one of %s", errBenchRealtime, o.profile, strings.Join(oktasim.Profiles(), ", "))
	}
	if len(o.paths) == 0 {
		return fmt.Errorf("%w: --paths is empty", errBenchRealtime)
	}
	for _, p := range o.paths {
		if p != pathHook && p != pathSystemLog {
			return fmt.Errorf("%w: --paths %q: use hook or system_log", errBenchRealtime, p)
		}
	}
	var results []realtimeResult
	for _, p := range o.paths {
		r, err := benchRealtimePath(ctx, o, p, stderr)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if o.json {
		b, err := json.Marshal(results)
		if err != nil {
			return fmt.Errorf("bench realtime: encode results: %w", err)
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
			return fmt.Errorf("bench realtime: write results: %w", err)
		}
		return nil
	}
	return printRealtimeTable(stdout, results)
}

// printRealtimeTable prints the paths side by side, one column per path.
func printRealtimeTable(w io.Writer, rs []realtimeResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(realtimeResult) string) {
		fmt.Fprint(tw, name+"\t")
		for _, r := range rs {
			fmt.Fprint(tw, f(r)+"\t")
		}
		fmt.Fprintln(tw)
	}
	ms := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	row("path", func(r realtimeResult) string { return r.Path })
	row("profile", func(r realtimeResult) string { return r.Profile })
	row("changes", func(r realtimeResult) string { return fmt.Sprint(r.Changes) })
	row("rate (/s, asked / made)", func(r realtimeResult) string { return fmt.Sprintf("%.0f / %.1f", r.Rate, r.AchievedRate) })
	row("events matched", func(r realtimeResult) string { return fmt.Sprint(r.EventsMatched) })
	row("missed", func(r realtimeResult) string { return fmt.Sprint(r.Missed) })
	row("duplicates", func(r realtimeResult) string { return fmt.Sprint(r.Duplicates) })
	row("p50 (ms)", func(r realtimeResult) string { return ms(r.P50MS) })
	row("p90 (ms)", func(r realtimeResult) string { return ms(r.P90MS) })
	row("p99 (ms)", func(r realtimeResult) string { return ms(r.P99MS) })
	row("max (ms)", func(r realtimeResult) string { return ms(r.MaxMS) })
	row("api calls", func(r realtimeResult) string { return fmt.Sprint(r.APICalls) })
	row("http 429", func(r realtimeResult) string { return fmt.Sprint(r.HTTP429) })
	row("api calls by bucket", func(r realtimeResult) string {
		var parts []string
		for b, n := range r.CallsByBucket {
			parts = append(parts, fmt.Sprintf("%s %d", b, n))
		}
		slices.Sort(parts)
		return strings.Join(parts, ", ")
	})
	row("time scale", func(r realtimeResult) string { return fmt.Sprint(r.TimeScale) })
	row("full sync runs (mean / max ms)", func(r realtimeResult) string {
		return fmt.Sprintf("%d (%.0f / %.0f)", r.SyncRuns, r.SyncRunMeanMS, r.SyncRunMaxMS)
	})
	row("targeted runs with changes", func(r realtimeResult) string { return fmt.Sprint(r.TargetedRuns) })
	row("hook deliveries", func(r realtimeResult) string { return fmt.Sprint(r.HookDeliveries) })
	row("access events", func(r realtimeResult) string { return fmt.Sprint(r.AccessEventsAll) })
	row("wall (s)", func(r realtimeResult) string { return fmt.Sprintf("%.1f", r.WallSeconds) })
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench realtime: write results: %w", err)
	}
	return nil
}

// benchRealtimePath runs accessbus dev --demo in process, prepares path and
// measures it.
func benchRealtimePath(ctx context.Context, o benchRealtimeOptions, path string, stderr io.Writer) (realtimeResult, error) {
	fail := func(format string, args ...any) (realtimeResult, error) {
		return realtimeResult{}, fmt.Errorf("%w: %s path: %s", errBenchRealtime, path, fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "accessbus-bench-realtime-")
	if err != nil {
		return fail("make a data dir: %v", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	poll := time.Duration(0) // hooks alone: the catch-up would hide their losses
	if path == pathSystemLog {
		poll = o.logPoll
	}
	simCh := make(chan *oktasim.Running, 1)
	readyCh := make(chan [2]string, 1)
	errCh := make(chan error, 1)
	devCtx, stopDev := context.WithCancel(ctx)
	logs := &tailBuffer{max: 8 << 10}
	go func() {
		errCh <- runDev(devCtx, devOptions{
			dataDir: dir, demo: true, demoTimeScale: o.timeScale, demoProfile: o.profile,
			httpAddr: "127.0.0.1:0", logLevel: "warn", shutdownTimeout: 20 * time.Second,
			onDemoSim: func(s *oktasim.Running) { simCh <- s },
			tuneSync:  func(c *syncsvc.Config) { c.LogPollEvery = poll },
		}, io.Discard, logs, func(h, n string) { readyCh <- [2]string{h, n} })
	}()
	stopped := false
	defer func() {
		if !stopped {
			stopDev()
			<-errCh
		}
	}()
	var addr, natsURL string
	select {
	case a := <-readyCh:
		addr, natsURL = a[0], a[1]
	case err := <-errCh:
		stopped = true
		return fail("accessbus dev stopped before ready: %v; log: %s", err, logs.String())
	case <-ctx.Done():
		return fail("%v", ctx.Err())
	}
	sim := <-simCh // handed over before ready

	nc, err := nats.Connect(natsURL, nats.Name("accessbus-bench-realtime"))
	if err != nil {
		return fail("connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail("%v", err)
	}
	runs, err := js.OrderedConsumer(ctx, subjects.StreamSync, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sync." + demoConnector + ".run.>"},
	})
	if err != nil {
		return fail("follow the demo's sync runs: %v", err)
	}
	firstCtx, cancelFirst := context.WithTimeout(ctx, 5*time.Minute)
	err = waitRunCompleted(firstCtx, runs)
	cancelFirst()
	if err != nil {
		return fail("wait for the demo's first sync: %v; log: %s", err, logs.String())
	}

	if path == pathHook {
		server := "http://" + addr
		// The bench's own dev data dir holds the first admin's key; the
		// environment's ACCESSBUS_API_KEY belongs to another system.
		client := syncv1connect.NewSyncServiceClient(&http.Client{Timeout: 30 * time.Second}, server,
			connect.WithInterceptors(auth.ClientKey(dataDirKey(dir))))
		resp, err := client.RegisterHook(ctx, connect.NewRequest(&syncv1.RegisterHookRequest{ConnectorId: demoConnector, Url: server}))
		if err != nil {
			return fail("register the demo's event hook: %v", err)
		}
		if resp.Msg.GetStatus() != "ACTIVE" || resp.Msg.GetVerificationStatus() != "VERIFIED" {
			return fail("the demo's event hook is %s, %s; want ACTIVE, VERIFIED", resp.Msg.GetStatus(), resp.Msg.GetVerificationStatus())
		}
	}

	plan, err := readRealtimeOrg(ctx, sim, o.seed)
	if err != nil {
		return fail("%v", err)
	}
	r, err := measureRealtime(ctx, o, path, sim, js, plan)
	if err != nil {
		return fail("%v; log: %s", err, logs.String())
	}
	stopDev()
	stopped = true
	if err := <-errCh; err != nil {
		fmt.Fprintf(stderr, "bench realtime: %s path: accessbus dev stopped with: %v\n", path, err)
	}
	return r, nil
}

// waitRunCompleted waits for the next sync run of the demo to complete.
func waitRunCompleted(ctx context.Context, runs jetstream.Consumer) error {
	for {
		msg, err := next(ctx, runs)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(msg.Subject(), ".run.completed"):
			return nil
		case strings.HasSuffix(msg.Subject(), ".run.failed"):
			ev := &eventsv1.SyncRunFailed{}
			_ = proto.Unmarshal(msg.Data(), ev)
			return fmt.Errorf("sync run failed (%s): %s", ev.GetReason(), ev.GetMessage())
		}
	}
}

// Kinds of change the benchmark makes.
const (
	kindMemberAdd    = "membership_add"
	kindMemberRemove = "membership_remove"
	kindAppAssign    = "app_assign"
	kindAppUnassign  = "app_unassign"
	kindSuspend      = "user_suspend"
	kindUnsuspend    = "user_unsuspend"
)

var realtimeKinds = []string{kindMemberAdd, kindAppAssign, kindSuspend, kindMemberRemove, kindAppUnassign, kindUnsuspend}

// realtimePlan is what the benchmark may change. Users are split in three
// disjoint sets (memberships, app assignments, status) so that no change
// alters what another kind's event depends on: a user added to a group
// assigned to an app would otherwise turn a later direct unassignment into
// an update instead of a removal.
type realtimePlan struct {
	org         *oktasim.Org
	actor       *oktasim.LogActor
	groups      []string // OKTA_GROUPs
	apps        []string
	memberUsers []string
	appUsers    []string
	statusUsers map[string]string // user -> status, ACTIVE or SUSPENDED
	rng         *rand.Rand
}

// readRealtimeOrg reads the org's users, groups and apps through its API as
// its Super Administrator (before the measurement, so these calls are not
// counted) and builds the plan.
func readRealtimeOrg(ctx context.Context, sim *oktasim.Running, seed uint64) (*realtimePlan, error) {
	type user struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Profile struct {
			Login     string `json:"login"`
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
		} `json:"profile"`
	}
	var users []user
	if err := simList(ctx, sim, "/api/v1/users?limit=200", &users); err != nil {
		return nil, err
	}
	var groups []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := simList(ctx, sim, "/api/v1/groups?limit=1000", &groups); err != nil {
		return nil, err
	}
	var apps []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := simList(ctx, sim, "/api/v1/apps?limit=200", &apps); err != nil {
		return nil, err
	}
	admins := map[string]bool{sim.Generated.Admins.SuperAdmin: true, sim.Generated.Admins.ReadOnlyAdmin: true, sim.Generated.Admins.AppGroupAdmin: true}
	p := &realtimePlan{org: sim.Org, statusUsers: map[string]string{}, rng: rand.New(rand.NewPCG(seed, 7))}
	n := 0
	for _, u := range users {
		if u.ID == sim.Generated.Admins.SuperAdmin {
			p.actor = &oktasim.LogActor{ID: u.ID, Type: "User", AlternateID: u.Profile.Login, DisplayName: u.Profile.FirstName + " " + u.Profile.LastName}
		}
		if admins[u.ID] || (u.Status != "ACTIVE" && u.Status != "SUSPENDED") {
			continue // the connector's token must keep working
		}
		switch n % 3 {
		case 0:
			if u.Status == "ACTIVE" {
				p.memberUsers = append(p.memberUsers, u.ID)
			}
		case 1:
			if u.Status == "ACTIVE" {
				p.appUsers = append(p.appUsers, u.ID)
			}
		default:
			p.statusUsers[u.ID] = u.Status
		}
		n++
	}
	for _, g := range groups {
		if g.Type == oktasim.GroupOkta {
			p.groups = append(p.groups, g.ID)
		}
	}
	for _, a := range apps {
		if a.Status == "ACTIVE" {
			p.apps = append(p.apps, a.ID)
		}
	}
	if p.actor == nil || len(p.groups) == 0 || len(p.apps) == 0 || len(p.memberUsers) == 0 || len(p.appUsers) == 0 || len(p.statusUsers) == 0 {
		return nil, fmt.Errorf("the org has too little to change: %d groups, %d apps, %d/%d/%d users, super admin found %t",
			len(p.groups), len(p.apps), len(p.memberUsers), len(p.appUsers), len(p.statusUsers), p.actor != nil)
	}
	return p, nil
}

// simList reads every page of a list from the simulator's API.
func simList[T any](ctx context.Context, sim *oktasim.Running, path string, out *[]T) error {
	client := sim.Client()
	next := sim.URL + path
	for next != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		req.Header.Set("Authorization", "SSWS "+sim.Tokens.SuperAdmin)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		var page []T
		err = json.NewDecoder(resp.Body).Decode(&page)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("read %s: HTTP %d", path, resp.StatusCode)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		*out = append(*out, page...)
		next = ""
		for _, l := range resp.Header.Values("Link") {
			if strings.Contains(l, `rel="next"`) {
				if s, e := strings.Index(l, "<"), strings.Index(l, ">"); s >= 0 && e > s {
					if u, err := url.Parse(l[s+1 : e]); err == nil {
						next = u.String()
					}
				}
			}
		}
	}
	return nil
}

// rtChange is one change made and what became of it.
type rtChange struct {
	kind    string
	key     string // the event that shows it
	entity  string // what no other change may touch until it is seen
	at      time.Time
	seen    time.Time
	matched bool
	dups    int
}

// rtTracker matches access events with the changes they show.
type rtTracker struct {
	mu       sync.Mutex
	byKey    map[string]*rtChange // the latest change per event key
	busy     map[string]bool      // entities with a change not yet seen
	all      []*rtChange
	events   int
	released []*rtChange // seen changes whose entity may change again
}

// observe handles one access event received at t.
func (tr *rtTracker) observe(subject string, data []byte, t time.Time) {
	key := realtimeEventKey(subject, data)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events++
	if key == "" {
		return
	}
	c, ok := tr.byKey[key]
	if !ok {
		return
	}
	if c.matched {
		c.dups++
		return
	}
	c.matched, c.seen = true, t
	delete(tr.busy, c.entity)
	tr.released = append(tr.released, c)
}

// realtimeEventKey is the key a change of the benchmark would have for
// this event, or "" for an event no change of its kinds shows.
func realtimeEventKey(subject string, data []byte) string {
	switch {
	case strings.HasSuffix(subject, ".grant.added"):
		ev := &eventsv1.GrantAdded{}
		if proto.Unmarshal(data, ev) != nil || ev.GetAttributesChanged() {
			return ""
		}
		return "added " + ev.GetGrant().GetKey()
	case strings.HasSuffix(subject, ".grant.removed"):
		ev := &eventsv1.GrantRemoved{}
		if proto.Unmarshal(data, ev) != nil {
			return ""
		}
		return "removed " + ev.GetGrant().GetKey()
	case strings.HasSuffix(subject, ".resource.user.upserted"):
		ev := &eventsv1.ResourceUpserted{}
		if proto.Unmarshal(data, ev) != nil {
			return ""
		}
		return "user " + ev.GetId() + " " + strings.TrimPrefix(ev.GetResource().GetUser().GetStatus().String(), "STATUS_")
	}
	return ""
}

// changeContextOf returns the change context of an access event; nil for
// another payload.
func changeContextOf(subject string, data []byte) *eventsv1.ChangeContext {
	var ev interface {
		proto.Message
		GetContext() *eventsv1.ChangeContext
	}
	switch {
	case strings.HasSuffix(subject, ".grant.added"):
		ev = &eventsv1.GrantAdded{}
	case strings.HasSuffix(subject, ".grant.removed"):
		ev = &eventsv1.GrantRemoved{}
	case strings.HasSuffix(subject, ".upserted"):
		ev = &eventsv1.ResourceUpserted{}
	case strings.HasSuffix(subject, ".deleted"):
		ev = &eventsv1.ResourceDeleted{}
	default:
		return nil
	}
	if proto.Unmarshal(data, ev) != nil {
		return nil
	}
	return ev.GetContext()
}

// realtimeState is what the benchmark's changes made of the org so far.
type realtimeState struct {
	members  [][2]string // group, user pairs added and seen: removable
	assigned [][2]string // app, user pairs assigned and seen: unassignable
}

// measureRealtime makes o.changes changes at o.rate and matches their events.
func measureRealtime(ctx context.Context, o benchRealtimeOptions, path string, sim *oktasim.Running, js jetstream.JetStream, plan *realtimePlan) (realtimeResult, error) {
	tr := &rtTracker{byKey: map[string]*rtChange{}, busy: map[string]bool{}}
	// Follow the access events from now on, before the first change.
	access, err := js.OrderedConsumer(ctx, subjects.StreamAccess, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"access." + demoConnector + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return realtimeResult{}, fmt.Errorf("follow the demo's access events: %w", err)
	}
	accessIt, err := access.Messages()
	if err != nil {
		return realtimeResult{}, fmt.Errorf("follow the demo's access events: %w", err)
	}
	defer accessIt.Stop()
	var targetedMu sync.Mutex
	targeted := map[string]bool{}
	go func() {
		for {
			msg, err := accessIt.Next()
			if err != nil {
				return // stopped
			}
			tr.observe(msg.Subject(), msg.Data(), time.Now())
			if cc := changeContextOf(msg.Subject(), msg.Data()); cc.GetCause() == eventsv1.ChangeCause_CHANGE_CAUSE_TARGETED_SYNC {
				targetedMu.Lock()
				targeted[cc.GetRunId()] = true
				targetedMu.Unlock()
			}
		}
	}()
	var runsMu sync.Mutex
	var runDurations []time.Duration
	runs, err := js.OrderedConsumer(ctx, subjects.StreamSync, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sync." + demoConnector + ".run.completed"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return realtimeResult{}, fmt.Errorf("follow the demo's sync runs: %w", err)
	}
	runsIt, err := runs.Messages()
	if err != nil {
		return realtimeResult{}, fmt.Errorf("follow the demo's sync runs: %w", err)
	}
	defer runsIt.Stop()
	go func() {
		for {
			msg, err := runsIt.Next()
			if err != nil {
				return
			}
			ev := &eventsv1.SyncRunCompleted{}
			if proto.Unmarshal(msg.Data(), ev) == nil {
				runsMu.Lock()
				runDurations = append(runDurations, ev.GetDuration().AsDuration())
				runsMu.Unlock()
			}
		}
	}()

	before := sim.Server.Counts()
	hooksBefore := sim.Server.HookStats()
	st := &realtimeState{}
	byKind := map[string]int{}
	interval := time.Duration(float64(time.Second) / o.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	made := 0
	for made < o.changes {
		select {
		case <-ctx.Done():
			return realtimeResult{}, ctx.Err()
		case <-tick.C:
		}
		c, err := makeRealtimeChange(plan, st, tr, made)
		if err != nil {
			return realtimeResult{}, err
		}
		if c == nil {
			continue // nothing free to change right now: wait for events
		}
		made++
		byKind[c.kind]++
	}
	madeIn := time.Since(start)
	lastChange := time.Now()

	// Wait for every change's event, or until the last one is overdue.
	// Then linger a moment for duplicates.
	wait := time.NewTicker(50 * time.Millisecond)
	defer wait.Stop()
	for {
		tr.mu.Lock()
		pending := len(tr.busy)
		tr.mu.Unlock()
		if pending == 0 || time.Since(lastChange) > o.missAfter {
			break
		}
		select {
		case <-ctx.Done():
			return realtimeResult{}, ctx.Err()
		case <-wait.C:
		}
	}
	linger := time.NewTimer(2 * time.Second)
	select {
	case <-ctx.Done():
		linger.Stop()
		return realtimeResult{}, ctx.Err()
	case <-linger.C:
	}
	after := sim.Server.Counts()
	hooksAfter := sim.Server.HookStats()

	r := realtimeResult{
		Path: path, Profile: o.profile, Changes: made, ChangesByKind: byKind, Rate: o.rate,
		AchievedRate:  float64(made) / madeIn.Seconds(),
		APICalls:      sumCounts(after.Requests) - sumCounts(before.Requests),
		HTTP429:       sumCounts(after.Limited) - sumCounts(before.Limited),
		CallsByBucket: map[string]int64{}, TimeScale: o.timeScale,
		WallSeconds:    time.Since(start).Seconds(),
		HookDeliveries: hooksAfter.Delivered - hooksBefore.Delivered,
	}
	for b, n := range after.Requests {
		if d := n - before.Requests[b]; d > 0 {
			r.CallsByBucket[b] = d
		}
	}
	if path == pathSystemLog {
		r.LogPollMS = o.logPoll.Milliseconds()
	}
	tr.mu.Lock()
	r.AccessEventsAll = tr.events
	var lat []float64
	for _, c := range tr.all {
		r.Duplicates += c.dups
		d := c.seen.Sub(c.at)
		if !c.matched || d > o.missAfter {
			r.Missed++
			continue
		}
		r.EventsMatched++
		lat = append(lat, float64(d.Microseconds())/1000)
	}
	tr.mu.Unlock()
	slices.Sort(lat)
	r.P50MS, r.P90MS, r.P99MS = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if len(lat) > 0 {
		r.MaxMS = lat[len(lat)-1]
	}
	targetedMu.Lock()
	r.TargetedRuns = len(targeted)
	targetedMu.Unlock()
	runsMu.Lock()
	r.SyncRuns = len(runDurations)
	var total time.Duration
	for _, d := range runDurations {
		total += d
		r.SyncRunMaxMS = max(r.SyncRunMaxMS, float64(d.Milliseconds()))
	}
	if len(runDurations) > 0 {
		r.SyncRunMeanMS = float64(total.Milliseconds()) / float64(len(runDurations))
	}
	runsMu.Unlock()
	return r, nil
}

// makeRealtimeChange makes change number i on the org: the kinds in turn,
// skipping a kind with nothing free to change. It returns nil when no kind
// can change anything now.
func makeRealtimeChange(p *realtimePlan, st *realtimeState, tr *rtTracker, i int) (*rtChange, error) {
	tr.mu.Lock()
	// Seen changes free their entity for the opposite change.
	for _, c := range tr.released {
		switch c.kind {
		case kindMemberAdd:
			st.members = append(st.members, splitPair(c.entity))
		case kindAppAssign:
			st.assigned = append(st.assigned, splitPair(c.entity))
		}
	}
	tr.released = tr.released[:0]
	tr.mu.Unlock()
	for k := range realtimeKinds {
		kind := realtimeKinds[(i+k)%len(realtimeKinds)]
		c, err := tryRealtimeChange(p, st, tr, kind)
		if err != nil || c != nil {
			return c, err
		}
	}
	return nil, nil
}

func splitPair(s string) [2]string {
	a, b, _ := strings.Cut(s, "/")
	return [2]string{a, b}
}

// tryRealtimeChange makes one change of kind, or returns nil when it finds
// nothing free to change.
func tryRealtimeChange(p *realtimePlan, st *realtimeState, tr *rtTracker, kind string) (*rtChange, error) {
	record := func(key, entity string, at time.Time) *rtChange {
		c := &rtChange{kind: kind, key: key, entity: entity, at: at}
		tr.mu.Lock()
		tr.byKey[key] = c
		tr.busy[entity] = true
		tr.all = append(tr.all, c)
		tr.mu.Unlock()
		return c
	}
	isBusy := func(entity string) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.busy[entity]
	}
	// Record before the change so that an event arriving at once is matched;
	// a change that turns out to change nothing is taken back.
	unrecord := func(c *rtChange) {
		tr.mu.Lock()
		delete(tr.byKey, c.key)
		delete(tr.busy, c.entity)
		tr.all = tr.all[:len(tr.all)-1]
		tr.mu.Unlock()
	}
	switch kind {
	case kindMemberAdd, kindAppAssign:
		targets, users := p.groups, p.memberUsers
		prefix := "group_membership/%s/%s"
		if kind == kindAppAssign {
			targets, users, prefix = p.apps, p.appUsers, "app_assignment/%s/user/%s"
		}
		for range 20 {
			t, u := targets[p.rng.IntN(len(targets))], users[p.rng.IntN(len(users))]
			entity := t + "/" + u
			if isBusy(entity) {
				continue
			}
			c := record("added "+fmt.Sprintf(prefix, t, u), entity, time.Now())
			var changed bool
			var err error
			if kind == kindMemberAdd {
				changed, err = p.org.AddMember(p.actor, t, u)
			} else {
				changed, err = p.org.AssignUserToApp(p.actor, t, u, nil)
			}
			if err != nil || !changed {
				unrecord(c)
				if err != nil && !errors.Is(err, oktasim.ErrNotWritable) {
					return nil, fmt.Errorf("%s %s: %w", kind, entity, err)
				}
				continue
			}
			return c, nil
		}
		return nil, nil
	case kindMemberRemove, kindAppUnassign:
		list := &st.members
		prefix := "group_membership/%s/%s"
		if kind == kindAppUnassign {
			list, prefix = &st.assigned, "app_assignment/%s/user/%s"
		}
		if len(*list) == 0 {
			return nil, nil
		}
		j := p.rng.IntN(len(*list))
		pair := (*list)[j]
		*list = slices.Delete(*list, j, j+1)
		entity := pair[0] + "/" + pair[1]
		c := record("removed "+fmt.Sprintf(prefix, pair[0], pair[1]), entity, time.Now())
		var changed bool
		var err error
		if kind == kindMemberRemove {
			changed, err = p.org.RemoveMember(p.actor, pair[0], pair[1])
		} else {
			changed, err = p.org.UnassignUserFromApp(p.actor, pair[0], pair[1])
		}
		if err != nil || !changed {
			unrecord(c)
			return nil, fmt.Errorf("%s %s: changed %t: %w", kind, entity, changed, err)
		}
		return c, nil
	default: // suspend, unsuspend
		from, to := "ACTIVE", "SUSPENDED"
		if kind == kindUnsuspend {
			from, to = "SUSPENDED", "ACTIVE"
		}
		var free []string
		for u, s := range p.statusUsers {
			if s == from && !isBusy(u) {
				free = append(free, u)
			}
		}
		if len(free) == 0 {
			return nil, nil
		}
		slices.Sort(free) // map order is random; the seed decides
		u := free[p.rng.IntN(len(free))]
		c := record("user "+u+" "+to, u, time.Now())
		if err := p.org.SetUserStatus(p.actor, u, to); err != nil {
			unrecord(c)
			return nil, fmt.Errorf("%s %s: %w", kind, u, err)
		}
		p.statusUsers[u] = to
		return c, nil
	}
}

// percentile is the nearest-rank p-th percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
