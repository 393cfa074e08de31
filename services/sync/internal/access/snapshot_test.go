package access_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"

	"github.com/accessbus/accessbus/services/sync/internal/access"
	"github.com/accessbus/accessbus/services/sync/internal/changes"
)

// orgView is what the mutations pick from: the connector's state.
type orgView struct {
	users       []*eventsv1.User  // ACTIVE, not the admins
	groups      []*eventsv1.Group // OKTA_GROUP
	apps        []*eventsv1.App   // ACTIVE
	members     map[string]map[string]bool
	memberships []*eventsv1.Grant // of non-admin users in OKTA_GROUPs
	direct      []*eventsv1.Grant // direct app assignments of non-admin users
}

func (e *env) orgView() (orgView, error) {
	snap, err := e.svc.Snapshot(context.Background(), connector)
	if err != nil {
		return orgView{}, fmt.Errorf("snapshot: %w", err)
	}
	admins := map[string]bool{}
	a := e.run.Generated.Admins
	for _, id := range []string{a.ReadOnlyAdmin, a.AppGroupAdmin, a.SuperAdmin} {
		admins[id] = true
	}
	v := orgView{members: map[string]map[string]bool{}}
	okGroup := map[string]bool{}
	for _, r := range snap.Resources {
		switch {
		case r.GetResource().GetUser() != nil:
			if u := r.GetResource().GetUser(); u.GetStatus() == eventsv1.User_STATUS_ACTIVE && !admins[u.GetId()] {
				v.users = append(v.users, u)
			}
		case r.GetResource().GetGroup() != nil:
			if g := r.GetResource().GetGroup(); g.GetType() == eventsv1.Group_TYPE_OKTA_GROUP {
				v.groups = append(v.groups, g)
				okGroup[g.GetId()] = true
			}
		case r.GetResource().GetApp() != nil:
			if ap := r.GetResource().GetApp(); ap.GetStatus() == eventsv1.App_STATUS_ACTIVE {
				v.apps = append(v.apps, ap)
			}
		}
	}
	for _, ag := range snap.Grants {
		g := ag.GetGrant()
		uid := g.GetPrincipal().GetId()
		if gm := g.GetGroupMembership(); gm != nil {
			if v.members[gm.GetGroupId()] == nil {
				v.members[gm.GetGroupId()] = map[string]bool{}
			}
			v.members[gm.GetGroupId()][uid] = true
			if okGroup[gm.GetGroupId()] && !admins[uid] {
				v.memberships = append(v.memberships, g)
			}
		}
		if aa := g.GetAppAssignment(); aa != nil && aa.GetScope() == eventsv1.AppAssignment_SCOPE_USER && !admins[uid] {
			v.direct = append(v.direct, g)
		}
	}
	return v, nil
}

