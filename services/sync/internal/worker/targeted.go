package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
)

// Targeted requests. A targeted run is short (a few calls), and hook
// deliveries bring them several a second, so a worker merges the targeted
// requests of one connector that arrive while one of its targeted runs is
// in progress: the next run reads all their targets at once, and each
// request is answered with that run's outcome. A targeted run holds the
// connector's lease like any run; while a full sync holds it, targeted
// requests are handed back and tried again after Config.TargetedRetry.
// Targeted runs are not recorded in the run history (they would push the
// full syncs out of it); their changes carry cause TARGETED_SYNC and the
// run's id, and the service log has a line for each.

// targetBatch collects one connector's targeted requests.
type targetBatch struct {
	mu      sync.Mutex
	running bool
	reqs    []*eventsv1.SyncRequest
	waiters []chan error
}

// RunTargeted carries out a TARGETED request, merged with the connector's
// other targeted requests waiting in this worker. It returns
// lease.ErrHeld while another run holds the connector, and the read's error
// when a target could not be read; a request that needs a full sync runs
// one (recorded as any run) and returns nil.
func (w *Worker) RunTargeted(ctx context.Context, req *eventsv1.SyncRequest) error {
	cid := req.GetConnectorId()
	if err := subjects.ValidateConnectorID(cid); err != nil {
		return bus.Permanent(fmt.Errorf("sync request %s: %w", req.GetRequestId(), err))
	}
	w.mu.Lock()
	b := w.batches[cid]
	if b == nil {
		b = &targetBatch{}
		w.batches[cid] = b
	}
	w.mu.Unlock()
	done := make(chan error, 1)
	b.mu.Lock()
	b.reqs = append(b.reqs, req)
	b.waiters = append(b.waiters, done)
	if b.running {
		b.mu.Unlock()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.running = true
	b.mu.Unlock()
	// This request leads: it runs batches until none is left.
	for {
		b.mu.Lock()
		reqs, waiters := b.reqs, b.waiters
		b.reqs, b.waiters = nil, nil
		if len(reqs) == 0 {
			b.running = false
			b.mu.Unlock()
			break
		}
		b.mu.Unlock()
		err := w.runTargetedBatch(ctx, cid, reqs)
		for _, ch := range waiters {
			ch <- err
		}
	}
	return <-done
}

func (w *Worker) runTargetedBatch(ctx context.Context, cid string, reqs []*eventsv1.SyncRequest) error {
	conn, err := w.d.Connectors.Get(ctx, cid)
	if err != nil {
		return fmt.Errorf("targeted sync of %s: %w", cid, err)
	}
	hctx, l, err := w.d.Leases.Acquire(ctx, LeaseName(cid), w.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	var targets []*eventsv1.SyncTarget
	for _, r := range reqs {
		targets = append(targets, r.GetTargets()...)
	}
	started := time.Now()
	full := func(why string) error {
		w.log.Info("targeted requests run as a full sync", "connector", cid, "requests", len(reqs), "why", why)
		_, err := w.run(hctx, conn, &eventsv1.SyncRequest{
			RequestId: reqs[0].GetRequestId(), ConnectorId: cid, Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
			RequestedBy: reqs[0].GetRequestedBy(), Reason: "targeted resync: " + why, RequestedAt: timestamppb.New(started),
		})
		if err != nil && hctx.Err() != nil {
			return err
		}
		return nil // a failed full run is recorded and published; the schedule tries again
	}
	client, budget, f := w.client(hctx, conn)
	if f != nil {
		// No token, a bad domain: the full run records and reports it.
		return full(f.Message)
	}
	rep, err := fullsync.RunTargeted(hctx, fullsync.Deps{Okta: client, Bus: w.d.Bus, State: w.d.State, Budget: budget, Log: w.log},
		fullsync.Connector{ID: cid, Options: options(conn.GetOptions(), w.cfg), RequestID: reqs[0].GetRequestId()}, targets)
	switch {
	case errors.Is(err, fullsync.ErrNeedFull):
		return full(err.Error())
	case err != nil:
		if errors.Is(err, okta.ErrInvalidCredentials) {
			return full("Okta rejected the API token")
		}
		w.log.Warn("targeted sync failed; its requests are tried again", "connector", cid, "requests", len(reqs), "targets", len(targets), "err", err)
		return err
	}
	w.log.Info("targeted sync", "connector", cid, "run", rep.RunID, "requests", len(reqs), "targets", len(targets),
		"events", rep.Published, "api_calls", sum(rep.APICalls), "duration", slog.DurationValue(time.Since(started)))
	return nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
