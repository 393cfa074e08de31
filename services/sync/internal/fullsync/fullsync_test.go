package fullsync_test

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

const connector = "c1"

// env is one simulated org, one embedded JetStream and the sync's state.
type env struct {
	run    *oktasim.Running
	js     jetstream.JetStream
	bus    *bus.Bus
	store  *state.Store
	access *testkit.Recorder
	seen   int // access events already looked at

	mu         sync.Mutex
	transports []*http.Transport
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvProfile(t, "small")
}

func newEnvProfile(t *testing.T, profile string) *env {
	t.Helper()
	ctx := context.Background()
	run, err := oktasim.Start(ctx, oktasim.Config{Profile: profile, Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.NoLimits})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	e := &env{run: run}
	t.Cleanup(func() {
		// Connections dialed but never used would hold Shutdown for 5 s.
		e.mu.Lock()
		for _, tr := range e.transports {
			tr.CloseIdleConnections()
		}
		e.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = run.Close(cctx)
	})
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	store, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	// Declaring twice is harmless.
	if _, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("open state again: %v", err)
	}
	e.js, e.bus, e.store, e.access = js, b, store, testkit.Record(t, js, "ACCESS", "access.>", true)
	return e
}

// client returns an Okta client with token; rt, when set, sits under it.
func (e *env) client(t *testing.T, token string, rt http.RoundTripper) (*okta.Client, *ratelimit.Budget) {
	t.Helper()
	budget, err := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: 1000})
	if err != nil {
		t.Fatalf("new budget: %v", err)
	}
	cfg := okta.Config{OrgURL: e.run.URL, Token: telemetry.NewSecret(token), Budget: budget,
		RequestTimeout: 5 * time.Second, RetryBackoff: time.Millisecond, MaxRetries: -1}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	e.mu.Lock()
	e.transports = append(e.transports, tr)
	e.mu.Unlock()
	cfg.HTTPClient = &http.Client{Transport: tr}
	if rt != nil {
		cfg.HTTPClient = &http.Client{Transport: rt}
	}
	c, err := okta.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new okta client: %v", err)
	}
	return c, budget
}

type syncOpts struct {
	token string
	rt    http.RoundTripper
	pub   changes.Publisher
	opts  *fullsync.Options
}

func (e *env) sync(ctx context.Context, t *testing.T, o syncOpts) (fullsync.Report, error) {
	t.Helper()
	if o.token == "" {
		o.token = e.run.Tokens.SuperAdmin
	}
	c, budget := e.client(t, o.token, o.rt)
	var pub changes.Publisher = e.bus
	if o.pub != nil {
		pub = o.pub
	}
	opts := fullsync.DefaultOptions()
	if o.opts != nil {
		opts = *o.opts
	}
	return fullsync.Run(ctx, fullsync.Deps{Okta: c, Bus: pub, State: e.store, Budget: budget},
		fullsync.Connector{ID: connector, Options: opts})
}

// mustSyncConnector runs a super admin's sync of c.
func (e *env) mustSyncConnector(t *testing.T, c fullsync.Connector) fullsync.Report {
	t.Helper()
	cl, budget := e.client(t, e.run.Tokens.SuperAdmin, nil)
	rep, err := fullsync.Run(context.Background(), fullsync.Deps{Okta: cl, Bus: e.bus, State: e.store, Budget: budget}, c)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

func (e *env) mustSync(t *testing.T, o syncOpts) fullsync.Report {
	t.Helper()
	rep, err := e.sync(context.Background(), t, o)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

// change is one access event, as "<verb> <key>": "grant.added
// group_membership/g/u", "user.upserted 00u...".
type change struct {
	what  string
	msgID string
	rev   uint64
	grant *eventsv1.Grant
	attrs bool
}

// newEvents returns the ACCESS events stored since the last call.
func (e *env) newEvents(t *testing.T) []change {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, "ACCESS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.access.WaitFor(t, int(info.State.Msgs), 10*time.Second)
	out := decodeAll(t, msgs[e.seen:])
	e.seen = len(msgs)
	return out
}

func decodeAll(t *testing.T, msgs []jetstream.Msg) []change {
	t.Helper()
	var out []change
	for _, m := range msgs {
		name := m.Headers().Get(bus.HeaderPayloadType)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatalf("payload type %q: %v", name, err)
		}
		p := mt.New().Interface()
		if err := proto.Unmarshal(m.Data(), p); err != nil {
			t.Fatal(err)
		}
		c := change{msgID: m.Headers().Get(bus.HeaderMsgID)}
		switch ev := p.(type) {
		case *eventsv1.GrantAdded:
			c.what, c.rev, c.grant, c.attrs = "grant.added "+ev.GetGrant().GetKey(), ev.GetContext().GetRevision(), ev.GetGrant(), ev.GetAttributesChanged()
		case *eventsv1.GrantRemoved:
			c.what, c.rev, c.grant = "grant.removed "+ev.GetGrant().GetKey(), ev.GetContext().GetRevision(), ev.GetGrant()
		case *eventsv1.ResourceUpserted:
			c.what, c.rev = kindName(ev.GetKind())+".upserted "+ev.GetId(), ev.GetContext().GetRevision()
		case *eventsv1.ResourceDeleted:
			c.what, c.rev = kindName(ev.GetKind())+".deleted "+ev.GetId(), ev.GetContext().GetRevision()
		default:
			t.Fatalf("unexpected payload %T on %s", p, m.Subject())
		}
		out = append(out, c)
	}
	return out
}

func kindName(k eventsv1.ResourceKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "RESOURCE_KIND_"))
}