// mutate makes a round of changes of every common kind in the simulated
// org; round varies which objects change. It runs beside the test's
// goroutine, so it returns its error rather than failing the test.
func (e *env) mutate(round int) error {
	v, err := e.orgView()
	if err != nil {
		return err
	}
	org := e.run.Org
	if len(v.users) < 10 || len(v.groups) < 3 || len(v.apps) < 2 || len(v.memberships) < 10 || len(v.direct) < 3 {
		return fmt.Errorf("small org too small: %d users, %d groups, %d apps, %d memberships, %d direct assignments",
			len(v.users), len(v.groups), len(v.apps), len(v.memberships), len(v.direct))
	}
	pick := func(n, salt int) int { return (round*7919 + salt*104729) % n }
	var errs []error
	check := func(_ any, err error) { errs = append(errs, err) }
	// A membership goes, another comes.
	m := v.memberships[pick(len(v.memberships), 1)]
	check(org.RemoveMember(nil, m.GetGroupMembership().GetGroupId(), m.GetPrincipal().GetId()))
	for i := range len(v.users) {
		u := v.users[(pick(len(v.users), 2)+i)%len(v.users)]
		g := v.groups[(pick(len(v.groups), 3)+i)%len(v.groups)]
		if !v.members[g.GetId()][u.GetId()] {
			check(org.AddMember(nil, g.GetId(), u.GetId()))
			break
		}
	}
	// An app assignment goes, another comes.
	d := v.direct[pick(len(v.direct), 4)]
	check(org.UnassignUserFromApp(nil, d.GetAppAssignment().GetAppId(), d.GetPrincipal().GetId()))
	check(org.AssignUserToApp(nil, v.apps[pick(len(v.apps), 5)].GetId(), v.users[pick(len(v.users), 6)].GetId(),
		map[string]any{"round": fmt.Sprint(round)}))
	// A group is renamed, a user suspended, another deleted.
	g := v.groups[pick(len(v.groups), 7)]
	errs = append(errs, org.UpdateGroup(nil, g.GetId(), fmt.Sprintf("%s r%d", g.GetName(), round), g.GetDescription()))
	suspend, del := pick(len(v.users), 8), pick(len(v.users), 9)
	if del == suspend {
		del = (del + 1) % len(v.users)
	}
	errs = append(errs, org.SetUserStatus(nil, v.users[suspend].GetId(), "SUSPENDED"))
	errs = append(errs, org.DeleteUser(nil, v.users[del].GetId()))
	// A user gains an admin role.
	check(org.AssignRole(nil, "USER", v.users[pick(len(v.users), 10)].GetId(), "HELP_DESK_ADMIN", "", ""))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("change the org in round %d: %w", round, err)
	}
	return nil
}

// TestSnapshotMidStreamThenFollow is the promise: a consumer that
// loads a snapshot taken in the middle of a stream of changes and then
// follows the stream from the snapshot's sequence ends with exactly the
// simulator's state. Snapshots are taken through the Connect API over HTTP,
// one between two syncs and others while syncs run; each is followed
// strictly (no change missed or doubled) and compared with a fresh full
// read of the org.
func TestSnapshotMidStreamThenFollow(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustSync(t, connector)
	const rounds = 4

	midway := make(chan struct{})
	resume := make(chan struct{})
	done := make(chan struct{})
	var syncErr error
	go func() {
		defer close(done)
		for round := 1; round <= rounds; round++ {
			if round == 2 {
				close(midway)
				<-resume
			}
			if err := e.mutate(round); err != nil {
				syncErr = err
				return
			}
			if _, err := e.sync(context.Background(), connector, nil); err != nil {
				syncErr = fmt.Errorf("sync in round %d: %w", round, err)
				return
			}
		}
	}()

	select {
	case <-midway:
	case <-done:
		t.Fatalf("round 1: %v", syncErr)
	}
	snaps := []*exported{e.mustExport(t, connector)}
	close(resume)
	// More snapshots while the remaining rounds change the org and sync:
	// each waits for a run to release the connector, or a run waits for it.
	var concurrent []*exported
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 1; i <= 5; i++ {
				x, err := e.export(context.Background(), connector, 7)
				if err != nil {
					t.Errorf("concurrent export: %v", err)
					return
				}
				mu.Lock()
				concurrent = append(concurrent, x)
				mu.Unlock()
				select {
				case <-done:
					if i >= 2 {
						return
					}
				default:
				}
			}
		})
	}
	wg.Wait()
	<-done
	if syncErr != nil {
		t.Fatal(syncErr)
	}
	snaps = append(snaps, concurrent...)
	snaps = append(snaps, e.mustExport(t, connector))

	last := e.lastSeq(t, connector)
	if s := snaps[0].header.GetAccessSequence(); s >= last {
		t.Fatalf("the midway snapshot names sequence %d, the stream ends at %d: not in the middle", s, last)
	}

	// The simulator's state, read afresh by a new connector.
	e.mustSync(t, "fresh")
	want := load(t, e.mustExport(t, "fresh"))
	if len(want.grants) == 0 || len(want.resources) == 0 {
		t.Fatal("fresh read is empty")
	}

	// The connector's own final state first: if it differs from the fresh
	// read, the sync (not the snapshot) is wrong.
	sameContent(t, "final state of "+connector+" against a fresh read", load(t, snaps[len(snaps)-1]), want)
	seqs := map[uint64]int{}
	for i, x := range snaps {
		m := load(t, x)
		s := x.header.GetAccessSequence()
		m.follow(t, e.js, connector, s+1, last)
		sameContent(t, fmt.Sprintf("snapshot %d at sequence %d, then %d events", i, s, m.applied), m, want)
		seqs[s]++
	}
	t.Logf("%d snapshots at %d distinct sequences; stream of %s ends at %d", len(snaps), len(seqs), connector, last)
}

