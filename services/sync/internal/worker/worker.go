// Package worker runs sync runs: it takes SyncRequests from the
// sync.<connector>.request work queue, holds the connector's lease while a
// run reads and publishes, records the run (counts, outcome, log), and
// publishes scheduled requests for connectors whose interval has passed.
//
// One run per connector at a time, across replicas: a worker that finds the
// connector's lease held hands the request back with a delay, so it runs
// after the current run instead of beside it. A worker that dies stops
// renewing its lease; after the lease's TTL another worker takes the
// redelivered request, and the full sync's journal finishes what the dead
// one left half done.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
	"github.com/accessbus/accessbus/services/sync/internal/runs"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Durable is the work queue consumer's name.
const Durable = "sync-worker"

// Config tunes the worker.
type Config struct {
	// Concurrency is how many connectors sync at once in this replica; default 4.
	Concurrency int
	// LeaseTTL is how long a dead worker's lease blocks its connector; default 30 s.
	LeaseTTL time.Duration
	// BusyRetry is the delay before a request whose connector is syncing
	// elsewhere is tried again; default 10 s.
	BusyRetry time.Duration
	// TargetedRetry is the delay before a targeted request is tried again,
	// when its connector is busy or a read failed; default 1 s.
	TargetedRetry time.Duration
	// ScheduleEvery is how often the scheduler looks for due connectors;
	// default 1 minute; negative turns the scheduler off.
	ScheduleEvery time.Duration
	// DefaultInterval is the time between scheduled full syncs of a
	// connector whose options set none; default 1 hour.
	DefaultInterval time.Duration
	// DefaultShare is the rate-limit share of a connector whose options set
	// none; default 0.5.
	DefaultShare float64
	// DefaultRemovalThreshold is the removal guard of a connector whose
	// options set none; default 0.2.
	DefaultRemovalThreshold float64
	// HTTPClient carries every run's Okta calls, so connections are reused
	// across runs; nil means libs/okta's tuned default per run.
	HTTPClient *http.Client
	// LookupHost resolves an org's host before a run, so that a domain that
	// does not exist fails as BAD_DOMAIN; nil means net.DefaultResolver.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// TimeScale is handed to the rate budget (a time-scaled simulator in
	// benchmarks); default 1.
	TimeScale float64
	// StopGrace is how long Stop lets the runs in progress go on before it
	// cuts them short; default 2 s. A run cut short loses nothing: it is
	// recorded as failed, its request is handed back, and the next run
	// resumes from its journal. A full sync of a large org takes minutes,
	// which no shutdown should wait for.
	StopGrace time.Duration
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.BusyRetry <= 0 {
		c.BusyRetry = 10 * time.Second
	}
	if c.TargetedRetry <= 0 {
		c.TargetedRetry = time.Second
	}
	if c.ScheduleEvery == 0 {
		c.ScheduleEvery = time.Minute
	}
	if c.DefaultInterval <= 0 {
		c.DefaultInterval = time.Hour
	}
	if c.DefaultShare <= 0 || c.DefaultShare > 1 {
		c.DefaultShare = 0.5
	}
	if c.DefaultRemovalThreshold <= 0 || c.DefaultRemovalThreshold > 1 {
		c.DefaultRemovalThreshold = 0.2
	}
	if c.LookupHost == nil {
		c.LookupHost = net.DefaultResolver.LookupHost
	}
	if c.TimeScale <= 0 {
		c.TimeScale = 1
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 2 * time.Second
	}
}

// Deps are the worker's stores and connections.
type Deps struct {
	Bus        *bus.Bus
	Connectors *connectors.Store
	State      *state.Store
	Runs       *runs.Store
	Leases     *lease.Manager
	// RateStore holds the shared rate budget (Redis or memory).
	RateStore ratelimit.Store
	Log       *slog.Logger
}

// Worker runs sync requests.
type Worker struct {
	d   Deps
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	budgets  map[string]*budgetFor
	batches  map[string]*targetBatch
	sub      *bus.Subscription
	stopped  chan struct{}
	stopSchd context.CancelFunc
}

type budgetFor struct {
	share float64
	b     *ratelimit.Budget
}