func whats(cs []change) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.what)
	}
	sort.Strings(out)
	return out
}

func countPrefix(cs []change, prefix string) int {
	n := 0
	for _, c := range cs {
		if strings.HasPrefix(c.what, prefix) {
			n++
		}
	}
	return n
}

func sameSet(t *testing.T, label string, got, want []string) {
	t.Helper()
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		var missing, extra []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				missing = append(missing, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				extra = append(extra, g)
			}
		}
		t.Fatalf("%s: got %d events, want %d\nmissing: %v\nextra: %v", label, len(got), len(want), missing, extra)
	}
}

// TestFirstSyncThenUnchangedResync: the first sync publishes every resource
// and grant once, with run.completed; a second sync of the unchanged org
// publishes nothing and re-lists no group's members.
func TestFirstSyncThenUnchangedResync(t *testing.T) {
	e := newEnv(t)
	runs := testkit.Record(t, e.js, "SYNC", "sync.c1.run.>", true)
	sum := e.run.Org.Summary()

	start := time.Now()
	rep := e.mustSync(t, syncOpts{})
	first := time.Since(start)
	evs := e.newEvents(t)
	t.Logf("first sync: %d events in %s, %d API calls", len(evs), first, total(rep.APICalls))

	checks := []struct {
		prefix string
		want   int
	}{
		{"user.upserted ", sum.Users},
		{"group.upserted ", sum.Groups},
		{"app.upserted ", sum.Apps},
		{"grant.added group_membership/", sum.Memberships},
		{"grant.added app_assignment/", sum.AppUsers + sum.AppGroups},
		{"grant.removed ", 0},
		{"user.deleted ", 0},
	}
	for _, c := range checks {
		if got := countPrefix(evs, c.prefix); got != c.want {
			t.Errorf("%q: got %d events, want %d", c.prefix, got, c.want)
		}
	}
	if countPrefix(evs, "grant.added role_assignment/") == 0 || countPrefix(evs, "standard_role.upserted ") == 0 {
		t.Errorf("a super admin token's sync published no roles")
	}
	ids := map[string]bool{}
	for _, c := range evs {
		if ids[c.msgID] {
			t.Fatalf("message id %s twice", c.msgID)
		}
		ids[c.msgID] = true
		if c.rev == 0 {
			t.Fatalf("%s has revision 0", c.what)
		}
	}
	if len(rep.Skipped) != 3 { // custom roles, resource sets, bindings: option off
		t.Errorf("skipped %v, want only the custom role parts", rep.Skipped)
	}
	if rep.Resources[eventsv1.ResourceKind_RESOURCE_KIND_USER].Added != int64(sum.Users) {
		t.Errorf("report counts %+v users added, want %d", rep.Resources[eventsv1.ResourceKind_RESOURCE_KIND_USER], sum.Users)
	}

	msgs := runs.WaitFor(t, 2, 5*time.Second)
	if msgs[0].Subject() != "sync.c1.run.started" || msgs[1].Subject() != "sync.c1.run.completed" {
		t.Fatalf("run events %s, %s", msgs[0].Subject(), msgs[1].Subject())
	}
	var done eventsv1.SyncRunCompleted
	if err := proto.Unmarshal(msgs[1].Data(), &done); err != nil {
		t.Fatal(err)
	}
	if done.GetLastAccessSequence() != uint64(len(evs)) || len(done.GetApiCalls()) == 0 || !done.GetCapabilities().GetReviewRoles() {
		t.Errorf("run.completed: last sequence %d (want %d), api calls %v, capabilities %v",
			done.GetLastAccessSequence(), len(evs), done.GetApiCalls(), done.GetCapabilities())
	}

	start = time.Now()
	rep2 := e.mustSync(t, syncOpts{})
	t.Logf("unchanged resync: %s, %d API calls %v (incremental %v, %s)", time.Since(start), total(rep2.APICalls), rep2.APICalls, rep2.Incremental, rep2.FullReadReason)
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("unchanged org: %d events, first %v", len(evs), whats(evs)[:min(5, len(evs))])
	}
	if rep2.Unchanged != sum.Groups {
		t.Errorf("smart resync skipped %d groups' members, want all %d", rep2.Unchanged, sum.Groups)
	}
	if !rep2.Incremental || 4*total(rep2.APICalls) > total(rep.APICalls) {
		t.Errorf("resync (incremental %v: %s) made %d calls, first sync %d: want at most 25%%",
			rep2.Incremental, rep2.FullReadReason, total(rep2.APICalls), total(rep.APICalls))
	}
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// orgView reads what the test needs to pick objects, through the API.
type orgView struct {
	users      []okta.User
	groups     []okta.Group
	members    map[string][]string
	apps       []okta.App
	appUsers   map[string][]okta.AppUser
	appGroups  map[string][]okta.AppGroup
	groupRoles map[string]int
}

