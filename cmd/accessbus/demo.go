package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/services/catalog"
)

// demoConnector is the connector `accessbus dev --demo` creates.
const demoConnector = "demo"

// errOnceDone ends `accessbus dev --once` after its sync.
var errOnceDone = errors.New("--once: the demo sync is done")

// ensureDemoConnector creates (or, on a restart, points at the new
// simulator) the demo connector with the simulator's Super Administrator
// token, owned by the first Super Administrator. dev writes the record
// itself rather than through the catalog's API: the demo connector syncs
// inactive apps too, an option the API does not offer, and its token is
// known good.
func ensureDemoConnector(ctx context.Context, deps service.Deps, key secrets.Key, sim *oktasim.Running) error {
	// The simulator serves this connector alone: it may use every request of
	// each bucket instead of the default half.
	return ensureConnector(ctx, deps, key, demoConnector, sim.URL, telemetry.NewSecret(sim.Tokens.SuperAdmin),
		&eventsv1.ConnectorOptions{SyncInactiveApps: true, SyncCustomRoles: true, RateLimitShare: 1}, "accessbus dev --demo")
}

// ensureConnector creates connector id for domain with token and opts, or
// brings an existing one to this domain and token (keeping its options); a
// changed token gets a new secret version, which makes the connector due.
// The first Super Administrator owns it, so that `accessbus connectors
// list --mine` with the key dev keeps in its data dir shows it.
func ensureConnector(ctx context.Context, deps service.Deps, key secrets.Key, id, domain string, token telemetry.Secret, opts *eventsv1.ConnectorOptions, by string) error {
	store, err := connectors.Open(ctx, deps.Bus.JetStream(), connectors.Options{Key: key})
	if err != nil {
		return err
	}
	owner, err := devOwner(ctx, deps)
	if err != nil {
		return err
	}
	var owners []*eventsv1.ConnectorOwner
	if owner != nil {
		owners = append(owners, owner)
	}
	_, err = store.Get(ctx, id)
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		_, err = store.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: domain, CreatedBy: by, Options: opts, Owners: owners})
		if err != nil && !errors.Is(err, connectors.ErrExists) {
			return err
		}
	case err != nil:
		return err
	default:
		if _, err := store.Update(ctx, id, func(c *eventsv1.Connector) error {
			c.OktaDomain = domain
			if owner != nil && !slices.ContainsFunc(c.GetOwners(), func(o *eventsv1.ConnectorOwner) bool { return o.GetIdentityId() == owner.GetIdentityId() }) {
				c.Owners = append(c.Owners, owner)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	old, _, err := store.Token(ctx, id)
	if err == nil && old.Reveal() == token.Reveal() {
		return nil
	}
	if err != nil && !errors.Is(err, connectors.ErrNoToken) {
		return err
	}
	_, err = store.SetToken(ctx, id, token)
	return err
}

// devOwner is the owner of the connectors dev creates: the first Super
// Administrator (the catalog's ACCESSBUS_ADMIN_EMAIL, by default
// admin@accessbus.local), whose API key dev keeps in its data dir. nil when
// that identity holds no platform role (another installation's data, a
// changed ACCESSBUS_ADMIN_EMAIL): a connector owner must hold one.
func devOwner(ctx context.Context, deps service.Deps) (*eventsv1.ConnectorOwner, error) {
	cfg, err := catalog.ConfigFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	email := strings.ToLower(strings.TrimSpace(cfg.AdminEmail))
	if email == "" {
		email = catalog.DefaultAdminEmail
	}
	id := catalog.IdentityID(email)
	keys, err := auth.Open(ctx, deps.Bus.JetStream(), auth.Options{})
	if err != nil {
		return nil, err
	}
	roles, err := keys.Roles(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read the roles of %s: %w", email, err)
	}
	if !(auth.Caller{Roles: roles}).Has(auth.SuperAdmin, auth.ConnectorAdmin) {
		deps.Logger.Warn("the dev connectors get no owner: the administrator holds no platform role", "email", email)
		return nil, nil
	}
	return &eventsv1.ConnectorOwner{IdentityId: id, Email: email}, nil
}

// waitFirstDemoSync asks for a full sync of the demo connector, waits for
// its run to complete, reads the connector's access events up to the run's
// last sequence (so they are published and consumed), and returns one
// summary line.
func waitFirstDemoSync(ctx context.Context, deps service.Deps, demoReady <-chan struct{}) (string, error) {
	js := deps.Bus.JetStream()
	// Follow run events from now on, before asking, so none is missed.
	runsC, err := js.OrderedConsumer(ctx, subjects.StreamSync, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sync." + demoConnector + ".run.>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return "", fmt.Errorf("--once: follow the demo's runs: %w", err)
	}
	// Wait until the demo connector points at this run's simulator.
	select {
	case <-demoReady:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	reqID := "dev-once-" + time.Now().UTC().Format("20060102T150405.000000000")
	reqID = strings.ReplaceAll(reqID, ".", "-")
	subj, _ := subjects.SyncRequest(demoConnector)
	if _, err := deps.Bus.Publish(ctx, subj, subjects.MsgID(subjects.DomainSync, demoConnector, subjects.EntityRequest, reqID),
		&eventsv1.SyncRequest{RequestId: reqID, ConnectorId: demoConnector, Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
			RequestedBy: "accessbus dev --once", Reason: "first sync of the demo", RequestedAt: timestamppb.Now()}); err != nil {
		return "", fmt.Errorf("--once: request the demo's sync: %w", err)
	}
	var done *eventsv1.SyncRunCompleted
	for done == nil {
		msg, err := next(ctx, runsC)
		if err != nil {
			return "", fmt.Errorf("--once: wait for the demo's sync: %w", err)
		}
		switch {
		case strings.HasSuffix(msg.Subject(), ".run.completed"):
			ev := &eventsv1.SyncRunCompleted{}
			if proto.Unmarshal(msg.Data(), ev) == nil && ev.GetRequestId() == reqID {
				done = ev
			}
		case strings.HasSuffix(msg.Subject(), ".run.failed"):
			ev := &eventsv1.SyncRunFailed{}
			if proto.Unmarshal(msg.Data(), ev) == nil && ev.GetRequestId() == reqID {
				return "", fmt.Errorf("--once: the demo's sync failed (%s): %s", ev.GetReason(), ev.GetMessage())
			}
		}
	}
	consumed, err := consumeAccessUpTo(ctx, js, done.GetLastAccessSequence())
	if err != nil {
		return "", err
	}
	return summary(done, consumed), nil
}

// consumeAccessUpTo reads the demo connector's access events from the start
// of the stream up to seq and returns how many it read.
func consumeAccessUpTo(ctx context.Context, js jetstream.JetStream, seq uint64) (int, error) {
	if seq == 0 {
		return 0, nil // the run changed nothing
	}
	c, err := js.OrderedConsumer(ctx, subjects.StreamAccess, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"access." + demoConnector + ".>"},
	})
	if err != nil {
		return 0, fmt.Errorf("--once: consume the demo's access events: %w", err)
	}
	n := 0
	for {
		msg, err := next(ctx, c)
		if err != nil {
			return n, fmt.Errorf("--once: consume the demo's access events: %w", err)
		}
		n++
		meta, err := msg.Metadata()
		if err != nil {
			return n, err
		}
		if meta.Sequence.Stream >= seq {
			return n, nil
		}
	}
}

// summary is the one line --once prints.
func summary(ev *eventsv1.SyncRunCompleted, consumed int) string {
	var parts []string
	var changes int64
	for _, r := range ev.GetResources() {
		parts = append(parts, fmt.Sprintf("%d %s", r.GetCounts().GetSeen(), kindName(r.GetKind().String(), "RESOURCE_KIND_")))
		changes += r.GetCounts().GetAdded() + r.GetCounts().GetUpdated() + r.GetCounts().GetRemoved()
	}
	for _, g := range ev.GetGrants() {
		parts = append(parts, fmt.Sprintf("%d %s", g.GetCounts().GetSeen(), kindName(g.GetKind().String(), "GRANT_KIND_")))
		changes += g.GetCounts().GetAdded() + g.GetCounts().GetUpdated() + g.GetCounts().GetRemoved()
	}
	calls := int64(0)
	for _, n := range ev.GetApiCalls() {
		calls += n
	}
	return fmt.Sprintf("demo sync completed in %s: read %s; %d changes published, %d access events consumed, %d Okta API calls, %d skipped parts",
		ev.GetDuration().AsDuration().Round(time.Millisecond), strings.Join(parts, ", "), changes, consumed, calls, len(ev.GetSkipped()))
}

// kindName is a kind's enum name as plural words: "group memberships".
func kindName(s, prefix string) string {
	return strings.ReplaceAll(lowerName(s, prefix), "_", " ") + "s"
}

// next waits for c's next message until ctx ends.
func next(ctx context.Context, c jetstream.Consumer) (jetstream.Msg, error) {
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err == nil {
			return msg, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
	}
}
