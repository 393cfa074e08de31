package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"
)

// Assignment counts: an application's user_assignment_count and
// group_assignment_count follow the sync's app assignment grants
// (access.<c>.grant.added|removed). Users are counted whether they are
// assigned directly or through a group (the sync publishes one grant per
// app user, with its scope); groups are counted for their own assignments.
//
// The counts must survive redeliveries, events out of order, restarts and
// several replicas, so they are never incremented. Each assignment has one
// entry in the Discovery bucket (assign.<app>.<u|g>.<principal>) holding
// whether it is present and the ChangeContext.revision of the change that
// said so: a change applies only if its revision is not older, with a
// compare-and-set on the entry. When an entry's presence flips, the app is
// marked for a recount (recount.<app>); a recounter watching those markers
// counts the app's present entries and stores the exact figures on the
// application. A marker is deleted only at the revision the recount read,
// so a change that lands during a recount leaves it for the next one.

// AssignmentConsumer is the durable name of the consumer of grant events
// that keeps the applications' assignment counts.
const AssignmentConsumer = "catalog-assignments"

// recountDelay gathers a burst of changes (a sync publishes an app's
// assignments one after another) into one recount per application. When
// recounts take long (applications with many thousands of users), the
// delay grows to recountShare times the last recount's length, so that
// recounting during a large sync takes a bounded share of a core.
const (
	recountDelay = 200 * time.Millisecond
	recountShare = 4
)

// recountEvery is how often markers are looked at without being told, for
// one whose recount failed.
const recountEvery = 30 * time.Second

// assignment is the value of an assignment's entry.
type assignment struct {
	// Rev is the ChangeContext.revision of the latest change applied.
	Rev uint64 `json:"rev"`
	// Present is whether that change left the assignment in place.
	Present bool `json:"present"`
}

func assignmentPrefix(appID string) string { return "assign." + appID + "." }

// assignmentKey is the entry of one assignment; principal ids that could
// not be a key token (Okta's never are such) are hashed.
func assignmentKey(appID string, group bool, principal string) string {
	kind := "u"
	if group {
		kind = "g"
	}
	if !keyToken(principal) {
		sum := sha256.Sum256([]byte(principal))
		principal = "h" + hex.EncodeToString(sum[:16])
	}
	return assignmentPrefix(appID) + kind + "." + principal
}

func recountKey(appID string) string { return "recount." + appID }

func keyToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// AssignmentCounter keeps the applications' assignment counts: a consumer
// of grant events and a recounter. Stop ends both.
type AssignmentCounter struct {
	d    *Discovery
	log  *slog.Logger
	sub  *bus.Subscription
	stop context.CancelFunc
	done chan struct{}
}

// FollowAssignments starts counting the applications' assignments: it
// consumes every connector's grant events (durable AssignmentConsumer on
// ACCESS, in order) and recounts the applications they change.
func (d *Discovery) FollowAssignments(ctx context.Context) (*AssignmentCounter, error) {
	rctx, cancel := context.WithCancel(ctx)
	a := &AssignmentCounter{d: d, log: d.log, stop: cancel, done: make(chan struct{})}
	markers, err := d.kv.Watch(rctx, "recount.>", jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch the recount markers: %w", err)
	}
	go a.recountLoop(rctx, markers)
	sub, err := bus.ConsumeRaw(ctx, d.bus, bus.ConsumerSpec{
		Stream: subjects.StreamAccess, Durable: AssignmentConsumer,
		Description: "catalog: the applications' user and group assignment counts",
		Filter:      []string{subjects.AllGrantChanges},
		// One at a time, in stream order (a connector's changes are in
		// revision order there): most grant events are memberships and
		// roles, skipped at once, and the entries seldom conflict.
		Concurrency: 1, Prefetch: 256,
	}, a.handle)
	if err != nil {
		cancel()
		<-a.done
		return nil, fmt.Errorf("follow app assignments: %w", err)
	}
	a.sub = sub
	return a, nil
}

// Stop stops the consumer, then the recounter.
func (a *AssignmentCounter) Stop(ctx context.Context) error {
	err := a.sub.Stop(ctx)
	a.stop()
	select {
	case <-a.done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("stop the assignment recounter: %w", ctx.Err()))
	}
	return err
}