func (e *env) view(t *testing.T) *orgView {
	t.Helper()
	ctx := context.Background()
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	v := &orgView{members: map[string][]string{}, appUsers: map[string][]okta.AppUser{}, appGroups: map[string][]okta.AppGroup{}, groupRoles: map[string]int{}}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.ListUsers(ctx, okta.ListUsersOptions{IncludeDeprovisioned: true}, func(us []okta.User) error { v.users = append(v.users, us...); return nil }))
	must(c.ListGroups(ctx, okta.ListGroupsOptions{ExpandStats: true}, func(gs []okta.Group) error { v.groups = append(v.groups, gs...); return nil }))
	for _, g := range v.groups {
		must(c.ListGroupMembers(ctx, g.ID, func(us []okta.User) error {
			for _, u := range us {
				v.members[g.ID] = append(v.members[g.ID], u.ID)
			}
			return nil
		}))
		rs, err := c.ListGroupRoles(ctx, g.ID)
		must(err)
		v.groupRoles[g.ID] = len(rs)
	}
	must(c.ListApps(ctx, okta.ListAppsOptions{IncludeInactive: true}, func(as []okta.App) error { v.apps = append(v.apps, as...); return nil }))
	for _, a := range v.apps {
		must(c.ListAppUsers(ctx, a.ID, func(p []okta.AppUser) error { v.appUsers[a.ID] = append(v.appUsers[a.ID], p...); return nil }))
		must(c.ListAppGroups(ctx, a.ID, func(p []okta.AppGroup) error { v.appGroups[a.ID] = append(v.appGroups[a.ID], p...); return nil }))
	}
	return v
}

// quietGroups are OKTA_GROUPs with members, no app assignment and no role:
// changing their members changes nothing else.
func (v *orgView) quietGroups() []okta.Group {
	var out []okta.Group
	for _, g := range v.groups {
		if g.Type == "OKTA_GROUP" && g.AppsCount != nil && *g.AppsCount == 0 && v.groupRoles[g.ID] == 0 && len(v.members[g.ID]) > 1 {
			out = append(out, g)
		}
	}
	return out
}

// loneUsers are ACTIVE users with no app assignment, in no group but Everyone.
func (v *orgView) loneUsers() []okta.User {
	inApps := map[string]bool{}
	for _, aus := range v.appUsers {
		for _, au := range aus {
			inApps[au.UserID] = true
		}
	}
	groups := map[string]int{}
	for _, ms := range v.members {
		for _, u := range ms {
			groups[u]++
		}
	}
	var out []okta.User
	for _, u := range v.users {
		if u.Status == "ACTIVE" && !inApps[u.ID] && groups[u.ID] <= 1 {
			out = append(out, u)
		}
	}
	return out
}