// TestSnapshotFinishesInterruptedCommit: a sync killed after publishing an
// event but before writing its container leaves a journal entry. Without a
// publisher the snapshot refuses (Unavailable, saying why); with one it
// finishes the commit first, so the snapshot matches the stream.
func TestSnapshotFinishesInterruptedCommit(t *testing.T) {
	for _, withPublisher := range []bool{false, true} {
		t.Run(fmt.Sprintf("publisher=%v", withPublisher), func(t *testing.T) {
			var e *env
			e = newEnv(t, envOpts{deps: func(d *access.Deps) {
				if withPublisher {
					d.Publisher = lazyPublisher{&e}
				}
			}})
			e.mustSync(t, connector)
			// A change, then a run that dies right after its first ack.
			if err := e.mutate(1); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pub := &crashingPublisher{next: e.bus, cancel: cancel}
			if _, err := e.sync(ctx, connector, pub); err == nil {
				t.Fatal("the crashed sync succeeded")
			}
			if !pub.crashed {
				t.Fatal("the change published nothing")
			}
			st, err := e.store.Load(context.Background(), connector)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Pending) == 0 {
				t.Fatal("the crash left no journal entry")
			}

			x, err := e.export(context.Background(), connector, 0)
			if !withPublisher {
				if codeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "interrupted sync") {
					t.Fatalf("export with a journal entry and no publisher: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			if st, _ := e.store.Load(context.Background(), connector); len(st.Pending) != 0 {
				t.Fatalf("%d journal entries left after the snapshot", len(st.Pending))
			}
			// The next run publishes the rest of the change; the snapshot
			// plus the stream after it is the org.
			e.mustSync(t, connector)
			m := load(t, x)
			m.follow(t, e.js, connector, x.header.GetAccessSequence()+1, e.lastSeq(t, connector))
			e.mustSync(t, "fresh")
			sameContent(t, "recovered snapshot then stream", m, load(t, e.mustExport(t, "fresh")))
		})
	}
}

// lazyPublisher is the env's bus, which exists only once newEnv returns.
type lazyPublisher struct{ e **env }

func (p lazyPublisher) Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error) {
	return (*p.e).bus.Publish(ctx, subject, msgID, payload)
}

// crashingPublisher lets the first access event through, then cancels the
// run as if the process died right after that ack.
type crashingPublisher struct {
	next    changes.Publisher
	cancel  context.CancelFunc
	mu      sync.Mutex
	crashed bool
}

func (p *crashingPublisher) Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error) {
	if !strings.HasPrefix(subject, "access.") {
		return p.next.Publish(ctx, subject, msgID, payload)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashed {
		return nil, context.Canceled
	}
	ack, err := p.next.Publish(ctx, subject, msgID, payload)
	if err == nil {
		p.crashed = true
		p.cancel()
	}
	return ack, err
}

// TestSnapshotHoldErrors: a busy connector is Unavailable, a cancelled wait
// is Canceled, and an unknown connector never reaches the hold.
func TestSnapshotHoldErrors(t *testing.T) {
	var holds atomic.Int32
	busy := func(ctx context.Context, c string) (func(), error) {
		holds.Add(1)
		return nil, fmt.Errorf("sync lease of %s: %w", c, access.ErrBusy)
	}
	e := newEnv(t, envOpts{deps: func(d *access.Deps) { d.Hold = busy }})
	_, err := e.export(context.Background(), connector, 0)
	if codeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("busy connector: %v", err)
	}

	e2 := newEnv(t, envOpts{deps: func(d *access.Deps) {
		d.Exists = func(context.Context, string) (bool, error) { return false, nil }
		d.Hold = busy
	}})
	holds.Store(0)
	_, err = e2.export(context.Background(), "nope", 0)
	if codeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `"nope"`) || holds.Load() != 0 {
		t.Fatalf("unknown connector: %v after %d holds", err, holds.Load())
	}

	// A wait the caller gives up on.
	e3 := newEnv(t, envOpts{})
	release, err := e3.lease.Hold(context.Background(), connector)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e3.svc.Snapshot(ctx, connector); !errors.Is(err, context.Canceled) {
		t.Fatalf("snapshot with a cancelled wait: %v", err)
	}
}

