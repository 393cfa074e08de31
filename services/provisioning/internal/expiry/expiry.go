// Package expiry ends time-bound grants. The Scheduler, on exactly one
// replica at a time (it holds a lease), publishes the expiring warning of
// each grant at its warn_at and, at its expires_at, a REVOKE request on the
// provisioning work queue, which the executor carries out like any other
// (so the revoke is exactly once, retried and reported). The Follower ends
// the timer of a grant removed in Okta before it expired, from the grant
// removals the sync publishes on ACCESS.
package expiry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	provv1 "github.com/accessbus/accessbus/libs/gen/accessbus/provisioning/v1"
	"github.com/accessbus/accessbus/libs/lease"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
	"github.com/accessbus/accessbus/services/provisioning/internal/request"
)

// LeaseName is the lease the scheduling replica holds.
const LeaseName = "provisioning:expiry"

// Scheduler warns about and revokes time-bound grants when they are due.
type Scheduler struct {
	Bus    *bus.Bus
	Ledger *ledger.Store
	Leases *lease.Manager
	Log    *slog.Logger
	// Every is how often due grants are looked for; default 1 s.
	Every time.Duration
	// LeaseTTL bounds how long a dead replica keeps the others from
	// scheduling; default 15 s.
	LeaseTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (s *Scheduler) defaults() {
	if s.Every <= 0 {
		s.Every = time.Second
	}
	if s.LeaseTTL <= 0 {
		s.LeaseTTL = 15 * time.Second
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
}

// Run schedules until ctx ends: it waits for the lease, then looks for due
// grants every Every while it holds it.
func (s *Scheduler) Run(ctx context.Context) {
	s.defaults()
	for ctx.Err() == nil {
		lctx, l, err := s.Leases.Acquire(ctx, LeaseName, s.LeaseTTL)
		if err != nil {
			if !errors.Is(err, lease.ErrHeld) && ctx.Err() == nil {
				s.Log.Warn("expiry scheduler: lease", "err", err)
			}
			sleep(ctx, s.Every)
			continue
		}
		s.hold(lctx)
		_ = l.Release(context.WithoutCancel(ctx))
	}
}

// hold schedules while the lease's context lives.
func (s *Scheduler) hold(ctx context.Context) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("expiry scheduler: tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Tick handles every grant due now: the warning, then the revoke. Only the
// lease holder calls it in production; publishing twice is harmless (both
// messages have ids derived from the grant's request).
func (s *Scheduler) Tick(ctx context.Context) error {
	s.defaults()
	grants, err := s.Ledger.Grants(ctx, "")
	if err != nil {
		return err
	}
	now := s.Now()
	var errs []error
	for _, g := range grants {
		if err := s.due(ctx, g, now); err != nil {
			errs = append(errs, fmt.Errorf("time-bound grant %s of %s: %w", g.GetGrantKey(), g.GetConnectorId(), err))
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) due(ctx context.Context, g *provv1.TimeBoundGrant, now time.Time) error {
	warn := !g.GetWarned() && !now.Before(g.GetWarnAt().AsTime())
	revoke := g.GetRevokeRequestId() == "" && !now.Before(g.GetExpiresAt().AsTime())
	if !warn && !revoke {
		return nil
	}
	if warn {
		if err := s.warn(ctx, g); err != nil {
			return err
		}
	}
	if revoke {
		if err := s.revoke(ctx, g); err != nil {
			return err
		}
	}
	// Remember it, unless the timer changed meanwhile (a revoke or a new
	// grant): then the new timer decides.
	cur, rev, err := s.Ledger.GetGrant(ctx, g.GetConnectorId(), g.GetGrantKey())
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.GetRequestId() != g.GetRequestId() {
		return nil
	}
	if warn {
		cur.Warned = true
	}
	if revoke {
		cur.RevokeRequestId = request.ExpiryRequestID(g.GetRequestId())
	}
	_, err = s.Ledger.UpdateGrant(ctx, cur, rev)
	if errors.Is(err, ledger.ErrConflict) {
		return nil // changed meanwhile: the next tick looks again
	}
	return err
}

func grantee(t *eventsv1.ProvisioningTarget) *eventsv1.Principal {
	if gm := t.GetGroupMembership(); gm != nil {
		return &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: gm.GetUserId()}
	}
	aa := t.GetAppAssignment()
	if aa.GetGroupId() != "" {
		return &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: aa.GetGroupId()}
	}
	return &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: aa.GetUserId()}
}

func (s *Scheduler) warn(ctx context.Context, g *provv1.TimeBoundGrant) error {
	subj, err := subjects.ProvisioningExpiring(g.GetConnectorId())
	if err != nil {
		return err
	}
	id := subjects.MsgID(subjects.DomainProvisioning, g.GetConnectorId(), "expiring", g.GetRequestId())
	_, err = s.Bus.Publish(ctx, subj, id, &eventsv1.ProvisioningExpiring{
		RequestId: g.GetRequestId(), ConnectorId: g.GetConnectorId(), Target: g.GetTarget(), ExpiresAt: g.GetExpiresAt(),
		Grantee: grantee(g.GetTarget()), RequestedBy: g.GetRequestedBy(), GrantKey: g.GetGrantKey(),
	})
	if err == nil {
		s.Log.Info("time-bound grant expires soon", "connector", g.GetConnectorId(), "grant", g.GetGrantKey(),
			"expires_at", g.GetExpiresAt().AsTime())
	}
	return err
}

func (s *Scheduler) revoke(ctx context.Context, g *provv1.TimeBoundGrant) error {
	req := &eventsv1.ProvisioningRequest{
		RequestId: request.ExpiryRequestID(g.GetRequestId()), ConnectorId: g.GetConnectorId(),
		Action: eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE, Target: g.GetTarget(),
		RequestedBy: request.ExpiryRequester, Reason: "time-bound grant " + g.GetRequestId() + " expired",
		SubmittedAt: timestamppb.New(s.Now()),
	}
	subj, err := subjects.ProvisioningRequest(g.GetConnectorId())
	if err != nil {
		return err
	}
	if _, err := s.Bus.Publish(ctx, subj, request.MsgID(req), req); err != nil {
		return err
	}
	s.Log.Info("time-bound grant expired: revoke requested", "connector", g.GetConnectorId(), "grant", g.GetGrantKey(), "request", req.GetRequestId())
	return nil
}

// FollowerDurable is the name of the Follower's consumer.
const FollowerDurable = "provisioning-grant-removals"

// Follow ends the timers of grants removed in Okta before they expired:
// it follows access.*.grant.removed (a removal observed before the timer's
// grant was confirmed is an older change and leaves the timer alone).
func Follow(ctx context.Context, b *bus.Bus, l *ledger.Store, log *slog.Logger) (*bus.Subscription, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return bus.Consume(ctx, b, bus.ConsumerSpec{
		Stream: subjects.StreamAccess, Durable: FollowerDurable,
		Description:   "accessbus provisioning: ends the timers of time-bound grants removed in Okta",
		Filter:        []string{"access.*.grant.removed"},
		DeliverPolicy: jetstream.DeliverNewPolicy,
		Concurrency:   4,
	}, func(ctx context.Context, m *bus.Message[*eventsv1.GrantRemoved]) error {
		ev := m.Payload
		cid := ev.GetContext().GetConnectorId()
		key := ev.GetGrant().GetKey()
		g, _, err := l.GetGrant(ctx, cid, key)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.GetContext().GetObservedAt().AsTime().Before(g.GetGrantedAt().AsTime()) {
			return nil
		}
		if err := l.DeleteGrant(ctx, cid, key, g.GetRequestId()); err != nil {
			return err
		}
		log.Info("time-bound grant removed in Okta before its expiry: timer ended", "connector", cid, "grant", key, "request", g.GetRequestId())
		return nil
	})
}