// TestChangesBetweenSyncs: each kind of change in the org between two syncs
// produces exactly its events and nothing else, removals before deletion.
func TestChangesBetweenSyncs(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	org := e.run.Org

	quiet := v.quietGroups()
	lone := v.loneUsers()
	if len(quiet) < 3 || len(lone) < 3 {
		t.Fatalf("small org: %d quiet groups, %d lone users", len(quiet), len(lone))
	}
	var want []string
	// Add a member.
	gAdd, uAdd := quiet[0], lone[0]
	mustOK(t)(org.AddMember(e.actor(), gAdd.ID, uAdd.ID))
	want = append(want, "grant.added group_membership/"+gAdd.ID+"/"+uAdd.ID, "group.upserted "+gAdd.ID)
	// Remove a member.
	gRm := quiet[1]
	uRm := v.members[gRm.ID][0]
	mustOK(t)(org.RemoveMember(e.actor(), gRm.ID, uRm))
	want = append(want, "grant.removed group_membership/"+gRm.ID+"/"+uRm, "group.upserted "+gRm.ID)
	// Suspend a user.
	uSus := lone[1]
	if err := org.SetUserStatus(e.actor(), uSus.ID, "SUSPENDED"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "user.upserted "+uSus.ID)
	// Rename a group.
	gRen := quiet[2]
	if err := org.UpdateGroup(e.actor(), gRen.ID, gRen.Name+" renamed", gRen.Description); err != nil {
		t.Fatal(err)
	}
	want = append(want, "group.upserted "+gRen.ID)
	// Assign an app to a user directly.
	app := v.apps[0]
	uApp := lone[2]
	mustOK(t)(org.AssignUserToApp(e.actor(), app.ID, uApp.ID, nil))
	want = append(want, "grant.added app_assignment/"+app.ID+"/user/"+uApp.ID)
	// Unassign a user assigned only directly.
	var unApp, unUser string
	for _, a := range v.apps {
		for _, au := range v.appUsers[a.ID] {
			if au.Scope == "USER" && unUser == "" && a.ID != app.ID {
				unApp, unUser = a.ID, au.UserID
			}
		}
	}
	mustOK(t)(org.UnassignUserFromApp(e.actor(), unApp, unUser))
	still := false
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	_ = c.ListAppUsers(context.Background(), unApp, func(p []okta.AppUser) error {
		for _, au := range p {
			still = still || au.UserID == unUser
		}
		return nil
	})
	if still { // inherited through a group: the assignment changes scope
		want = append(want, "grant.added app_assignment/"+unApp+"/user/"+unUser)
	} else {
		want = append(want, "grant.removed app_assignment/"+unApp+"/user/"+unUser)
	}
	// Delete a group: each membership removed, then the group.
	gDel := quiet[3%len(quiet)]
	if len(quiet) > 3 {
		gDel = quiet[3]
	}
	for _, u := range v.members[gDel.ID] {
		if gDel.ID == gRm.ID && u == uRm {
			continue
		}
		want = append(want, "grant.removed group_membership/"+gDel.ID+"/"+u)
	}
	if gDel.ID == gAdd.ID {
		want = append(want, "grant.removed group_membership/"+gDel.ID+"/"+uAdd.ID)
	}
	if err := org.DeleteGroup(e.actor(), gDel.ID); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(s string) bool {
		return s == "group.upserted "+gDel.ID || s == "grant.added group_membership/"+gDel.ID+"/"+uAdd.ID
	})
	want = append(want, "group.deleted "+gDel.ID)

	rep := e.mustSync(t, syncOpts{})
	evs := e.newEvents(t)
	sameSet(t, "changes", whats(evs), want)
	// Order: every membership of the deleted group is removed before it.
	deleted := slices.IndexFunc(evs, func(c change) bool { return c.what == "group.deleted "+gDel.ID })
	for i, c := range evs {
		if strings.HasPrefix(c.what, "grant.removed group_membership/"+gDel.ID+"/") && i > deleted {
			t.Fatalf("%s after the group's deletion", c.what)
		}
	}
	if want := len(v.groups) - 4; rep.Unchanged < want {
		t.Errorf("smart resync skipped %d groups, want at least %d", rep.Unchanged, want)
	}
	// A third sync finds nothing more.
	e.mustSync(t, syncOpts{})
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("third sync published %v", whats(evs))
	}
}