// New returns a worker; Start starts it.
func New(d Deps, cfg Config) (*Worker, error) {
	if d.Bus == nil || d.Connectors == nil || d.State == nil || d.Runs == nil || d.Leases == nil || d.RateStore == nil {
		return nil, errors.New("sync worker: Bus, Connectors, State, Runs, Leases and RateStore are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	return &Worker{d: d, cfg: cfg, log: d.Log, budgets: map[string]*budgetFor{}, batches: map[string]*targetBatch{}}, nil
}

// LeaseName is the lease a connector's runs hold.
func LeaseName(connector string) string { return "sync:" + connector }

// Start starts consuming sync requests and, unless turned off, the
// scheduler. Stop ends both.
func (w *Worker) Start(ctx context.Context) error {
	sub, err := bus.Consume(ctx, w.d.Bus, bus.ConsumerSpec{
		Stream:      subjects.StreamSync,
		Durable:     Durable,
		Filter:      []string{"sync.*." + subjects.EntityRequest},
		AckWait:     time.Minute,
		Concurrency: w.cfg.Concurrency,
		Prefetch:    w.cfg.Concurrency,
		// Busy connectors hand requests back many times before their turn;
		// real failures are recorded as failed runs and acked, not retried.
		MaxDeliver: 1000,
		RetryBase:  w.cfg.BusyRetry,
		RetryMax:   w.cfg.BusyRetry,
	}, w.handle)
	if err != nil {
		return fmt.Errorf("start sync request consumer: %w", err)
	}
	w.sub = sub
	w.stopped = make(chan struct{})
	if w.cfg.ScheduleEvery > 0 {
		sctx, cancel := context.WithCancel(ctx)
		w.stopSchd = cancel
		go w.scheduleLoop(sctx)
	} else {
		close(w.stopped)
	}
	return nil
}

// Stop stops taking requests and waits for the runs in progress, for
// Config.StopGrace at most (less when ctx ends first): then it cuts them
// short (each ends when its context does, recorded as failed and handed
// back, to resume from its journal). Cutting runs short after the grace is
// not an error; ctx ending first is.
func (w *Worker) Stop(ctx context.Context) error {
	if w.sub == nil {
		return nil
	}
	if w.stopSchd != nil {
		w.stopSchd()
	}
	gctx, cancel := context.WithTimeout(ctx, w.cfg.StopGrace)
	defer cancel()
	err := w.sub.Stop(gctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		w.log.Info("sync worker stopped: runs in progress were cut short after the grace period; their requests were handed back and resume from their journal",
			"grace", w.cfg.StopGrace)
		err = nil
	}
	select {
	case <-w.stopped:
	case <-ctx.Done():
	}
	return err
}

func (w *Worker) handle(ctx context.Context, m *bus.Message[*eventsv1.SyncRequest]) error {
	req := m.Payload
	p, err := subjects.Parse(m.Subject)
	if err != nil || p.Connector == "" {
		return bus.Permanentf("sync request on %q: not a sync.<connector>.request subject", m.Subject)
	}
	if req.GetConnectorId() != "" && req.GetConnectorId() != p.Connector {
		return bus.Permanentf("sync request %s names connector %q on the subject of %q: publish it on sync.%s.request",
			req.GetRequestId(), req.GetConnectorId(), p.Connector, req.GetConnectorId())
	}
	req.ConnectorId = p.Connector
	if req.GetMode() == eventsv1.SyncMode_SYNC_MODE_TARGETED {
		err := w.RunTargeted(ctx, req)
		switch {
		case errors.Is(err, connectors.ErrNotFound):
			return bus.Permanent(err)
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// Busy connector, or a read that failed: the targets are read
			// again soon, never taken as read.
			return bus.RetryAfter(err, w.cfg.TargetedRetry)
		}
		return nil
	}
	_, err = w.Run(ctx, req)
	switch {
	case errors.Is(err, lease.ErrHeld):
		return err // retried after BusyRetry
	case errors.Is(err, connectors.ErrNotFound):
		return bus.Permanent(err)
	case errors.Is(err, errNotDue):
		return nil
	case err != nil && ctx.Err() != nil:
		return ctx.Err() // shutdown: handed back at once
	}
	// A failed run is recorded and published; the schedule tries again.
	return nil
}

// errNotDue marks a scheduled request whose slot another run already covered.
var errNotDue = errors.New("scheduled sync not due")

// Run carries out one request under the connector's lease and returns the
// run's record. It returns lease.ErrHeld, without running, while another
// worker syncs the connector.
func (w *Worker) Run(ctx context.Context, req *eventsv1.SyncRequest) (*syncv1.Run, error) {
	cid := req.GetConnectorId()
	if err := subjects.ValidateConnectorID(cid); err != nil {
		return nil, bus.Permanent(fmt.Errorf("sync request %s: %w", req.GetRequestId(), err))
	}
	conn, err := w.d.Connectors.Get(ctx, cid)
	if err != nil {
		return nil, fmt.Errorf("sync request %s: %w", req.GetRequestId(), err)
	}
	hctx, l, err := w.d.Leases.Acquire(ctx, LeaseName(cid), w.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	if req.GetRequestedBy() == scheduler {
		// Another replica's scheduler may have asked for the same slot, or
		// a manual run may have covered it.
		if due, _ := w.due(hctx, conn, time.Now()); !due {
			return nil, errNotDue
		}
	}
	return w.run(hctx, conn, req)
}

func (w *Worker) run(ctx context.Context, conn *eventsv1.Connector, req *eventsv1.SyncRequest) (*syncv1.Run, error) {
	started := time.Now()
	runLog := runs.NewLog(w.log.Handler())
	rec := &syncv1.Run{
		RunId: runs.NewID(started), ConnectorId: conn.GetId(), Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
		State: syncv1.RunState_RUN_STATE_RUNNING, RequestId: req.GetRequestId(), RequestedBy: req.GetRequestedBy(),
		Reason: req.GetReason(), StartedAt: timestamppb.New(started), ConfirmRemovals: req.GetConfirmRemovals(),
		SecretVersion: conn.GetSecretVersion(),
	}
	// The full sync names the connector and run in its own lines.
	base := slog.New(runLog)
	log := base.With("connector", conn.GetId(), "run", rec.RunId)
	log.Info("sync run started", "request", req.GetRequestId(), "requested_by", req.GetRequestedBy(), "reason", req.GetReason())
	if err := w.d.Runs.Put(ctx, rec); err != nil {
		return nil, err
	}
	finish := func(err error) (*syncv1.Run, error) {
		rec.FinishedAt = timestamppb.Now()
		rec.Duration = durationpb.New(rec.FinishedAt.AsTime().Sub(started))
		rec.Log = runLog.Lines()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if perr := w.d.Runs.Put(pctx, rec); perr != nil {
			w.log.Error("record sync run", "connector", conn.GetId(), "run", rec.RunId, "err", perr)
		}
		return rec, err
	}

	client, budget, f := w.client(ctx, conn)
	if f != nil {
		rec.State, rec.FailureReason, rec.Message = syncv1.RunState_RUN_STATE_FAILED, f.Reason, f.Message
		log.Warn("sync run failed before reading Okta", "reason", f.Reason.String(), "error", f.Message)
		if err := fullsync.PublishFailed(ctx, w.d.Bus, fullsync.Connector{ID: conn.GetId(), RunID: rec.RunId, RequestID: rec.RequestId},
			started, time.Now(), f); err != nil {
			log.Error("publish run failed", "err", err)
		}
		return finish(f)
	}
	opts := options(conn.GetOptions(), w.cfg)
	rep, err := fullsync.Run(ctx, fullsync.Deps{Okta: client, Bus: w.d.Bus, State: w.d.State, Budget: budget, Log: base},
		fullsync.Connector{ID: conn.GetId(), Options: opts, RunID: rec.RunId, RequestID: req.GetRequestId(), ConfirmRemovals: req.GetConfirmRemovals()})
	fill(rec, rep)
	var fail *fullsync.Failure
	switch {
	case errors.As(err, &fail):
		rec.State, rec.FailureReason, rec.Message = syncv1.RunState_RUN_STATE_FAILED, fail.Reason, fail.Message
	case err != nil:
		rec.State, rec.FailureReason, rec.Message = syncv1.RunState_RUN_STATE_FAILED, eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INTERNAL, err.Error()
	default:
		rec.State = syncv1.RunState_RUN_STATE_COMPLETED
		log.Info("sync run completed", "events", rep.Published, "unchanged_groups", rep.Unchanged, "skipped_parts", len(rep.Skipped), "http_429", rep.HTTP429)
	}
	return finish(err)
}

// OktaClient returns the connector's Okta client, on the connector's rate
// budget (shared with its sync runs), for calls outside a run such as
// registering its event hook.
func (w *Worker) OktaClient(ctx context.Context, conn *eventsv1.Connector) (*okta.Client, error) {
	c, _, f := w.client(ctx, conn)
	if f != nil {
		return nil, f
	}
	return c, nil
}

// client builds the connector's Okta client, or the failure that stops the
// run before any call: no token, a domain that cannot be an Okta org.
func (w *Worker) client(ctx context.Context, conn *eventsv1.Connector) (*okta.Client, *ratelimit.Budget, *fullsync.Failure) {
	orgURL, err := connectors.OrgURLFor(conn.GetId(), conn.GetOktaDomain())
	if err != nil {
		return nil, nil, &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN,
			Message: "the connector's Okta domain cannot be used: " + err.Error(), Err: err}
	}
	if f := resolvable(ctx, w.cfg.LookupHost, orgURL); f != nil {
		return nil, nil, f
	}
	token, _, err := w.d.Connectors.Token(ctx, conn.GetId())
	if errors.Is(err, connectors.ErrNoToken) {
		return nil, nil, &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN,
			Message: "the connector has no API token: set one with `accessbus connectors set-settings " + conn.GetId() + " --token-stdin`", Err: err}
	}
	if err != nil {
		return nil, nil, &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INTERNAL,
			Message: "the connector's API token could not be read: " + err.Error(), Err: err}
	}
	budget, err := w.budget(conn)
	if err != nil {
		return nil, nil, &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INTERNAL, Message: err.Error(), Err: err}
	}
	client, err := okta.New(ctx, okta.Config{OrgURL: orgURL, Token: token, Budget: budget, HTTPClient: w.cfg.HTTPClient})
	if err != nil {
		return nil, nil, &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN,
			Message: "the connector's Okta domain cannot be used: " + err.Error(), Err: err}
	}
	return client, budget, nil
}