func (a *AssignmentCounter) handle(ctx context.Context, m *bus.RawMessage) error {
	p, err := subjects.Parse(m.Subject)
	if err != nil || p.Connector == "" || p.Entity != subjects.EntityGrant {
		return bus.Permanentf("assignment counts: not a grant change subject: %s", m.Subject)
	}
	var grant *eventsv1.Grant
	var change *eventsv1.ChangeContext
	present := false
	switch p.Verb {
	case subjects.VerbAdded:
		ev := &eventsv1.GrantAdded{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			return fmt.Errorf("%w: %s: %w", bus.ErrUndecodable, m.Subject, err)
		}
		grant, change, present = ev.GetGrant(), ev.GetContext(), true
	case subjects.VerbRemoved:
		ev := &eventsv1.GrantRemoved{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			return fmt.Errorf("%w: %s: %w", bus.ErrUndecodable, m.Subject, err)
		}
		grant, change = ev.GetGrant(), ev.GetContext()
	default:
		return bus.Permanentf("assignment counts: not a grant change subject: %s", m.Subject)
	}
	aa := grant.GetAppAssignment()
	if aa == nil {
		return nil // a membership or a role: not counted here
	}
	var group bool
	switch grant.GetPrincipal().GetType() {
	case eventsv1.PrincipalType_PRINCIPAL_TYPE_USER:
	case eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP:
		group = true
	default:
		return bus.Permanentf("assignment counts: %s: app assignment %q names no user or group principal", m.Subject, grant.GetKey())
	}
	if aa.GetAppId() == "" || grant.GetPrincipal().GetId() == "" {
		return bus.Permanentf("assignment counts: %s: app assignment %q lacks its app id or principal id", m.Subject, grant.GetKey())
	}
	appID := ApplicationID(p.Connector, aa.GetAppId())
	key := assignmentKey(appID, group, grant.GetPrincipal().GetId())
	if err := a.apply(ctx, appID, key, change.GetRevision(), present); err != nil {
		return fmt.Errorf("count app assignment %s of connector %s: %w", grant.GetKey(), p.Connector, err)
	}
	return nil
}

// apply records that the assignment at key is present or not as of
// change revision rev, unless a later change was recorded, and marks the
// application for a recount when its presence flipped. A change that is
// not newer than the entry (a redelivery, perhaps after a crash that
// stopped the first delivery before its marker) marks it too: a recount is
// cheap, a count left wrong is not.
func (a *AssignmentCounter) apply(ctx context.Context, appID, key string, rev uint64, present bool) error {
	kv := a.d.kv
	for range maxAttempts {
		var cur assignment
		var curRev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			if err := json.Unmarshal(e.Value(), &cur); err != nil {
				return fmt.Errorf("decode %s (revision %d): %w", key, e.Revision(), err)
			}
			curRev = e.Revision()
		}
		if curRev != 0 && (cur.Rev > rev || (cur.Rev == rev && cur.Present == present)) {
			return a.markRecount(ctx, appID)
		}
		flipped := cur.Present != present
		b, err := json.Marshal(assignment{Rev: rev, Present: present})
		if err != nil {
			return err
		}
		if curRev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, curRev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSequence(err) {
			continue // another delivery changed it: decide again on its version
		}
		if err != nil {
			return fmt.Errorf("store %s: %w", key, err)
		}
		if !flipped {
			return nil
		}
		// After the entry: a recount that reads the marker before this
		// put either counts the entry already or sees the marker change
		// and leaves it for the next recount.
		return a.markRecount(ctx, appID)
	}
	return fmt.Errorf("%s kept changing through %d attempts; try again", key, maxAttempts)
}

// markRecount marks the application's counts as possibly stale.
func (a *AssignmentCounter) markRecount(ctx context.Context, appID string) error {
	return markRecount(ctx, a.d.kv, appID)
}

func markRecount(ctx context.Context, kv jetstream.KeyValue, appID string) error {
	if _, err := kv.Put(ctx, recountKey(appID), nil); err != nil {
		return fmt.Errorf("mark application %s for a recount: %w", appID, err)
	}
	return nil
}