func mustOK(t *testing.T) func(changed bool, err error) {
	return func(changed bool, err error) {
		t.Helper()
		if err != nil || !changed {
			t.Fatalf("org change: changed %v, error %v", changed, err)
		}
	}
}

// crashingPublisher lets publishes through until at least n were stored
// and one that crashOn accepts was, then cancels the run's context, as if
// the process died right after that ack: the event's container is not
// written.
type crashingPublisher struct {
	next    changes.Publisher
	n       int64
	crashOn func(proto.Message) bool
	cancel  context.CancelFunc

	mu      sync.Mutex
	count   int64
	crashed bool
	last    proto.Message
	batches int
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
	if err != nil {
		return ack, err
	}
	p.count++
	if p.count >= p.n && p.crashOn(payload) {
		p.crashed, p.last = true, payload
		p.cancel()
	}
	return ack, nil
}

// crashingBatcher publishes fast batches through a bus until at least n
// access events were sent and one that crashOn accepts was, then cancels
// the run's context in the middle of the batch, as if the process died
// there: part of the batch is stored, its containers are not written.
type crashingBatcher struct {
	crashingPublisher
	bus *bus.Bus
}

func (p *crashingBatcher) PublishAsync(ctx context.Context, subject, msgID string, payload proto.Message) (jetstream.PubAckFuture, error) {
	return p.bus.PublishAsync(ctx, subject, msgID, payload)
}

func (p *crashingBatcher) PublishBatch(ctx context.Context, events iter.Seq[bus.Event]) (bus.BatchResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.crashed {
		return bus.BatchResult{}, context.Canceled
	}
	p.batches++
	return p.bus.PublishBatch(ctx, func(yield func(bus.Event) bool) {
		for ev := range events {
			if !yield(ev) {
				return
			}
			p.count++
			if p.count >= p.n && p.crashOn(ev.Payload) {
				p.crashed, p.last = true, ev.Payload
				p.cancel()
			}
		}
	})
}

// TestCrashMidSyncLosesAndDuplicatesNothing: a sync killed right after an
// ack, then run again, leaves the ACCESS stream with each change exactly
// once, the same changes as a sync that was never interrupted. When the
// change whose container was not yet written is undone in Okta before the
// rerun, the rerun first finishes the journaled commit and then removes it:
// the published grant is not left dangling.
func TestCrashMidSyncLosesAndDuplicatesNothing(t *testing.T) {
	ref := newEnv(t)
	ref.mustSync(t, syncOpts{})
	want := whats(ref.newEvents(t))
	// The membership to undo is in an Okta group assigned to no app: undoing
	// a membership that gives app access would also take that access away,
	// and whether its grant was published before the crash depends on the
	// order in which concurrent commits happened to run.
	v := ref.view(t)
	withApps := map[string]bool{}
	for _, ags := range v.appGroups {
		for _, ag := range ags {
			withApps[ag.GroupID] = true
		}
	}
	okGroups := map[string]bool{}
	for _, g := range v.groups {
		okGroups[g.ID] = g.Type == "OKTA_GROUP" && !withApps[g.ID]
	}
	anything := func(proto.Message) bool { return true }
	okMembership := func(m proto.Message) bool {
		// The payload may encode itself (bus.WireAppender); its message
		// is what it reflects.
		ga, ok := m.ProtoReflect().Interface().(*eventsv1.GrantAdded)
		return ok && okGroups[ga.GetGrant().GetGroupMembership().GetGroupId()]
	}
	cases := []struct {
		name    string
		n       int64
		crashOn func(proto.Message) bool
		undo    bool
		// batch: the sync publishes fast batches and dies in the middle
		// of one.
		batch bool
	}{
		{"first ack", 1, anything, false, false},
		{"membership then undone", 150, okMembership, true, false},
		{"last but one ack", int64(len(want)) - 1, anything, false, false},
		{"mid-batch", 40, anything, false, true},
		{"mid-batch membership then undone", 150, okMembership, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b := &crashingBatcher{crashingPublisher: crashingPublisher{next: e.bus, n: tc.n, crashOn: tc.crashOn, cancel: cancel}, bus: e.bus}
			pub := &b.crashingPublisher
			var sp changes.Publisher = pub
			if tc.batch {
				sp = b
			}
			_, err := e.sync(ctx, t, syncOpts{pub: sp})
			var f *fullsync.Failure
			if !errors.As(err, &f) || f.Reason != eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_CANCELLED {
				t.Fatalf("crashed sync returned %v", err)
			}
			before := e.newEvents(t)
			exp := slices.Clone(want)
			if tc.undo {
				g := pub.last.ProtoReflect().Interface().(*eventsv1.GrantAdded).GetGrant()
				gid := g.GetGroupMembership().GetGroupId()
				mustOK(t)(e.run.Org.RemoveMember(e.actor(), gid, g.GetPrincipal().GetId()))
				exp = append(exp, "grant.removed "+g.GetKey(), "group.upserted "+gid)
			}

			e.mustSync(t, syncOpts{})
			all := append(before, e.newEvents(t)...)
			ids := map[string]bool{}
			for _, c := range all {
				if ids[c.msgID] {
					t.Fatalf("message id of %s stored twice", c.what)
				}
				ids[c.msgID] = true
			}
			sameSet(t, "after crash and rerun", whats(all), exp)
			if tc.batch && (pub.batches == 0 || pub.last == nil) {
				t.Fatalf("the sync published %d fast batches and crashed on %v: the batch path was not exercised", pub.batches, pub.last)
			}
			t.Logf("%d events before the crash, %d in all", len(before), len(all))
		})
	}
}

