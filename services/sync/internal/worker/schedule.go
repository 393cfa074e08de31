package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/runs"
)

// scheduler is the requested_by of scheduled requests.
const scheduler = "scheduler"

// scheduleLoop schedules every ScheduleEvery, and at once when a connector
// record changes (a new connector, a new token), so that a connector syncs
// as soon as it can instead of at the next tick.
func (w *Worker) scheduleLoop(ctx context.Context) {
	defer close(w.stopped)
	t := time.NewTicker(w.cfg.ScheduleEvery)
	defer t.Stop()
	changed := w.watchConnectors(ctx)
	for {
		if err := w.Schedule(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("schedule sync runs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// watchConnectors signals (coalesced) every change of a connector record;
// without a watch the ticker alone schedules.
func (w *Worker) watchConnectors(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	kv, err := w.d.Bus.JetStream().KeyValue(ctx, connectors.BucketConnectors)
	if err != nil {
		w.log.Warn("watch connector records; scheduling on the timer only", "err", err)
		return out
	}
	watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		w.log.Warn("watch connector records; scheduling on the timer only", "err", err)
		return out
	}
	go func() {
		defer func() { _ = watcher.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-watcher.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// Schedule publishes a full SyncRequest for every connector that has a token
// and is due: never synced, synced with an older token, or last run started
// an interval ago. The request id names the interval slot, so replicas that
// schedule the same slot publish one message (the stream drops the copies
// within its dedupe window; the worker's due check drops later ones).
func (w *Worker) Schedule(ctx context.Context) error {
	conns, err := w.d.Connectors.List(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var errs []error
	for _, c := range conns {
		if !c.GetTokenSet() {
			continue
		}
		due, err := w.due(ctx, c, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !due {
			continue
		}
		interval := w.interval(c)
		id := "schedule-" + strconv.FormatInt(now.Truncate(interval).Unix(), 10) + "-v" + strconv.FormatInt(c.GetSecretVersion(), 10)
		if _, err := Request(ctx, w.d.Bus, &eventsv1.SyncRequest{
			RequestId: id, ConnectorId: c.GetId(), Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
			RequestedBy: scheduler, Reason: "scheduled full sync", RequestedAt: timestamppb.New(now),
		}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Worker) interval(c *eventsv1.Connector) time.Duration {
	if d := c.GetOptions().GetSyncInterval().AsDuration(); d > 0 {
		return d
	}
	return w.cfg.DefaultInterval
}

// due says whether connector c should sync now.
func (w *Worker) due(ctx context.Context, c *eventsv1.Connector, now time.Time) (bool, error) {
	last, err := w.d.Runs.Get(ctx, c.GetId(), "")
	if errors.Is(err, runs.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if last.GetSecretVersion() != c.GetSecretVersion() {
		return true, nil
	}
	if last.GetState() == syncv1.RunState_RUN_STATE_RUNNING {
		// A record left RUNNING by a worker that died: due once its lease is gone.
		held, err := w.d.Leases.Held(ctx, LeaseName(c.GetId()))
		return err == nil && !held, err
	}
	return now.Sub(last.GetStartedAt().AsTime()) >= w.interval(c), nil
}

// Request publishes a SyncRequest on sync.<connector>.request with its
// deterministic message id (from the request id, which it sets when empty)
// and returns the request id.
func Request(ctx context.Context, b *bus.Bus, req *eventsv1.SyncRequest) (string, error) {
	subj, err := subjects.SyncRequest(req.GetConnectorId())
	if err != nil {
		return "", fmt.Errorf("sync request: %w", err)
	}
	if req.GetRequestId() == "" {
		req.RequestId = "req-" + runs.NewID(time.Now())
	}
	if req.GetMode() == eventsv1.SyncMode_SYNC_MODE_UNSPECIFIED {
		req.Mode = eventsv1.SyncMode_SYNC_MODE_FULL
	}
	if req.GetRequestedAt() == nil {
		req.RequestedAt = timestamppb.Now()
	}
	id := subjects.MsgID(subjects.DomainSync, req.GetConnectorId(), subjects.EntityRequest, req.GetRequestId())
	if _, err := b.Publish(ctx, subj, id, req); err != nil {
		return "", fmt.Errorf("publish sync request %s for %s: %w", req.GetRequestId(), req.GetConnectorId(), err)
	}
	return req.GetRequestId(), nil
}