// resolvable turns a host name that does not exist into BAD_DOMAIN, which a
// person fixes, instead of OKTA_UNAVAILABLE, which time fixes.
func resolvable(ctx context.Context, lookup func(context.Context, string) ([]string, error), orgURL string) *fullsync.Failure {
	u, err := url.Parse(orgURL)
	if err != nil {
		return &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN, Message: "the connector's Okta domain cannot be used: " + err.Error(), Err: err}
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = lookup(lctx, host)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return &fullsync.Failure{Reason: eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_BAD_DOMAIN,
			Message: fmt.Sprintf("the Okta domain %s does not exist: check the connector's domain (for example acme.okta.com)", host), Err: err}
	}
	return nil // other lookup failures show up as Okta being unreachable
}

// budget returns the connector's rate budget: its own counters, the shared
// store's per-org state, its own share.
func (w *Worker) budget(conn *eventsv1.Connector) (*ratelimit.Budget, error) {
	share := conn.GetOptions().GetRateLimitShare()
	if share <= 0 || share > 1 {
		share = w.cfg.DefaultShare
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.budgets[conn.GetId()]; ok && b.share == share {
		return b.b, nil
	}
	b, err := ratelimit.New(w.d.RateStore, ratelimit.Options{Share: share, TimeScale: w.cfg.TimeScale, Logger: w.log})
	if err != nil {
		return nil, fmt.Errorf("rate budget of %s: %w", conn.GetId(), err)
	}
	w.budgets[conn.GetId()] = &budgetFor{share: share, b: b}
	return b, nil
}

// options maps a connector's stored options onto the full sync's.
func options(o *eventsv1.ConnectorOptions, cfg Config) fullsync.Options {
	th := o.GetRemovalThreshold()
	if th <= 0 || th > 1 {
		th = cfg.DefaultRemovalThreshold
	}
	return fullsync.Options{
		SyncInactiveApps: o.GetSyncInactiveApps(),
		SkipAppGroups:    o.GetSkipAppGroups(),
		UserDomains:      o.GetUserDomains(),
		SyncCustomRoles:  o.GetSyncCustomRoles(),
		RemovalThreshold: th,
	}
}

// fill copies a full sync's report into the run record.
func fill(rec *syncv1.Run, rep fullsync.Report) {
	rec.Resources, rec.Grants = rep.KindCounts()
	rec.ApiCalls, rec.Http_429, rec.Skipped = rep.APICalls, rep.HTTP429, rep.Skipped
	rec.RemovalsHeld, rec.RemovalsHeldCount = rep.RemovalsHeld, rep.RemovalsHeldCount
	rec.EventsPublished, rec.LastAccessSequence = rep.Published, rep.LastAccessSequence
}