func groupOf(t *testing.T, e *env, id string) okta.Group {
	t.Helper()
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	var out okta.Group
	_ = c.ListGroups(context.Background(), okta.ListGroupsOptions{}, func(gs []okta.Group) error {
		for _, g := range gs {
			if g.ID == id {
				out = g
			}
		}
		return nil
	})
	return out
}

// TestReadOnlyTokenSkipsRolesAndRemovesNone: after a super admin's sync, a
// read-only token cannot read roles: the run says so by name and removes
// no role assignment and no role.
func TestReadOnlyTokenSkipsRolesAndRemovesNone(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	rep := e.mustSync(t, syncOpts{token: e.run.Tokens.ReadOnlyAdmin})
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("read-only sync published %v", whats(evs))
	}
	var parts []string
	for _, s := range rep.Skipped {
		if s.GetReason() == eventsv1.SkippedPart_REASON_MISSING_CAPABILITY {
			parts = append(parts, s.GetPart())
		}
	}
	if !slices.Equal(parts, []string{"role_assignment", "standard_role"}) {
		t.Fatalf("skipped for missing capability %v", parts)
	}
	if rep.Capabilities.ReviewRoles || !rep.Capabilities.ReviewGroupMembership {
		t.Fatalf("capabilities %+v", rep.Capabilities)
	}
}

// failingGroup answers 503 for the members of one group.
type failingGroup struct {
	group string
	base  http.RoundTripper
	mu    sync.Mutex
	hits  int
}

func (f *failingGroup) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/api/v1/groups/"+f.group+"/users" && !strings.Contains(r.URL.RawQuery, "limit=1&") && r.URL.Query().Get("limit") != "1" {
		f.mu.Lock()
		f.hits++
		f.mu.Unlock()
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
			Body: http.NoBody, Request: r}, nil
	}
	return f.base.RoundTrip(r)
}

// orderedCalls numbers the start and the end of each call to Okta.
type orderedCalls struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
	// first group roles call started, last group members call ended
	firstRoles, lastMembers, roles, members int
}

func (o *orderedCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	isGroup := strings.HasPrefix(p, "/api/v1/groups/")
	if isGroup && strings.HasSuffix(p, "/roles") {
		o.mu.Lock()
		o.n++
		o.roles++
		if o.firstRoles == 0 {
			o.firstRoles = o.n
		}
		o.mu.Unlock()
	}
	resp, err := o.base.RoundTrip(r)
	if isGroup && strings.HasSuffix(p, "/users") {
		o.mu.Lock()
		o.n++
		o.members++
		o.lastMembers = o.n
		o.mu.Unlock()
	}
	return resp, err
}

