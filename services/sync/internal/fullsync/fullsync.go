// Package fullsync reads everything a connector's token may read from an
// Okta org, compares it with the connector's last-known state and publishes
// the differences (package changes), one container at a time.
//
// A run has five steps:
//
//  1. load the connector's state and finish any commit a previous run
//     journaled but did not complete (changes.Committer.Recover);
//  2. probe the token's capabilities, then read the org, in full or
//     incrementally (below), concurrently per bucket: users; groups and the
//     members of each group; apps and the user and group assignments of
//     each app; when the token may review roles, the role assignments of
//     users and groups; and, with Options.SyncCustomRoles, custom roles
//     (with their permissions), resource sets (with their resources) and
//     the members of their bindings. Per-container lists run with bounded
//     concurrency; the rate budget paces every call. A full read commits
//     while it reads (stream.go): each container that only gains or
//     changes grants, or is a resource, is committed as soon as what it
//     depends on is read, in batches sharing one journal entry
//     (changes.Committer.CommitBatch), so that the commit overlaps the
//     read the rate limits make long;
//  3. work out every container still to write (those that lose a grant,
//     and in an incremental run all of them) and every container gone:
//     grant containers of groups, apps, users and resource sets gone from
//     the org or from the connector's scope, then the resources themselves;
//  4. apply the removal guard (below), then commit: the containers still
//     to write, then the gone grant containers (their GrantRemoved events),
//     then the gone resources (ResourceDeleted), so that a resource's
//     grants are always removed before it;
//  5. record the run's watermark for the next incremental read.
//
// Deletion safety: a part the token may not read is skipped by name and
// never produces removals; a container whose read failed (403, 404, 5xx)
// is left as it was. A failing users, groups or apps list fails the run
// before anything is removed (what a full read committed while reading
// adds or updates only). Custom roles, resource sets and bindings are
// removed only when every list of that part was read. No removal is
// published before the whole read is in: the removal guard sees them all.
//
// Removal guard: a run counts the grant removals it would publish (grants
// gone from a container, and every grant of a container gone with its
// group, app, user or resource set). When they are more than
// Options.RemovalThreshold (default 20%) of the grants the connector's
// state holds, the run still publishes every addition and update but holds
// every removal: each container keeps its removed grants (so state and the
// bus agree), no gone container or resource is deleted, and the report and
// run.completed say removals_held with the count (grant removals plus
// resource deletions). A held members container loses its
// lastMembershipUpdated marker, and a run that held removals leaves no
// watermark, so the next run reads in full and computes the same removals
// again; a run with Connector.ConfirmRemovals set (what accessbus sync
// confirm-removals starts) reads in full and bypasses the guard, publishing
// exactly the removals still true in Okta. Holding is all or nothing: a
// person confirms one decision, not a selection.
//
// Incremental resync. A run reads in full when there is no watermark (the
// Okta time, from the Date header of the capability probe, at which the
// last successful run began), when options or capabilities changed, when
// the last full read is older than Options.FullResyncAfter (default 24 h),
// after Options.FullResyncEvery incremental runs (default 24), when
// confirming removals, or when the last run held removals. Otherwise it
// reads, from since = watermark - Options.ResyncMargin (default 5 min):
//
//   - users with lastUpdated after since (filter), keeping the other stored
//     users as they are; a user whose domain scope flipped makes it read
//     in full instead;
//   - the full groups list (one page up to 10,000: it shows deletions and
//     every lastMembershipUpdated) and the full apps list;
//   - the System Log between since and Okta's now, filtered on the
//     governance event types (user lifecycle, user and group privileges,
//     group.*, application.*, iam.*): deleted users, apps named by any
//     event, users and groups whose roles changed, custom role changes;
//   - members of groups whose lastMembershipUpdated moved (as a full read);
//   - assignments of apps that are new, named in the log, or assigned to a
//     group whose members changed or that is gone;
//   - the role assignee list; roles of groups new or named in the log, and
//     of assignees new (their container lacks the assignee marker), named
//     in the log, re-listed, or members (before or now) of a group whose
//     roles or, for a group holding roles, members changed; users no
//     longer assignees hold no role, without a call;
//   - custom roles, resource sets and bindings again only after an iam.*
//     event or a user or group deletion.
//
// A System Log or assignee list that cannot be read (403 or any error)
// turns the run into a full read (Report.FullReadReason says why).
// Deletions still produce their removals: a deleted group or app leaves
// its list, a deleted user is named by user.lifecycle.delete.initiated.
// An unchanged small org costs 15 calls against 124 for its first sync, a
// medium one 15 against 2,538.
//
// A user's role container is written only once it holds a role or the
// assignee marker: the empty one every other user would have means the
// same as none, and was most of a first sync's state writes.
//
// Cost of roles: Okta has no "list every role assignment" call, so
// reviewing roles lists the role assignees (/iam/assignees/users), then
// reads the roles of each assignee and of every group, one call each in
// the "every other path" bucket: a few calls for the admins, one per group.
package fullsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/subjects"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Concurrency of per-container reads and of commits. The rate budget, not
// these, bounds the request rate; they only keep enough work in flight.
const (
	groupReaders = 16
	appReaders   = 16
	roleReaders  = 16
	committers   = 16
)

// Deps are what Run needs.
type Deps struct {
	// Okta calls the connector's org.
	Okta *okta.Client
	// Bus publishes the events; *bus.Bus in production.
	Bus changes.Publisher
	// State holds every connector's last-known state.
	State *state.Store
	// Budget, when set, is the rate budget Okta uses; its counters give the
	// run's API calls per bucket (counted across every run sharing it).
	Budget *ratelimit.Budget
	// Log receives the run's log; nil discards it.
	Log *slog.Logger
}