// recountLoop recounts the marked applications shortly after a marker is
// put (by this process, another replica or a new application), and every
// recountEvery for markers a failed recount left.
func (a *AssignmentCounter) recountLoop(ctx context.Context, markers jetstream.KeyWatcher) {
	defer close(a.done)
	defer func() { _ = markers.Stop() }()
	tick := time.NewTicker(recountEvery)
	defer tick.Stop()
	var last time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-markers.Updates():
			if !ok {
				return
			}
			// Gather the burst: the recount reads every marker anyway. Up
			// to half as long again at random, so that replicas woken by
			// the same marker rarely count at the same time (the one whose
			// clearing then fails marks the application again).
			wait := max(recountDelay, recountShare*last)
			timer := time.NewTimer(wait + rand.N(wait/2+1))
		gather:
			for {
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case _, ok := <-markers.Updates():
					if !ok {
						timer.Stop()
						return
					}
				case <-timer.C:
					break gather
				}
			}
		case <-tick.C:
		}
		start := time.Now()
		if err := a.RecountMarked(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("assignment recount failed; it is tried again", "err", err)
		}
		last = time.Since(start)
	}
}

// RecountMarked recounts every application marked for a recount.
func (a *AssignmentCounter) RecountMarked(ctx context.Context) error {
	lister, err := a.d.kv.ListKeysFiltered(ctx, "recount.>")
	if err != nil {
		return fmt.Errorf("list the recount markers: %w", err)
	}
	var apps []string
	for k := range lister.Keys() {
		apps = append(apps, strings.TrimPrefix(k, "recount."))
	}
	var errs []error
	for _, appID := range apps {
		if err := a.recount(ctx, appID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recount stores the exact counts of one marked application and removes
// its marker, if no change marked it again meanwhile.
func (a *AssignmentCounter) recount(ctx context.Context, appID string) error {
	kv := a.d.kv
	e, err := kv.Get(ctx, recountKey(appID))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil // recounted by another replica
	}
	if err != nil {
		return fmt.Errorf("read the recount marker of %s: %w", appID, err)
	}
	users, groups, err := a.d.countAssignments(ctx, appID)
	if err != nil {
		return err
	}
	if err := a.d.setAssignmentCounts(ctx, appID, users, groups); err != nil {
		return err
	}
	err = kv.Delete(ctx, recountKey(appID), jetstream.LastRevision(e.Revision()))
	if isWrongLastSequence(err) {
		// Marked again, or recounted by another replica, while we counted:
		// what we stored may be older than theirs, so count once more.
		return markRecount(ctx, kv, appID)
	}
	if err != nil {
		return fmt.Errorf("clear the recount marker of %s: %w", appID, err)
	}
	return nil
}

// countAssignments counts an application's present user and group
// assignments.
func (d *Discovery) countAssignments(ctx context.Context, appID string) (users, groups int64, err error) {
	prefix := assignmentPrefix(appID)
	w, err := d.kv.Watch(ctx, prefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return 0, 0, fmt.Errorf("read the assignments of %s: %w", appID, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return 0, 0, fmt.Errorf("read the assignments of %s: the watch ended early", appID)
			}
			if e == nil {
				return users, groups, nil
			}
			var v assignment
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return 0, 0, fmt.Errorf("decode %s: %w", e.Key(), err)
			}
			if !v.Present {
				continue
			}
			if strings.HasPrefix(e.Key(), prefix+"g.") {
				groups++
			} else {
				users++
			}
		}
	}
}

// setAssignmentCounts stores an application's counts and publishes
// catalog.app.upserted when they changed; an application that does not
// exist (yet, or any more) is left alone.
func (d *Discovery) setAssignmentCounts(ctx context.Context, appID string, users, groups int64) error {
	for range maxAttempts {
		e, err := d.kv.Get(ctx, appKey(appID))
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read application %s: %w", appID, err)
		}
		app := &eventsv1.Application{}
		if err := proto.Unmarshal(e.Value(), app); err != nil {
			return fmt.Errorf("decode application %s: %w", appID, err)
		}
		if app.GetUserAssignmentCount() == users && app.GetGroupAssignmentCount() == groups {
			return nil
		}
		app.UserAssignmentCount, app.GroupAssignmentCount = users, groups
		app.UpdatedAt, app.Revision = timestamppb.New(d.now()), 0
		b, err := proto.Marshal(app)
		if err != nil {
			return err
		}
		rev, err := d.kv.Update(ctx, appKey(appID), b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSequence(err) {
			continue // the discovery consumer or the API changed it
		}
		if err != nil {
			return fmt.Errorf("store the assignment counts of %s: %w", appID, err)
		}
		app.Revision = rev
		return d.publishApp(ctx, app)
	}
	return fmt.Errorf("store the assignment counts of %s: the application kept changing; try again", appID)
}