// TestGroupRolesReadAfterMembers: the groups' members, which the app
// assignment containers wait for, take the groups bucket before the
// groups' roles, which nothing waits for, so that no app's assignments are
// left for the end of a run.
func TestGroupRolesReadAfterMembers(t *testing.T) {
	e := newEnv(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	e.transports = append(e.transports, base)
	rt := &orderedCalls{base: base}
	e.mustSync(t, syncOpts{rt: rt})
	if rt.roles == 0 || rt.members == 0 {
		t.Fatalf("%d group roles calls, %d group members calls: the org must have both", rt.roles, rt.members)
	}
	if rt.firstRoles < rt.lastMembers {
		t.Fatalf("the first group roles call (#%d) started before the last group members call ended (#%d)", rt.firstRoles, rt.lastMembers)
	}
}

// TestFailedPartRemovesNothing: when a group's members cannot be read
// (5xx), the run completes, names the part, and removes none of its
// memberships; a later healthy run publishes the real removal.
func TestFailedPartRemovesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	g := v.quietGroups()[0]
	u := v.members[g.ID][0]
	mustOK(t)(e.run.Org.RemoveMember(e.actor(), g.ID, u))

	base := http.DefaultTransport.(*http.Transport).Clone()
	e.transports = append(e.transports, base)
	rt := &failingGroup{group: g.ID, base: base}
	rep := e.mustSync(t, syncOpts{rt: rt})
	if rt.hits == 0 {
		t.Fatal("the fault was never hit")
	}
	sameSet(t, "with the group unreadable", whats(e.newEvents(t)), []string{"group.upserted " + g.ID})
	if !slices.ContainsFunc(rep.Skipped, func(s *eventsv1.SkippedPart) bool { return s.GetPart() == "group/"+g.ID+"/members" }) {
		t.Fatalf("skipped %v, want group/%s/members", rep.Skipped, g.ID)
	}

	e.mustSync(t, syncOpts{})
	sameSet(t, "healthy again", whats(e.newEvents(t)), []string{"grant.removed group_membership/" + g.ID + "/" + u})
}

// TestInvalidTokenFails: a wrong token fails the run with INVALID_TOKEN and
// run.failed, and publishes no access event.
func TestInvalidTokenFails(t *testing.T) {
	e := newEnv(t)
	runs := testkit.Record(t, e.js, "SYNC", "sync.c1.run.>", true)
	_, err := e.sync(context.Background(), t, syncOpts{token: "not-a-token"})
	var f *fullsync.Failure
	if !errors.As(err, &f) || f.Reason != eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_INVALID_TOKEN {
		t.Fatalf("got %v, want INVALID_TOKEN", err)
	}
	msgs := runs.WaitFor(t, 2, 5*time.Second)
	if msgs[1].Subject() != "sync.c1.run.failed" {
		t.Fatalf("second run event on %s", msgs[1].Subject())
	}
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("failed run published %v", whats(evs))
	}
}

// TestOptionsFilterEveryGrant: UserDomains and SkipAppGroups drop users and
// APP_GROUP groups with every grant they hold; turning a filter on later
// removes the grants before the resources.
func TestOptionsFilterEveryGrant(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	all := e.newEvents(t)
	v := e.view(t)
	// Keep the domain of the first user only.
	first := v.users[0]
	domain := first.Login[strings.LastIndexByte(first.Login, '@')+1:]
	opts := fullsync.DefaultOptions()
	opts.UserDomains = []string{domain}
	opts.SkipAppGroups = true
	// Narrowing the scope removes most grants: past the removal guard.
	opts.RemovalThreshold = 1
	e.mustSync(t, syncOpts{opts: &opts})
	evs := e.newEvents(t)
	keep := map[string]bool{}
	for _, u := range v.users {
		if strings.HasSuffix(strings.ToLower(u.Login), "@"+domain) || strings.HasSuffix(strings.ToLower(u.Email), "@"+domain) {
			keep[u.ID] = true
		}
	}
	if len(keep) == len(v.users) {
		t.Skip("every user of the small org shares one domain")
	}
	appGroups := map[string]bool{}
	for _, g := range v.groups {
		appGroups[g.ID] = g.Type == "APP_GROUP"
	}
	deletedAt := map[string]int{}
	for i, c := range evs {
		if strings.HasPrefix(c.what, "user.deleted ") {
			deletedAt[strings.TrimPrefix(c.what, "user.deleted ")] = i
		}
	}
	for i, c := range evs {
		if c.grant == nil || c.grant.GetPrincipal().GetType() != eventsv1.PrincipalType_PRINCIPAL_TYPE_USER {
			continue
		}
		uid := c.grant.GetPrincipal().GetId()
		if gm := c.grant.GetGroupMembership(); gm != nil && appGroups[gm.GetGroupId()] {
			continue // the group left the scope
		}
		if keep[uid] && !c.attrs {
			t.Fatalf("kept user's grant changed: %s", c.what)
		}
		if d, ok := deletedAt[uid]; ok && i > d {
			t.Fatalf("%s after the user's deletion", c.what)
		}
	}
	if len(deletedAt) != len(v.users)-len(keep) {
		t.Fatalf("%d users deleted, want %d", len(deletedAt), len(v.users)-len(keep))
	}
	_ = all
}