// Options are the connector's sync options.
type Options struct {
	// SyncInactiveApps syncs INACTIVE apps too. DefaultOptions sets it, as
	// connectors do by default; the zero Options do not.
	SyncInactiveApps bool
	// SkipAppGroups drops APP_GROUP groups (imported from apps such as
	// Active Directory), their memberships and their app assignments.
	SkipAppGroups bool
	// UserDomains, when not empty, keeps only users whose email or login
	// domain is listed (case-insensitive), and every grant of the others
	// (memberships, app assignments, roles) with them.
	UserDomains []string
	// SyncCustomRoles syncs custom admin roles (with their permissions),
	// resource sets (with their resources), the members of their bindings
	// and CUSTOM role assignments, when the token may review roles.
	SyncCustomRoles bool
	// ResyncMargin is how far before the last run's start an incremental
	// run looks; 0 means DefaultResyncMargin.
	ResyncMargin time.Duration
	// FullResyncAfter is the longest time since the last full read after
	// which a run reads in full again; 0 means DefaultFullResyncAfter.
	FullResyncAfter time.Duration
	// FullResyncEvery is how many incremental runs may follow a full one;
	// 0 means DefaultFullResyncEvery, negative turns incremental runs off.
	FullResyncEvery int
	// RemovalThreshold is the share of the connector's grants a run may
	// remove without a person's confirmation (the removal guard); 0 or less
	// means DefaultRemovalThreshold, 1 or more never holds.
	RemovalThreshold float64
}

// DefaultOptions are a new connector's options.
func DefaultOptions() Options { return Options{SyncInactiveApps: true} }

// Connector is the connector to sync.
type Connector struct {
	// ID is the connector id.
	ID string
	// Options are its sync options.
	Options Options
	// RunID names the run; default the connector id and the start time.
	RunID string
	// RequestID is the SyncRequest behind the run, if any.
	RequestID string
	// ConfirmRemovals bypasses the removal guard for this run: a person
	// confirmed that the removals a previous run held are real (accessbus
	// sync confirm-removals), so every removal this run finds is published.
	ConfirmRemovals bool
}

// Report is what a run did.
type Report struct {
	// RunID names the run.
	RunID string
	// Started and Finished bound the run.
	Started, Finished time.Time
	// Capabilities are the token's, as probed.
	Capabilities okta.Capabilities
	// Resources and Grants count what was read and published, per kind.
	Resources map[eventsv1.ResourceKind]changes.Counts
	Grants    map[eventsv1.GrantKind]changes.Counts
	// Skipped are the parts not read, by name, and why.
	Skipped []*eventsv1.SkippedPart
	// Unchanged counts the containers not re-listed because Okta says they
	// did not change (smart resync).
	Unchanged int
	// RemovalsHeld says the removal guard held this run's removals back;
	// RemovalsHeldCount is how many: grant removals plus resource
	// deletions.
	RemovalsHeld      bool
	RemovalsHeldCount int64
	// Incremental says the run read only what changed since the last one
	// (see the package doc); FullReadReason says why it read in full.
	Incremental    bool
	FullReadReason string
	// Published counts the events published (republished ones included).
	Published int64
	// LastAccessSequence is the ACCESS sequence of the last event stored.
	LastAccessSequence uint64
	// APICalls and HTTP429 are the budget's counts for the run, per bucket.
	APICalls map[string]int64
	HTTP429  int64
}

// Run syncs one connector in full and publishes sync.<c>.run.started, then
// run.completed or run.failed. A failed run returns a *Failure.
func Run(ctx context.Context, d Deps, c Connector) (Report, error) {
	if err := subjects.ValidateConnectorID(c.ID); err != nil {
		return Report{}, fmt.Errorf("full sync: %w: %w", ErrInvalidConnector, err)
	}
	if d.Okta == nil || d.Bus == nil || d.State == nil {
		return Report{}, fmt.Errorf("full sync of %s: Okta, Bus and State are required: %w", c.ID, ErrInvalidConnector)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	if c.RunID == "" {
		c.RunID = c.ID + "-" + started.UTC().Format("20060102T150405.000000000Z")
	}
	r := &runner{
		d: d, c: c, log: d.Log.With("connector", c.ID, "run", c.RunID),
		com:    changes.New(d.Bus, d.State, c.ID, c.RunID, eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC),
		report: Report{RunID: c.RunID, Started: started},
	}
	var before map[string]ratelimit.BucketStats
	if d.Budget != nil {
		before = d.Budget.Stats()
	}
	if err := r.publishStarted(ctx); err != nil {
		return r.report, classify(err)
	}
	err := r.run(ctx)
	r.report.Finished = time.Now()
	r.report.Resources = r.com.ResourceCounts()
	r.report.Grants = r.com.GrantCounts()
	r.report.Published = r.com.Published()
	r.report.LastAccessSequence = r.com.LastSequence()
	if d.Budget != nil {
		r.report.APICalls, r.report.HTTP429 = callsSince(before, d.Budget.Stats())
	}
	if err != nil {
		f := classify(fmt.Errorf("full sync of %s: %w", c.ID, err))
		r.log.Warn("full sync failed", "reason", f.Reason.String(), "error", f.Err)
		// The run's context may be what stopped it; the failure is still told.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if perr := r.publishFailed(pctx, f); perr != nil {
			r.log.Error("publish run.failed", "error", perr)
		}
		return r.report, f
	}
	if err := r.publishCompleted(ctx); err != nil {
		return r.report, classify(err)
	}
	r.log.Info("full sync completed", "published", r.report.Published, "unchanged", r.report.Unchanged,
		"skipped", len(r.report.Skipped), "duration", r.report.Finished.Sub(started))
	return r.report, nil
}