// TestSnapshotDetectsWriterIgnoringHold: an event of the connector stored
// while the snapshot reads the state fails the snapshot (Aborted) instead
// of handing out a wrong sequence.
func TestSnapshotDetectsWriterIgnoringHold(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustSync(t, connector)
	access.SetAfterLoad(e.svc, func() {
		ev := &eventsv1.GrantRemoved{Context: &eventsv1.ChangeContext{ConnectorId: connector, Revision: 1 << 40},
			Grant: changes.Membership("00gx", "00ux")}
		if _, err := e.bus.Publish(context.Background(), "access."+connector+".grant.removed", "rogue", ev); err != nil {
			t.Errorf("rogue publish: %v", err)
		}
	})
	_, err := e.export(context.Background(), connector, 0)
	if codeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), "sync lease") {
		t.Fatalf("snapshot with a rogue writer: %v", err)
	}
}

// TestSnapshotChunksAndHeader: chunks hold at most page_size items, the
// header's counts match and name the stream's last sequence.
func TestSnapshotChunksAndHeader(t *testing.T) {
	e := newEnv(t, envOpts{})
	rep := e.mustSync(t, connector)
	x, err := e.export(context.Background(), connector, 50)
	if err != nil {
		t.Fatal(err)
	}
	h := x.header
	if h.GetConnectorId() != connector || h.GetAccessSequence() != rep.LastAccessSequence || h.GetTakenAt() == nil {
		t.Fatalf("header %v, last sequence of the run %d", h, rep.LastAccessSequence)
	}
	wantMsgs := 1 + (len(x.resources)+49)/50 + (len(x.grants)+49)/50
	if x.messages != wantMsgs {
		t.Errorf("%d messages for %d resources and %d grants in chunks of 50, want %d", x.messages, len(x.resources), len(x.grants), wantMsgs)
	}
	sum := e.run.Org.Summary()
	if got := h.GetResourcesByKind()["RESOURCE_KIND_USER"]; got != int64(sum.Users) {
		t.Errorf("header counts %d users, org has %d", got, sum.Users)
	}
	if got := h.GetGrantsByKind()["GRANT_KIND_GROUP_MEMBERSHIP"]; got != int64(sum.Memberships) {
		t.Errorf("header counts %d memberships, org has %d", got, sum.Memberships)
	}
	if !slices.IsSortedFunc(x.grants, func(a, b *accessv1.AccessGrant) int {
		return strings.Compare(a.GetGrant().GetKey(), b.GetGrant().GetKey())
	}) {
		t.Error("grants not ordered by key")
	}
	for _, g := range x.grants {
		if g.GetRevision() == 0 || g.GetKind() == eventsv1.GrantKind_GRANT_KIND_UNSPECIFIED {
			t.Fatalf("grant %s: revision %d, kind %v", g.GetGrant().GetKey(), g.GetRevision(), g.GetKind())
		}
	}
	if _, err := e.export(context.Background(), connector, -1); codeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("negative page size: %v", err)
	}
	if _, err := e.export(context.Background(), "Bad.Id", 0); codeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("invalid connector id: %v", err)
	}
	if _, err := e.export(context.Background(), "nope", 0); codeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown connector: %v", err)
	}
}