// failingApps answers 503 for the apps list once read is closed.
type failingApps struct {
	base http.RoundTripper
	hits atomic.Int64
	read chan struct{}
}

// firstEvent closes stored once the first access event is stored.
type firstEvent struct {
	next   changes.Publisher
	stored chan struct{}
	once   sync.Once
}

func (p *firstEvent) Publish(ctx context.Context, subject, msgID string, payload proto.Message) (*jetstream.PubAck, error) {
	ack, err := p.next.Publish(ctx, subject, msgID, payload)
	if err == nil && strings.HasPrefix(subject, "access.") {
		p.once.Do(func() { close(p.stored) })
	}
	return ack, err
}

func (f *failingApps) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/api/v1/apps" && r.URL.Query().Get("limit") != "1" { // not the capability probe
		select {
		case <-f.read:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		f.hits.Add(1)
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
			Body: http.NoBody, Request: r}, nil
	}
	return f.base.RoundTrip(r)
}

// TestFailedListRemovesNothing: a run whose apps list fails after it
// committed some of what it read fails, and publishes no removal; the next
// healthy run publishes every change exactly once.
func TestFailedListRemovesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{})
	e.newEvents(t)
	v := e.view(t)
	quiet, lone := v.quietGroups(), v.loneUsers()
	gAdd, uAdd, gRm := quiet[0], lone[0], quiet[1]
	uRm := v.members[gRm.ID][0]
	mustOK(t)(e.run.Org.AddMember(e.actor(), gAdd.ID, uAdd.ID))
	mustOK(t)(e.run.Org.RemoveMember(e.actor(), gRm.ID, uRm))
	want := []string{"grant.added group_membership/" + gAdd.ID + "/" + uAdd.ID, "group.upserted " + gAdd.ID,
		"grant.removed group_membership/" + gRm.ID + "/" + uRm, "group.upserted " + gRm.ID}

	base := http.DefaultTransport.(*http.Transport).Clone()
	e.transports = append(e.transports, base)
	// The apps list fails once the run has committed something of what it
	// read: the addition (the removal waits for the end of the read).
	pub := &firstEvent{next: e.bus, stored: make(chan struct{})}
	rt := &failingApps{base: base, read: pub.stored}
	full := fullsync.DefaultOptions()
	full.FullResyncEvery = -1 // a full read, which commits while it reads
	if _, err := e.sync(context.Background(), t, syncOpts{rt: rt, pub: pub, opts: &full}); err == nil || rt.hits.Load() == 0 {
		t.Fatalf("sync with the apps list failing: %v after %d failed calls", err, rt.hits.Load())
	}
	before := e.newEvents(t)
	if len(before) == 0 {
		t.Fatal("the failed run committed nothing before it failed")
	}
	for _, c := range before {
		if strings.Contains(c.what, ".removed ") || strings.Contains(c.what, ".deleted ") {
			t.Fatalf("failed run published %s", c.what)
		}
	}
	t.Logf("the failed run published %v", whats(before))
	e.mustSync(t, syncOpts{})
	all := append(before, e.newEvents(t)...)
	ids := map[string]bool{}
	for _, c := range all {
		if ids[c.msgID] {
			t.Fatalf("message id of %s stored twice", c.what)
		}
		ids[c.msgID] = true
	}
	sameSet(t, "failed run then healthy run", whats(all), want)
}