func callsSince(before, after map[string]ratelimit.BucketStats) (map[string]int64, int64) {
	calls := map[string]int64{}
	var n429 int64
	for b, s := range after {
		p := before[b]
		if n := s.Acquired - p.Acquired; n > 0 {
			calls[b] = n
		}
		n429 += (s.RateLimited - p.RateLimited) + (s.ConcurrencyLimited - p.ConcurrencyLimited)
	}
	return calls, n429
}

// runner is one run's working state.
type runner struct {
	d    Deps
	c    Connector
	log  *slog.Logger
	com  *changes.Committer
	snap *state.Snapshot
	caps okta.Capabilities

	mu     sync.Mutex
	report Report

	// What was read. Written by one reader each, read after they finish.
	users      []okta.User
	groups     []okta.Group
	apps       []okta.App
	members    map[string][]string // group id -> member user ids (read or kept)
	unchanged  map[string]bool     // groups whose members were not re-listed
	appUsers   map[string][]okta.AppUser
	appGroups  map[string][]okta.AppGroup
	userRoles  map[string][]okta.RoleAssignment
	groupRoles map[string][]okta.RoleAssignment
	rolesRead  bool     // every role list succeeded
	iam        *iamData // nil when custom roles are not synced or not re-read

	// Incremental reads (resync.go): the users not re-listed, kept as
	// stored, and whether this run reads incrementally.
	keptUsers   map[string]bool
	incremental bool
	// st commits containers during a full read; nil in an incremental one.
	st *streamer
	// memberSets caches r.members as sets (memberOf), under mu.
	memberSets map[string]map[string]bool
	// assignees are the users Okta lists as holding an admin role; their
	// role containers are marked, so an incremental run knows who is a
	// new assignee.
	assignees map[string]bool
}

func (r *runner) skip(part string, reason eventsv1.SkippedPart_Reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Skipped = append(r.report.Skipped, &eventsv1.SkippedPart{Part: part, Reason: reason, Message: msg})
}

func (r *runner) key(kind, id string) (string, error) { return state.Key(r.c.ID, kind, id) }

func (r *runner) run(ctx context.Context) error {
	snap, err := r.d.State.Load(ctx, r.c.ID)
	if err != nil {
		return err
	}
	r.snap = snap
	if err := r.com.Recover(ctx, snap); err != nil {
		return err
	}
	caps, err := r.d.Okta.ProbeCapabilities(ctx)
	if err != nil {
		return err
	}
	r.caps = caps
	r.report.Capabilities = caps
	if !caps.ReviewGroupMembership && !caps.ReviewAppAssignment {
		return &Failure{
			Reason:  eventsv1.SyncFailureReason_SYNC_FAILURE_REASON_MISSING_PERMISSION,
			Message: "the token may not read users, groups and apps: give the token's admin at least the Read-Only Administrator role",
			Err:     okta.ErrPermissionDenied,
		}
	}
	if since, why := r.incrementalSince(); why == "" {
		err := r.readIncremental(ctx, since)
		if errors.Is(err, errNeedFull) {
			r.log.Info("incremental read abandoned: reading in full", "reason", err.Error())
			r.report.FullReadReason = err.Error()
			r.resetRead()
			err = r.read(ctx)
		}
		if err != nil {
			return err
		}
	} else {
		r.report.FullReadReason = why
		if err := r.read(ctx); err != nil {
			return err
		}
	}
	r.report.Incremental = r.incremental
	sc := r.scope()
	todo, wanted, err := r.buildRead(sc)
	if err != nil {
		return err
	}
	goneGrants, goneResources := r.findGone(sc, wanted)
	todo, goneGrants, goneResources, err = r.guardRemovals(todo, goneGrants, goneResources)
	if err != nil {
		return err
	}
	// Grants before resources, so that a resource's grants are always
	// removed before it.
	if err := r.commitAll(ctx, todo); err != nil {
		return err
	}
	if err := r.commitAll(ctx, goneGrants); err != nil {
		return err
	}
	if err := r.commitAll(ctx, goneResources); err != nil {
		return err
	}
	return r.writeMeta(ctx)
}

// resetRead forgets what an abandoned incremental read read.
func (r *runner) resetRead() {
	r.mu.Lock()
	r.report.Skipped, r.report.Unchanged = nil, 0
	r.mu.Unlock()
	r.users, r.groups, r.apps, r.keptUsers, r.iam = nil, nil, nil, nil, nil
	r.incremental, r.rolesRead = false, false
}

// read reads the org in full, concurrently per bucket, and commits each
// container that gains or keeps what it has as soon as its dependencies are
// read (stream.go).
func (r *runner) read(ctx context.Context) error {
	r.members, r.unchanged, r.memberSets = map[string][]string{}, map[string]bool{}, nil
	r.appUsers, r.appGroups = map[string][]okta.AppUser{}, map[string][]okta.AppGroup{}
	r.userRoles, r.groupRoles = map[string][]okta.RoleAssignment{}, map[string][]okta.RoleAssignment{}
	st := newStreamer(r)
	r.st = st
	g, gctx := errgroup.WithContext(ctx)
	for range committers {
		g.Go(func() error { return st.work(gctx) })
	}
	g.Go(func() error {
		defer st.close()
		return r.readStreaming(gctx, st)
	})
	return g.Wait()
}

func (r *runner) readStreaming(ctx context.Context, st *streamer) error {
	g, ctx := errgroup.WithContext(ctx)
	st.g, st.ctx = g, ctx
	dom := r.domainFilter()
	g.Go(func() error {
		var users pageList[okta.User]
		err := r.d.Okta.ListUsers(ctx, okta.ListUsersOptions{IncludeDeprovisioned: true}, func(us []okta.User) error {
			users.add(us)
			for _, u := range us {
				if dom(u) {
					if err := st.offerResource(ctx, state.KindUser, u.ID, userResource(u)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		r.users = users.join(r.users)
		if err != nil {
			return err
		}
		st.users = map[string]bool{}
		for _, u := range r.users {
			if dom(u) {
				st.users[u.ID] = true
			}
		}
		close(st.usersDone)
		return nil
	})
	g.Go(func() error {
		var groups pageList[okta.Group]
		err := r.d.Okta.ListGroups(ctx, okta.ListGroupsOptions{ExpandStats: true}, groups.add)
		r.groups = groups.join(r.groups)
		if err != nil {
			return err
		}
		st.groups, st.memberRead = map[string]bool{}, map[string]chan struct{}{}
		for _, grp := range r.groups {
			if r.c.Options.SkipAppGroups && grp.Type == "APP_GROUP" {
				continue
			}
			st.groups[grp.ID] = true
			if r.caps.ReviewGroupMembership {
				st.memberRead[grp.ID] = make(chan struct{})
			}
		}
		close(st.groupsDone)
		for _, grp := range r.groups {
			if st.groups[grp.ID] {
				if err := st.offerResource(ctx, state.KindGroup, grp.ID, groupResource(grp)); err != nil {
					return err
				}
			}
		}
		defer close(st.membersDone)
		if !r.caps.ReviewGroupMembership {
			r.skip("group_membership", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
				"give the token's admin a role that may read group members, such as Read-Only Administrator")
			return nil
		}
		return r.readMembers(ctx)
	})
	g.Go(func() error { return r.readAppsStreaming(ctx, st) })
	if r.caps.ReviewRoles {
		g.Go(func() error { return r.readRoles(ctx) })
	} else {
		r.skip("role_assignment", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
			"grant the token's admin the Super Administrator role to review roles")
		r.skip("standard_role", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
			"grant the token's admin the Super Administrator role to review roles")
	}
	if r.skipCustomRoles() {
		g.Go(func() error { return r.readIAM(ctx) })
	}
	return g.Wait()
}

// readAppsStreaming lists the apps and reads the assignments of each app
// as soon as its page of the list is in, so that the apps bucket, usually
// the one that sets a sync's time, is busy from its first call.
func (r *runner) readAppsStreaming(ctx context.Context, st *streamer) error {
	ag, actx := errgroup.WithContext(ctx)
	ag.SetLimit(appReaders)
	var apps pageList[okta.App]
	listErr := r.d.Okta.ListApps(ctx, okta.ListAppsOptions{IncludeInactive: r.c.Options.SyncInactiveApps}, func(as []okta.App) error {
		apps.add(as)
		for _, app := range as {
			if err := st.offerResource(ctx, state.KindApp, app.ID, appResource(app)); err != nil {
				return err
			}
			if r.caps.ReviewAppAssignment {
				r.readApp(actx, ag, st, app)
			}
		}
		return nil
	})
	r.apps = apps.join(r.apps)
	if err := ag.Wait(); listErr == nil {
		listErr = err
	}
	if listErr != nil {
		return listErr
	}
	if !r.caps.ReviewAppAssignment {
		r.skip("app_assignment", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
			"give the token's admin a role that may read app assignments, such as Read-Only Administrator")
	}
	return nil
}

// readApp reads the user and the group assignments of one app, two calls
// at once, and hands the app's containers to the streamer once both and
// their dependencies are in.
func (r *runner) readApp(ctx context.Context, ag *errgroup.Group, st *streamer, app okta.App) {
	var (
		mu           sync.Mutex
		left         = 2
		aus          []okta.AppUser
		ags          []okta.AppGroup
		ausOK, agsOK bool
	)
	finish := func() {
		mu.Lock()
		left--
		last := left == 0
		mu.Unlock()
		if last {
			st.g.Go(func() error { return st.buildApp(app, aus, ausOK, ags, agsOK) })
		}
	}
	ag.Go(func() error {
		got, read, err := readPart(r, "app/"+app.ID+"/users", "the user assignments of this app",
			func(fn func([]okta.AppUser) error) error { return r.d.Okta.ListAppUsers(ctx, app.ID, fn) })
		if err != nil {
			return err
		}
		if read {
			r.mu.Lock()
			r.appUsers[app.ID] = got
			r.mu.Unlock()
			mu.Lock()
			aus, ausOK = got, true
			mu.Unlock()
		}
		finish()
		return nil
	})
	ag.Go(func() error {
		got, read, err := readPart(r, "app/"+app.ID+"/groups", "the group assignments of this app",
			func(fn func([]okta.AppGroup) error) error { return r.d.Okta.ListAppGroups(ctx, app.ID, fn) })
		if err != nil {
			return err
		}
		if read {
			r.mu.Lock()
			r.appGroups[app.ID] = got
			r.mu.Unlock()
			mu.Lock()
			ags, agsOK = got, true
			mu.Unlock()
		}
		finish()
		return nil
	})
}

func (r *runner) readMembers(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(groupReaders)
	st := r.st
	// settled records a group's members (nil: not read) and, in a full
	// read, tells the streamer.
	settled := func(grp okta.Group, ids []string, read bool) {
		if read {
			r.mu.Lock()
			r.members[grp.ID] = ids
			r.mu.Unlock()
		}
		if st != nil {
			if read {
				st.buildMembers(grp, ids)
			}
			if ch, ok := st.memberRead[grp.ID]; ok {
				close(ch)
			}
		}
	}
	for _, grp := range largestFirst(r.groups) {
		if r.c.Options.SkipAppGroups && grp.Type == "APP_GROUP" {
			continue
		}
		key, err := r.key(state.KindMembers, grp.ID)
		if err != nil {
			return err
		}
		if prev := r.snap.Containers[key]; prev.Exists() && !grp.LastMembershipUpdated.IsZero() {
			set, err := changes.DecodeGrants(state.KindMembers, grp.ID, prev.Value)
			if err != nil {
				return err
			}
			if set.Marker == marker(grp.LastMembershipUpdated) {
				ids := make([]string, 0, len(set.Grants))
				for _, gr := range set.Grants {
					ids = append(ids, gr.GetPrincipal().GetId())
				}
				r.mu.Lock()
				r.unchanged[grp.ID] = true
				r.report.Unchanged++
				r.mu.Unlock()
				settled(grp, ids, true)
				continue
			}
		}
		g.Go(func() error {
			ids, read, err := readPart(r, "group/"+grp.ID+"/members", "the members of this group",
				func(fn func([]string) error) error { return r.d.Okta.ListGroupMemberIDs(ctx, grp.ID, fn) })
			if err != nil {
				return err
			}
			settled(grp, ids, read)
			return nil
		})
	}
	return g.Wait()
}

// largestFirst returns the groups by member count, the largest first (as
// expand=stats tells; groups without it last, in list order): the largest
// members containers, and the user assignments of the apps assigned to
// those groups, are the slowest to commit, so they are read first rather
// than left for the end of a run.
func largestFirst(groups []okta.Group) []okta.Group {
	out := slices.Clone(groups)
	count := func(g okta.Group) int64 {
		if g.UsersCount == nil {
			return -1
		}
		return *g.UsersCount
	}
	slices.SortStableFunc(out, func(a, b okta.Group) int { return cmp.Compare(count(b), count(a)) })
	return out
}

// readAssignments reads the assignments of every app, or of the apps in
// only when it is not nil.
func (r *runner) readAssignments(ctx context.Context, only map[string]bool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(appReaders)
	var mu sync.Mutex
	for _, app := range r.apps {
		if only != nil && !only[app.ID] {
			continue
		}
		g.Go(func() error {
			aus, read, err := readPart(r, "app/"+app.ID+"/users", "the user assignments of this app",
				func(fn func([]okta.AppUser) error) error { return r.d.Okta.ListAppUsers(ctx, app.ID, fn) })
			if err != nil {
				return err
			}
			if read {
				mu.Lock()
				r.appUsers[app.ID] = aus
				mu.Unlock()
			}
			ags, read, err := readPart(r, "app/"+app.ID+"/groups", "the group assignments of this app",
				func(fn func([]okta.AppGroup) error) error { return r.d.Okta.ListAppGroups(ctx, app.ID, fn) })
			if err != nil || !read {
				return err
			}
			mu.Lock()
			r.appGroups[app.ID] = ags
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// readRoles reads the role assignments of a full read: the role assignee
// list first, then the roles of each assignee once the users list is in
// and of each group once every group's members are read, the two at once.
func (r *runner) readRoles(ctx context.Context) error {
	st := r.st
	// Only users Okta lists as role assignees hold roles: read theirs and
	// know the others hold none, instead of a call per user of the org.
	assignees := map[string]bool{}
	err := r.d.Okta.ListRoleAssignees(ctx, func(ids []string) error {
		for _, id := range ids {
			assignees[id] = true
		}
		return nil
	})
	r.assignees = assignees
	if err != nil {
		reason, ok := partError(err)
		if !ok {
			return err
		}
		r.skip("role_assignees", reason, "the users holding admin roles could not be listed: "+err.Error())
		r.rolesRead = false
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(roleReaders)
	var failed atomic.Bool
	read := func(kind, principal, id string, list func(context.Context, string) ([]okta.RoleAssignment, error), into map[string][]okta.RoleAssignment) {
		g.Go(func() error {
			rs, err := list(ctx, id)
			if err != nil {
				reason, ok := partError(err)
				if !ok {
					return err
				}
				r.skip(principal+"/"+id+"/roles", reason, "the role assignments could not be read: "+err.Error())
				failed.Store(true)
				return nil
			}
			r.mu.Lock()
			into[id] = rs
			r.mu.Unlock()
			st.buildRoles(kind, principal, id, rs)
			return nil
		})
	}
	// The groups' roles are read once the members of every group are:
	// both share the groups bucket, and the containers of the apps assigned
	// to groups wait for those groups' members, while nothing waits for a
	// group's roles. Read side by side, the last members would come in at
	// the very end of the bucket's time and the app containers after it.
	var lists errgroup.Group
	lists.Go(func() error {
		if err := wait(ctx, st.groupsDone, st.membersDone); err != nil {
			return err
		}
		for _, grp := range r.groups {
			if st.groups[grp.ID] {
				read(state.KindRolesGroup, "group", grp.ID, r.d.Okta.ListGroupRoles, r.groupRoles)
			}
		}
		return nil
	})
	lists.Go(func() error {
		if err := wait(ctx, st.usersDone); err != nil {
			return err
		}
		for _, u := range r.users {
			if !st.users[u.ID] {
				continue
			}
			if assignees[u.ID] {
				read(state.KindRolesUser, "user", u.ID, r.d.Okta.ListUserRoles, r.userRoles)
			} else {
				r.mu.Lock()
				r.userRoles[u.ID] = nil
				r.mu.Unlock()
				st.buildRoles(state.KindRolesUser, "user", u.ID, nil)
			}
		}
		return nil
	})
	lerr := lists.Wait()
	if err := g.Wait(); err != nil {
		return err
	}
	if lerr != nil {
		return lerr
	}
	r.rolesRead = !failed.Load()
	return nil
}

// skipCustomRoles names the custom role parts this run cannot read, and
// says whether it may read them.
func (r *runner) skipCustomRoles() bool {
	switch {
	case !r.c.Options.SyncCustomRoles:
		for _, part := range []string{"custom_role", "resource_set", "resource_set_binding"} {
			r.skip(part, eventsv1.SkippedPart_REASON_DISABLED_BY_OPTION, "turn on the connector's sync custom roles option")
		}
		return false
	case !r.caps.ReviewRoles:
		for _, part := range []string{"custom_role", "resource_set", "resource_set_binding"} {
			r.skip(part, eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
				"grant the token's admin the Super Administrator role (or a custom role with okta.iam.read) to review custom roles")
		}
		return false
	}
	return true
}

// assigneeMarker marks the role container of a user Okta lists as a role
// assignee.
const assigneeMarker = "assignee"

// marker is how a group's lastMembershipUpdated is remembered.
func marker(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// domainFilter returns whether a user is in the connector's scope.
func (r *runner) domainFilter() func(okta.User) bool {
	if len(r.c.Options.UserDomains) == 0 {
		return func(okta.User) bool { return true }
	}
	domains := map[string]bool{}
	for _, d := range r.c.Options.UserDomains {
		domains[strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))] = true
	}
	domainOf := func(s string) string {
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			return strings.ToLower(s[i+1:])
		}
		return ""
	}
	return func(u okta.User) bool { return domains[domainOf(u.Email)] || domains[domainOf(u.Login)] }
}

// scope is what is in the connector's scope, by id.
type scope struct {
	users  map[string]bool
	groups map[string]bool
	apps   map[string]bool
}

func (r *runner) scope() scope {
	sc := scope{users: map[string]bool{}, groups: map[string]bool{}, apps: map[string]bool{}}
	dom := r.domainFilter()
	for _, u := range r.users {
		if dom(u) {
			sc.users[u.ID] = true
		}
	}
	for _, g := range r.groups {
		if !(r.c.Options.SkipAppGroups && g.Type == "APP_GROUP") {
			sc.groups[g.ID] = true
		}
	}
	for _, a := range r.apps {
		sc.apps[a.ID] = true
	}
	for id := range r.keptUsers {
		sc.users[id] = true
	}
	return sc
}

// pending is one container to commit.
type pending struct {
	key   string
	value []byte
}

// buildRead encodes every container read and not committed while reading
// (stream.go), and returns them with the keys of the containers the org
// still has.
func (r *runner) buildRead(sc scope) ([]pending, map[string]bool, error) {
	var todo []pending
	wanted := map[string]bool{}
	// early says whether container kind/id was committed during the read,
	// marking it wanted either way; n is its grant count.
	early := func(kind, id string) (key string, n int, ok bool, err error) {
		key, err = r.key(kind, id)
		if err != nil {
			return "", 0, false, err
		}
		wanted[key] = true
		n, ok = r.st.committed(key)
		return key, n, ok, nil
	}
	addResource := func(kind, id string, res func() *eventsv1.Resource) error {
		key, _, done, err := early(kind, id)
		if err != nil || done {
			return err
		}
		v, err := changes.EncodeResource(res())
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		todo = append(todo, pending{key, v})
		return nil
	}
	// addGrants adds a grant container and returns its grant count.
	addGrants := func(kind, id string, build func() *changes.GrantSet) (int, error) {
		key, n, done, err := early(kind, id)
		if err != nil || done {
			return n, err
		}
		set := build()
		if skipEmpty(kind, set) && !r.snap.Containers[key].Exists() {
			return 0, nil
		}
		v, err := changes.EncodeGrants(kind, set)
		if err != nil {
			return 0, fmt.Errorf("encode %s: %w", key, err)
		}
		todo = append(todo, pending{key, v})
		return len(set.Grants), nil
	}
	var nUsers, nGroups, nMembers, nAssign, nRoles int
	for _, u := range r.users {
		if sc.users[u.ID] {
			nUsers++
			if err := addResource(state.KindUser, u.ID, func() *eventsv1.Resource { return userResource(u) }); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, g := range r.groups {
		if !sc.groups[g.ID] {
			continue
		}
		nGroups++
		if err := addResource(state.KindGroup, g.ID, func() *eventsv1.Resource { return groupResource(g) }); err != nil {
			return nil, nil, err
		}
		ids, ok := r.members[g.ID]
		if !ok {
			continue // not read: left as it was
		}
		n, err := addGrants(state.KindMembers, g.ID, func() *changes.GrantSet { return membersSet(g, ids, sc.users) })
		if err != nil {
			return nil, nil, err
		}
		nMembers += n
	}
	for _, a := range r.apps {
		if err := addResource(state.KindApp, a.ID, func() *eventsv1.Resource { return appResource(a) }); err != nil {
			return nil, nil, err
		}
		ags, agsRead := r.appGroups[a.ID]
		var assigned []string
		if agsRead {
			var set *changes.GrantSet
			set, assigned = appGroupsSet(a.ID, ags, sc.groups)
			n, err := addGrants(state.KindAppGroups, a.ID, func() *changes.GrantSet { return set })
			if err != nil {
				return nil, nil, err
			}
			nAssign += n
		}
		if aus, ok := r.appUsers[a.ID]; ok {
			n, err := addGrants(state.KindAppUsers, a.ID, func() *changes.GrantSet {
				return appUsersSet(a.ID, aus, sc.users, sc.groups, agsRead, assigned, r.memberOf)
			})
			if err != nil {
				return nil, nil, err
			}
			nAssign += n
		}
	}
	roleTypes := map[string]string{}
	roles := func(kind, principal string, m map[string][]okta.RoleAssignment, in map[string]bool) error {
		for id, rs := range m {
			if !in[id] {
				continue
			}
			for _, ra := range rs {
				if ra.Type != "CUSTOM" {
					roleTypes[ra.Type] = ra.Label
				}
			}
			n, err := addGrants(kind, id, func() *changes.GrantSet { return r.rolesSet(kind, principal, id, rs, nil) })
			if err != nil {
				return err
			}
			nRoles += n
		}
		return nil
	}
	if err := roles(state.KindRolesUser, "user", r.userRoles, sc.users); err != nil {
		return nil, nil, err
	}
	if err := roles(state.KindRolesGroup, "group", r.groupRoles, sc.groups); err != nil {
		return nil, nil, err
	}
	if r.incremental && r.caps.ReviewRoles {
		if err := r.keptRoleTypes(sc, roleTypes); err != nil {
			return nil, nil, err
		}
	}
	for typ, label := range roleTypes {
		if err := addResource(state.KindStandardRole, typ, func() *eventsv1.Resource { return standardRoleResource(typ, label) }); err != nil {
			return nil, nil, err
		}
	}
	add := func(kind, id string, encode func() ([]byte, error)) error {
		key, err := r.key(kind, id)
		if err != nil {
			return err
		}
		wanted[key] = true
		v, err := encode()
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		todo = append(todo, pending{key, v})
		return nil
	}
	if err := r.buildIAM(sc, add); err != nil {
		return nil, nil, err
	}
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_USER, nUsers)
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_GROUP, nGroups)
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_APP, len(r.apps))
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE, len(roleTypes))
	r.com.SeenGrants(eventsv1.GrantKind_GRANT_KIND_GROUP_MEMBERSHIP, nMembers)
	r.com.SeenGrants(eventsv1.GrantKind_GRANT_KIND_APP_ASSIGNMENT, nAssign)
	r.com.SeenGrants(eventsv1.GrantKind_GRANT_KIND_ROLE_ASSIGNMENT, nRoles)
	return todo, wanted, nil
}

// commitAll commits containers concurrently.
func (r *runner) commitAll(ctx context.Context, todo []pending) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(committers)
	for _, p := range todo {
		prev := r.snap.Containers[p.key]
		g.Go(func() error {
			_, err := r.com.Commit(ctx, p.key, prev, p.value)
			return err
		})
	}
	return g.Wait()
}

// findGone returns the containers the org no longer has: grant containers
// and resources. A container is removed only when the part that would list
// it was read in full.
func (r *runner) findGone(sc scope, wanted map[string]bool) (grantKeys, resourceKeys []pending) {
	for key, ent := range r.snap.Containers {
		if !ent.Exists() || wanted[key] {
			continue
		}
		kind, id, ok := state.SplitKey(r.c.ID, key)
		if !ok {
			continue
		}
		gone := false
		isResource := false
		switch kind {
		case state.KindMembers:
			// Gone with its group; a group in scope whose read failed stays.
			gone = r.caps.ReviewGroupMembership && !sc.groups[id]
		case state.KindAppUsers, state.KindAppGroups:
			gone = r.caps.ReviewAppAssignment && !sc.apps[id]
		case state.KindRolesUser:
			gone = r.caps.ReviewRoles && !sc.users[id]
		case state.KindRolesGroup:
			gone = r.caps.ReviewRoles && !sc.groups[id]
		case state.KindUser:
			gone, isResource = !sc.users[id], true
		case state.KindGroup:
			gone, isResource = !sc.groups[id], true
		case state.KindApp:
			gone, isResource = !sc.apps[id], true
		case state.KindStandardRole:
			// Only a complete read of every principal's roles proves a
			// role type is no longer held.
			gone, isResource = r.caps.ReviewRoles && r.rolesRead, true
		case state.KindCustomRole:
			// Only a complete read of the IAM part proves anything gone.
			gone, isResource = r.iam != nil && r.iam.complete, true
		case state.KindResourceSet:
			gone, isResource = r.iam != nil && r.iam.complete, true
		case state.KindBindings:
			gone = r.iam != nil && r.iam.complete
		}
		if !gone {
			continue
		}
		if isResource {
			resourceKeys = append(resourceKeys, pending{key: key})
		} else {
			grantKeys = append(grantKeys, pending{key: key})
		}
	}
	return grantKeys, resourceKeys
}

func (r *runner) publishStarted(ctx context.Context) error {
	subj, err := subjects.SyncRunStarted(r.c.ID)
	if err != nil {
		return err
	}
	_, err = r.d.Bus.Publish(ctx, subj, subjects.MsgID(subjects.DomainSync, r.c.ID, subjects.EntityRun, r.c.RunID, subjects.VerbStarted),
		&eventsv1.SyncRunStarted{
			ConnectorId: r.c.ID, RunId: r.c.RunID, RequestId: r.c.RequestID,
			Mode: eventsv1.SyncMode_SYNC_MODE_FULL, StartedAt: timestamppb.New(r.report.Started),
		})
	if err != nil {
		return fmt.Errorf("publish run started: %w", err)
	}
	return nil
}

func (r *runner) publishCompleted(ctx context.Context) error {
	subj, err := subjects.SyncRunCompleted(r.c.ID)
	if err != nil {
		return err
	}
	rep := r.report
	ev := &eventsv1.SyncRunCompleted{
		ConnectorId: r.c.ID, RunId: r.c.RunID, RequestId: r.c.RequestID, Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
		StartedAt: timestamppb.New(rep.Started), CompletedAt: timestamppb.New(rep.Finished),
		Duration: durationpb.New(rep.Finished.Sub(rep.Started)),
		ApiCalls: rep.APICalls, Http_429: rep.HTTP429, Skipped: rep.Skipped,
		LastAccessSequence: rep.LastAccessSequence,
		RemovalsHeld:       rep.RemovalsHeld, RemovalsHeldCount: rep.RemovalsHeldCount,
		Capabilities: &eventsv1.Capabilities{
			ReviewGroupMembership:    rep.Capabilities.ReviewGroupMembership,
			ProvisionGroupMembership: rep.Capabilities.ProvisionGroupMembership,
			ReviewAppAssignment:      rep.Capabilities.ReviewAppAssignment,
			ProvisionAppAssignment:   rep.Capabilities.ProvisionAppAssignment,
			ReviewRoles:              rep.Capabilities.ReviewRoles,
			AdminRoleTypes:           rep.Capabilities.RoleTypes,
			ProbedAt:                 timestamppb.New(rep.Started),
		},
	}
	ev.Resources, ev.Grants = rep.KindCounts()
	_, err = r.d.Bus.Publish(ctx, subj, subjects.MsgID(subjects.DomainSync, r.c.ID, subjects.EntityRun, r.c.RunID, subjects.VerbCompleted), ev)
	if err != nil {
		return fmt.Errorf("publish run completed: %w", err)
	}
	return nil
}

func counts(c changes.Counts) *eventsv1.ChangeCounts {
	return &eventsv1.ChangeCounts{Seen: c.Seen, Added: c.Added, Updated: c.Updated, Removed: c.Removed}
}

func (r *runner) publishFailed(ctx context.Context, f *Failure) error {
	return PublishFailed(ctx, r.d.Bus, r.c, r.report.Started, r.report.Finished, f)
}

// KindCounts are the report's counts in kind order, as run events and run
// records carry them.
func (rep Report) KindCounts() ([]*eventsv1.ResourceKindCounts, []*eventsv1.GrantKindCounts) {
	var rs []*eventsv1.ResourceKindCounts
	var gs []*eventsv1.GrantKindCounts
	for k := eventsv1.ResourceKind(1); k <= eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET; k++ {
		if c, ok := rep.Resources[k]; ok {
			rs = append(rs, &eventsv1.ResourceKindCounts{Kind: k, Counts: counts(c)})
		}
	}
	for k := eventsv1.GrantKind(1); k <= eventsv1.GrantKind_GRANT_KIND_RESOURCE_SET_BINDING; k++ {
		if c, ok := rep.Grants[k]; ok {
			gs = append(gs, &eventsv1.GrantKindCounts{Kind: k, Counts: counts(c)})
		}
	}
	return rs, gs
}

// PublishFailed publishes sync.<c>.run.failed for run c.RunID of connector
// c.ID. Run publishes it for its own failures; a caller that fails a run
// before Run could start (no token, a bad domain) publishes it here.
func PublishFailed(ctx context.Context, pub changes.Publisher, c Connector, started, failed time.Time, f *Failure) error {
	subj, err := subjects.SyncRunFailed(c.ID)
	if err != nil {
		return err
	}
	_, err = pub.Publish(ctx, subj, subjects.MsgID(subjects.DomainSync, c.ID, subjects.EntityRun, c.RunID, subjects.VerbFailed),
		&eventsv1.SyncRunFailed{
			ConnectorId: c.ID, RunId: c.RunID, RequestId: c.RequestID, Mode: eventsv1.SyncMode_SYNC_MODE_FULL,
			StartedAt: timestamppb.New(started), FailedAt: timestamppb.New(failed),
			Reason: f.Reason, Message: f.Message, OktaErrorCode: f.OktaCode,
		})
	if err != nil {
		return fmt.Errorf("publish run failed: %w", err)
	}
	return nil
}

// readPart lists the items of one container. A failure that only concerns
// this container (403, 404, 5xx) skips it by name and returns read false, so
// it is left as it was; any other failure stops the run.
func readPart[T any](r *runner, part, what string, list func(func([]T) error) error) (got []T, read bool, err error) {
	var pages pageList[T]
	err = list(pages.add)
	got = pages.join(nil)
	if err != nil {
		reason, ok := partError(err)
		if !ok {
			return nil, false, err
		}
		r.skip(part, reason, what+" could not be read: "+err.Error())
		return nil, false, nil
	}
	return got, true, nil
}

// pageList collects the pages of a list, joined once at the end:
// appending page after page grows a long list by a quarter at a time,
// copying it each time, which for a large org's users allocated five times
// what they take. The okta package hands each page as a slice of its own,
// so a list of one page is that page.
type pageList[T any] struct {
	pages [][]T
	n     int
}

// add adds a page; it has the type of a list callback.
func (l *pageList[T]) add(page []T) error {
	if len(page) > 0 {
		l.pages = append(l.pages, page)
		l.n += len(page)
	}
	return nil
}

// join returns to with every page appended (nil when both are empty).
func (l *pageList[T]) join(to []T) []T {
	if to == nil && len(l.pages) == 1 {
		return l.pages[0]
	}
	if l.n == 0 {
		return to
	}
	out := slices.Grow(to, l.n)
	for _, p := range l.pages {
		out = append(out, p...)
	}
	return out
}
