package fullsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/subjects"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Targeted resyncs. RunTargeted re-reads only the objects a SyncRequest
// names (SyncTarget) and commits them through the same diff, journal and
// state as a full sync, so that a full sync after it finds nothing more
// to publish. What each target reads:
//
//   - USER: the user (GET /users/{id}); gone (404) or out of the domain
//     scope: every grant of the user is removed, then the user; new: the
//     user, and its memberships (its groups, one call).
//   - GROUP: the group with its stats; gone (or an APP_GROUP the connector
//     skips): its members, roles and app assignments go, then the group;
//     new: the group and its members.
//   - APP: the app; gone (or inactive when inactive apps are not synced):
//     its assignments go, then the app; new: the app and its assignments.
//   - GROUP_MEMBERS: the group (its stats and lastMembershipUpdated
//     change with its members), then all its members, or, narrowed to a
//     user, that user's groups (one call, however big the group). The
//     via_group_ids of the group-scoped app assignments of the users whose
//     membership changed follow, from the state, without a call.
//   - USER_GROUPS: the user's groups: every membership of the user.
//   - APP_ASSIGNMENTS: the app's user and group assignments, or, narrowed
//     to a user, that assignment (one call). A narrowed group assignment
//     reads the whole app: the group's members' assignments change with it.
//   - USER_ROLES, GROUP_ROLES: the principal's role assignments.
//   - RESOURCE_SET: not read alone (a binding changes the roles of every
//     principal bound): the request becomes an incremental sync.
//
// A user, group or app a target names that the state does not hold is read
// first (a change's events may arrive before the object's creation event).
// A read that fails fails the run, and the request is tried again: a
// target is never taken as read. A target that cannot be read on its own
// returns ErrNeedFull: no full sync has completed yet, the options or the
// token's capabilities changed since, the token lost a permission, a user
// entered the connector's domain scope, or a resource set changed. The
// caller then runs a full (usually incremental) sync instead.
//
// Removals a targeted run publishes are each proven by Okta (a 404 for the
// object, or its absence from the one list read): the removal guard, which
// protects against a list read short, applies to full syncs only.

// ErrNeedFull says a targeted resync cannot read its targets alone; run a
// full sync instead. The error's text says why.
var ErrNeedFull = errors.New("a full sync is needed")

// maxUnknownUsers is how many users new to the state one targeted run
// reads one by one before it asks for a full sync instead.
const maxUnknownUsers = 50

// widenAbove is how many narrowed targets of one container a run confirms
// one by one; more re-read the container whole.
const widenAbove = 10

// RunTargeted re-reads targets and publishes their changes (see above). It
// publishes no run events: a targeted run is part of the connector's
// steady state, reported by its change events (cause TARGETED_SYNC, run id
// c.RunID) and the service's log.
func RunTargeted(ctx context.Context, d Deps, c Connector, targets []*eventsv1.SyncTarget) (Report, error) {
	if err := subjects.ValidateConnectorID(c.ID); err != nil {
		return Report{}, fmt.Errorf("targeted sync: %w: %w", ErrInvalidConnector, err)
	}
	if d.Okta == nil || d.Bus == nil || d.State == nil {
		return Report{}, fmt.Errorf("targeted sync of %s: Okta, Bus and State are required: %w", c.ID, ErrInvalidConnector)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	if c.RunID == "" {
		c.RunID = c.ID + "-t-" + started.UTC().Format("20060102T150405.000000000Z")
	}
	r := &runner{
		d: d, c: c, log: d.Log.With("connector", c.ID, "run", c.RunID),
		com:    changes.New(d.Bus, d.State, c.ID, c.RunID, eventsv1.ChangeCause_CHANGE_CAUSE_TARGETED_SYNC),
		report: Report{RunID: c.RunID, Started: started},
	}
	var before map[string]ratelimit.BucketStats
	if d.Budget != nil {
		before = d.Budget.Stats()
	}
	t := &targetRun{r: r, cache: map[string]state.Entry{}, sets: map[string]*changes.GrantSet{},
		checked: map[string]bool{}, userGroups: map[string][]string{}, dom: r.domainFilter()}
	err := t.run(ctx, targets)
	r.report.Finished = time.Now()
	r.report.Resources = r.com.ResourceCounts()
	r.report.Grants = r.com.GrantCounts()
	r.report.Published = r.com.Published()
	r.report.LastAccessSequence = r.com.LastSequence()
	if d.Budget != nil {
		r.report.APICalls, r.report.HTTP429 = callsSince(before, d.Budget.Stats())
	}
	if err != nil {
		return r.report, fmt.Errorf("targeted sync of %s: %w", c.ID, err)
	}
	r.log.Debug("targeted sync completed", "targets", len(targets), "published", r.report.Published,
		"duration", r.report.Finished.Sub(started))
	return r.report, nil
}

func needFull(why string) error { return fmt.Errorf("%w: %s", ErrNeedFull, why) }

// targetRun is one targeted run's working state.
type targetRun struct {
	r     *runner
	meta  state.SyncMeta
	dom   func(okta.User) bool
	cache map[string]state.Entry // containers read or written, by key
	// sets caches decoded grant containers by key; a commit replaces them.
	sets map[string]*changes.GrantSet
	// checked holds the users read because the state lacked them: in
	// scope or not.
	checked    map[string]bool
	unknown    int
	userGroups map[string][]string // groups of a user, read this run
	appGroups  map[string]state.Entry
}

// plan is a run's targets, merged per container.
type plan struct {
	users, groups, apps, userRoles, groupRoles, userGroups []string
	members, assignments                                   map[string]*containerTargets
	resourceSets                                           []string
}

// containerTargets are the targets of one container: whole, or narrowed to
// principals.
type containerTargets struct {
	whole bool
	users []string
}

func (ct *containerTargets) add(whole bool, user string) {
	if whole {
		ct.whole, ct.users = true, nil
		return
	}
	if !ct.whole && !slices.Contains(ct.users, user) {
		ct.users = append(ct.users, user)
		if len(ct.users) > widenAbove {
			ct.whole, ct.users = true, nil
		}
	}
}

func makePlan(targets []*eventsv1.SyncTarget) *plan {
	p := &plan{members: map[string]*containerTargets{}, assignments: map[string]*containerTargets{}}
	into := func(m map[string]*containerTargets, id string) *containerTargets {
		ct := m[id]
		if ct == nil {
			ct = &containerTargets{}
			m[id] = ct
		}
		return ct
	}
	for _, tg := range targets {
		id := tg.GetId()
		if id == "" {
			continue
		}
		m := tg.GetMember()
		switch tg.GetKind() {
		case eventsv1.SyncTarget_KIND_USER:
			p.users = append(p.users, id)
		case eventsv1.SyncTarget_KIND_GROUP:
			p.groups = append(p.groups, id)
		case eventsv1.SyncTarget_KIND_APP:
			p.apps = append(p.apps, id)
		case eventsv1.SyncTarget_KIND_USER_ROLES:
			p.userRoles = append(p.userRoles, id)
		case eventsv1.SyncTarget_KIND_GROUP_ROLES:
			p.groupRoles = append(p.groupRoles, id)
		case eventsv1.SyncTarget_KIND_USER_GROUPS:
			p.userGroups = append(p.userGroups, id)
		case eventsv1.SyncTarget_KIND_RESOURCE_SET:
			p.resourceSets = append(p.resourceSets, id)
		case eventsv1.SyncTarget_KIND_GROUP_MEMBERS:
			user := m.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_USER && m.GetId() != ""
			into(p.members, id).add(!user, m.GetId())
		case eventsv1.SyncTarget_KIND_APP_ASSIGNMENTS:
			user := m.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_USER && m.GetId() != ""
			into(p.assignments, id).add(!user, m.GetId())
		}
	}
	for _, s := range []*[]string{&p.users, &p.groups, &p.apps, &p.userRoles, &p.groupRoles, &p.userGroups, &p.resourceSets} {
		slices.Sort(*s)
		*s = slices.Compact(*s)
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (t *targetRun) run(ctx context.Context, targets []*eventsv1.SyncTarget) error {
	r := t.r
	snap, err := r.d.State.LoadPending(ctx, r.c.ID)
	if err != nil {
		return err
	}
	t.meta = snap.Meta
	if t.meta.LastFull.IsZero() {
		return needFull("no full sync has completed yet")
	}
	mc := t.meta.Capabilities
	r.caps = okta.Capabilities{ReviewGroupMembership: mc.ReviewGroupMembership, ReviewAppAssignment: mc.ReviewAppAssignment, ReviewRoles: mc.ReviewRoles}
	r.report.Capabilities = r.caps
	if t.meta.Fingerprint != r.fingerprint() {
		return needFull("the connector's options or the token's capabilities changed since the last full sync")
	}
	if err := r.com.Recover(ctx, snap); err != nil {
		return err
	}
	for k, e := range snap.Containers {
		t.cache[k] = e
	}
	p := makePlan(targets)
	if len(p.resourceSets) > 0 && r.c.Options.SyncCustomRoles && r.caps.ReviewRoles {
		return needFull("a resource set changed")
	}
	steps := []struct {
		ids []string
		fn  func(context.Context, string) error
	}{
		{p.users, t.user}, {p.groups, t.group}, {p.apps, t.app},
		{sortedKeys(p.members), func(ctx context.Context, id string) error { return t.groupMembers(ctx, id, p.members[id]) }},
		{p.userGroups, t.userGroupsOf},
		{sortedKeys(p.assignments), func(ctx context.Context, id string) error { return t.appAssignments(ctx, id, p.assignments[id]) }},
		{p.userRoles, t.userRolesOf}, {p.groupRoles, t.groupRolesOf},
	}
	for _, s := range steps {
		for _, id := range s.ids {
			if err := s.fn(ctx, id); err != nil {
				if errors.Is(err, okta.ErrPermissionDenied) {
					return needFull("the token may no longer read what it could: " + err.Error())
				}
				return err
			}
		}
	}
	return nil
}

// ---- state access

func (t *targetRun) key(kind, id string) (string, error) { return t.r.key(kind, id) }

func (t *targetRun) get(ctx context.Context, kind, id string) (string, state.Entry, error) {
	key, err := t.key(kind, id)
	if err != nil {
		return "", state.Entry{}, err
	}
	if e, ok := t.cache[key]; ok {
		return key, e, nil
	}
	e, err := t.r.d.State.Get(ctx, key)
	if err != nil {
		return "", state.Entry{}, err
	}
	t.cache[key] = e
	return key, e, nil
}

func (t *targetRun) exists(ctx context.Context, kind, id string) (bool, error) {
	_, e, err := t.get(ctx, kind, id)
	return e.Exists(), err
}

// grants returns a stored grant container, decoded (empty when absent),
// and whether it exists. The set is the run's own copy: change it, then
// commitGrants it.
func (t *targetRun) grants(ctx context.Context, kind, id string) (*changes.GrantSet, bool, error) {
	key, e, err := t.get(ctx, kind, id)
	if err != nil {
		return nil, false, err
	}
	if s, ok := t.sets[key]; ok {
		return cloneSet(s), e.Exists(), nil
	}
	var v []byte
	if e.Exists() {
		v = e.Value
	}
	s, err := changes.DecodeGrants(kind, id, v)
	if err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", key, err)
	}
	t.sets[key] = s
	return cloneSet(s), e.Exists(), nil
}

func cloneSet(s *changes.GrantSet) *changes.GrantSet {
	c := changes.NewGrantSet(s.Marker)
	for k, g := range s.Grants {
		c.Grants[k] = g
	}
	return c
}

func (t *targetRun) commit(ctx context.Context, kind, id string, next []byte) error {
	key, prev, err := t.get(ctx, kind, id)
	if err != nil {
		return err
	}
	ent, err := t.r.com.Commit(ctx, key, prev, next)
	if err != nil {
		return err
	}
	t.cache[key] = ent
	delete(t.sets, key)
	if kind == state.KindAppGroups && t.appGroups != nil {
		t.appGroups[key] = ent
	}
	return nil
}

func (t *targetRun) commitResource(ctx context.Context, kind, id string, res *eventsv1.Resource) error {
	v, err := changes.EncodeResource(res)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	return t.commit(ctx, kind, id, v)
}

func (t *targetRun) commitGrants(ctx context.Context, kind, id string, set *changes.GrantSet) error {
	v, err := changes.EncodeGrants(kind, set)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	return t.commit(ctx, kind, id, v)
}

// remove deletes a container, publishing the removal of what it holds.
func (t *targetRun) remove(ctx context.Context, kind, id string) error {
	return t.commit(ctx, kind, id, nil)
}

// memberOf says whether the state has user uid in group gid.
func (t *targetRun) memberOf(ctx context.Context, gid, uid string) (bool, error) {
	set, _, err := t.grants(ctx, state.KindMembers, gid)
	if err != nil {
		return false, err
	}
	return set.Grants[changes.Membership(gid, uid).GetKey()] != nil, nil
}

// containersOf returns the stored containers of kind, by id, loaded once
// per run for the app group assignments (a few hundred keys) and fully
// for the rest.
func (t *targetRun) containersOf(ctx context.Context, kind string) (map[string]state.Entry, error) {
	if kind == state.KindAppGroups && t.appGroups != nil {
		return t.appGroups, nil
	}
	m, err := t.r.d.State.LoadKind(ctx, t.r.c.ID, kind)
	if err != nil {
		return nil, err
	}
	for k, e := range m {
		if _, ok := t.cache[k]; !ok {
			t.cache[k] = e
		} else {
			m[k] = t.cache[k] // written by this run
		}
	}
	if kind == state.KindAppGroups {
		t.appGroups = m
	}
	return m, nil
}

// eachContainer calls fn with the id of every existing container of kind.
func (t *targetRun) eachContainer(ctx context.Context, kind string, fn func(id string) error) error {
	m, err := t.containersOf(ctx, kind)
	if err != nil {
		return err
	}
	for _, key := range sortedKeys(m) {
		if !m[key].Exists() {
			continue
		}
		if _, id, ok := state.SplitKey(t.r.c.ID, key); ok {
			if err := fn(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- users

// user re-reads user u.
func (t *targetRun) user(ctx context.Context, u string) error {
	stored, err := t.exists(ctx, state.KindUser, u)
	if err != nil {
		return err
	}
	user, err := t.r.d.Okta.GetUser(ctx, u)
	switch {
	case errors.Is(err, okta.ErrNotFound):
		if stored {
			return t.removeUser(ctx, u)
		}
		return nil
	case err != nil:
		return err
	case !t.dom(user):
		if stored {
			return t.removeUser(ctx, u)
		}
		return nil
	case !stored:
		_, err := t.newUser(ctx, user)
		return err
	}
	return t.commitResource(ctx, state.KindUser, u, userResource(user))
}

// ensureUser says whether user u is in the connector's scope, reading and
// adding it when the state does not hold it yet.
func (t *targetRun) ensureUser(ctx context.Context, u string) (bool, error) {
	if ok, err := t.exists(ctx, state.KindUser, u); ok || err != nil {
		return ok, err
	}
	if in, ok := t.checked[u]; ok {
		return in, nil
	}
	t.unknown++
	if t.unknown > maxUnknownUsers {
		return false, needFull(fmt.Sprintf("more than %d users new to the state", maxUnknownUsers))
	}
	user, err := t.r.d.Okta.GetUser(ctx, u)
	switch {
	case errors.Is(err, okta.ErrNotFound):
		t.checked[u] = false
		return false, nil
	case err != nil:
		return false, err
	case !t.dom(user):
		t.checked[u] = false
		return false, nil
	}
	t.checked[u] = true
	return t.newUser(ctx, user)
}

// newUser adds a user the state does not hold, with its memberships. A
// user that existed at the last full sync was out of the domain scope
// then: the grants it brings into scope need a full read.
func (t *targetRun) newUser(ctx context.Context, user okta.User) (bool, error) {
	if len(t.r.c.Options.UserDomains) > 0 && !user.Created.After(t.meta.LastFull) {
		return false, needFull("user " + user.ID + " entered the connector's domain scope")
	}
	t.checked[user.ID] = true
	if err := t.commitResource(ctx, state.KindUser, user.ID, userResource(user)); err != nil {
		return false, err
	}
	if !t.r.caps.ReviewGroupMembership {
		return true, nil
	}
	groups, err := t.groupsOf(ctx, user.ID)
	if err != nil {
		return false, err
	}
	for _, gid := range groups {
		set, ok, err := t.grants(ctx, state.KindMembers, gid)
		if err != nil || !ok {
			return false, err // a group not synced (or skipped) keeps no members
		}
		g := changes.Membership(gid, user.ID)
		if set.Grants[g.GetKey()] != nil {
			continue
		}
		set.Add(g)
		if err := t.commitGrants(ctx, state.KindMembers, gid, set); err != nil {
			return false, err
		}
		if err := t.refreshGroup(ctx, gid); err != nil {
			return false, err
		}
	}
	return true, nil
}

// groupsOf returns the groups of user u, read once per run.
func (t *targetRun) groupsOf(ctx context.Context, u string) ([]string, error) {
	if gs, ok := t.userGroups[u]; ok {
		return gs, nil
	}
	var gs []string
	err := t.r.d.Okta.ListUserGroupIDs(ctx, u, func(p []string) error {
		gs = append(gs, p...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.userGroups[u] = gs
	return gs, nil
}

// removeUser removes every grant of user u the state holds, then u.
func (t *targetRun) removeUser(ctx context.Context, u string) error {
	isUser := func(g *eventsv1.Grant) bool {
		p := g.GetPrincipal()
		return p.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_USER && p.GetId() == u
	}
	for _, kind := range []string{state.KindMembers, state.KindAppUsers, state.KindBindings} {
		err := t.eachContainer(ctx, kind, func(id string) error {
			set, _, err := t.grants(ctx, kind, id)
			if err != nil {
				return err
			}
			n := len(set.Grants)
			for k, g := range set.Grants {
				if isUser(g) {
					delete(set.Grants, k)
				}
			}
			if len(set.Grants) == n {
				return nil
			}
			if err := t.commitGrants(ctx, kind, id, set); err != nil {
				return err
			}
			if kind == state.KindMembers {
				return t.refreshGroup(ctx, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := t.remove(ctx, state.KindRolesUser, u); err != nil {
		return err
	}
	return t.remove(ctx, state.KindUser, u)
}

// ---- groups

// refreshGroup re-reads a group the state holds, whose stats changed; a
// group gone is left to its own deletion event.
func (t *targetRun) refreshGroup(ctx context.Context, gid string) error {
	if ok, err := t.exists(ctx, state.KindGroup, gid); !ok || err != nil {
		return err
	}
	grp, err := t.r.d.Okta.GetGroup(ctx, gid, true)
	if errors.Is(err, okta.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.commitResource(ctx, state.KindGroup, gid, groupResource(grp))
}

func (t *targetRun) skipped(grp okta.Group) bool {
	return t.r.c.Options.SkipAppGroups && grp.Type == "APP_GROUP"
}

// group re-reads group g.
func (t *targetRun) group(ctx context.Context, g string) error {
	_, err := t.readGroup(ctx, g)
	return err
}

// readGroup re-reads group g and returns it when it is in scope (nil when
// it is gone, whose grants it removed).
func (t *targetRun) readGroup(ctx context.Context, g string) (*okta.Group, error) {
	stored, err := t.exists(ctx, state.KindGroup, g)
	if err != nil {
		return nil, err
	}
	grp, err := t.r.d.Okta.GetGroup(ctx, g, true)
	switch {
	case errors.Is(err, okta.ErrNotFound) || (err == nil && t.skipped(grp)):
		if stored {
			return nil, t.removeGroup(ctx, g)
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	if err := t.commitResource(ctx, state.KindGroup, g, groupResource(grp)); err != nil {
		return nil, err
	}
	if t.r.caps.ReviewGroupMembership {
		if ok, err := t.exists(ctx, state.KindMembers, g); err != nil {
			return nil, err
		} else if !ok {
			if _, err := t.readMembers(ctx, grp); err != nil {
				return nil, err
			}
		}
	}
	return &grp, nil
}

// ensureGroup says whether group g is in scope, reading it when the state
// does not hold it.
func (t *targetRun) ensureGroup(ctx context.Context, g string) (bool, error) {
	if ok, err := t.exists(ctx, state.KindGroup, g); ok || err != nil {
		return ok, err
	}
	grp, err := t.readGroup(ctx, g)
	return grp != nil, err
}

// removeGroup removes group g's grants, re-reads the assignments of the
// apps assigned to it (its members' assignments through it change too),
// then removes g.
func (t *targetRun) removeGroup(ctx context.Context, g string) error {
	if err := t.remove(ctx, state.KindMembers, g); err != nil {
		return err
	}
	if err := t.remove(ctx, state.KindRolesGroup, g); err != nil {
		return err
	}
	apps, err := t.appsAssigning(ctx, g)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if err := t.appWhole(ctx, a, g); err != nil {
			return err
		}
	}
	return t.remove(ctx, state.KindGroup, g)
}

// appsAssigning returns the apps whose stored group assignments name g.
func (t *targetRun) appsAssigning(ctx context.Context, g string) ([]string, error) {
	var out []string
	key := "app_assignment/%s/group/" + g
	err := t.eachContainer(ctx, state.KindAppGroups, func(a string) error {
		set, _, err := t.grants(ctx, state.KindAppGroups, a)
		if err != nil {
			return err
		}
		if set.Grants[fmt.Sprintf(key, a)] != nil {
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// readMembers reads every member of grp and commits its members
// container; it returns the users whose membership changed.
func (t *targetRun) readMembers(ctx context.Context, grp okta.Group) ([]string, error) {
	var ids []string
	if err := t.r.d.Okta.ListGroupMemberIDs(ctx, grp.ID, func(p []string) error {
		ids = append(ids, p...)
		return nil
	}); err != nil {
		return nil, err
	}
	in := map[string]bool{}
	for _, u := range ids {
		ok, err := t.ensureUser(ctx, u)
		if err != nil {
			return nil, err
		}
		in[u] = ok
	}
	old, _, err := t.grants(ctx, state.KindMembers, grp.ID)
	if err != nil {
		return nil, err
	}
	set := membersSet(grp, ids, in)
	var changed []string
	for k, g := range set.Grants {
		if old.Grants[k] == nil {
			changed = append(changed, g.GetPrincipal().GetId())
		}
	}
	for k, g := range old.Grants {
		if set.Grants[k] == nil {
			changed = append(changed, g.GetPrincipal().GetId())
		}
	}
	return changed, t.commitGrants(ctx, state.KindMembers, grp.ID, set)
}

// groupMembers re-reads the members of group g, all or some.
func (t *targetRun) groupMembers(ctx context.Context, g string, ct *containerTargets) error {
	if !t.r.caps.ReviewGroupMembership {
		return nil
	}
	stored, err := t.exists(ctx, state.KindMembers, g)
	if err != nil {
		return err
	}
	// The group first: its lastMembershipUpdated, remembered with a whole
	// read, must not be newer than the members read after it.
	grp, err := t.readGroup(ctx, g)
	if err != nil || grp == nil {
		return err
	}
	var changed []string
	switch {
	case !stored:
		// readGroup read the members of a group new to the state.
		return nil
	case ct.whole:
		if changed, err = t.readMembers(ctx, *grp); err != nil {
			return err
		}
	default:
		// Narrowed: each user's groups say whether it is a member. The
		// container keeps its marker, so a later incremental sync still
		// re-lists the group.
		set, _, err := t.grants(ctx, state.KindMembers, g)
		if err != nil {
			return err
		}
		for _, u := range ct.users {
			in, err := t.ensureUser(ctx, u)
			if err != nil {
				return err
			}
			member := false
			if in {
				gs, err := t.groupsOf(ctx, u)
				if err != nil {
					return err
				}
				member = slices.Contains(gs, g)
			}
			mg := changes.Membership(g, u)
			if has := set.Grants[mg.GetKey()] != nil; has != member {
				if member {
					set.Add(mg)
				} else {
					delete(set.Grants, mg.GetKey())
				}
				changed = append(changed, u)
			}
		}
		if len(changed) > 0 {
			if err := t.commitGrants(ctx, state.KindMembers, g, set); err != nil {
				return err
			}
		}
	}
	if len(changed) > 0 && (grp.AppsCount == nil || *grp.AppsCount > 0) {
		return t.refreshVia(ctx, g, changed)
	}
	return nil
}

// userGroupsOf re-reads every membership of user u.
func (t *targetRun) userGroupsOf(ctx context.Context, u string) error {
	if !t.r.caps.ReviewGroupMembership {
		return nil
	}
	in, err := t.ensureUser(ctx, u)
	if err != nil || !in {
		return err
	}
	gs, err := t.groupsOf(ctx, u)
	if err != nil {
		return err
	}
	member := map[string]bool{}
	for _, g := range gs {
		member[g] = true
	}
	return t.eachContainer(ctx, state.KindMembers, func(g string) error {
		set, _, err := t.grants(ctx, state.KindMembers, g)
		if err != nil {
			return err
		}
		mg := changes.Membership(g, u)
		if has := set.Grants[mg.GetKey()] != nil; has == member[g] {
			return nil
		}
		if member[g] {
			set.Add(mg)
		} else {
			delete(set.Grants, mg.GetKey())
		}
		if err := t.commitGrants(ctx, state.KindMembers, g, set); err != nil {
			return err
		}
		if err := t.refreshGroup(ctx, g); err != nil {
			return err
		}
		return t.refreshVia(ctx, g, []string{u})
	})
}

// refreshVia recomputes, from the state, the via_group_ids of the
// group-scoped assignments of users to the apps assigned to group g: a
// membership change moves them without any app event.
func (t *targetRun) refreshVia(ctx context.Context, g string, users []string) error {
	apps, err := t.appsAssigning(ctx, g)
	if err != nil {
		return err
	}
	for _, a := range apps {
		set, _, err := t.grants(ctx, state.KindAppUsers, a)
		if err != nil {
			return err
		}
		changed := false
		for _, u := range users {
			k := "app_assignment/" + a + "/user/" + u
			gr := set.Grants[k]
			aa := gr.GetAppAssignment()
			if aa == nil || aa.GetScope() != eventsv1.AppAssignment_SCOPE_GROUP {
				continue
			}
			via, err := t.via(ctx, a, u)
			if err != nil {
				return err
			}
			if slices.Equal(via, aa.GetViaGroupIds()) {
				continue
			}
			ng := cloneGrant(gr)
			ng.GetAppAssignment().ViaGroupIds = via
			set.Add(ng)
			changed = true
		}
		if changed {
			if err := t.commitGrants(ctx, state.KindAppUsers, a, set); err != nil {
				return err
			}
		}
	}
	return nil
}

// via returns the groups assigned to app a that user u is a member of,
// sorted, from the state.
func (t *targetRun) via(ctx context.Context, a, u string) ([]string, error) {
	ags, _, err := t.grants(ctx, state.KindAppGroups, a)
	if err != nil {
		return nil, err
	}
	var via []string
	for _, gr := range ags.Grants {
		gid := gr.GetPrincipal().GetId()
		ok, err := t.memberOf(ctx, gid, u)
		if err != nil {
			return nil, err
		}
		if ok {
			via = append(via, gid)
		}
	}
	slices.Sort(via)
	return via, nil
}

// ---- apps

func (t *targetRun) appInScope(app okta.App) bool {
	return t.r.c.Options.SyncInactiveApps || app.Status != "INACTIVE"
}

// app re-reads app a.
func (t *targetRun) app(ctx context.Context, a string) error {
	_, err := t.readApp(ctx, a)
	return err
}

// readApp re-reads app a and says whether it is in scope; an app new to
// the state comes with its assignments.
func (t *targetRun) readApp(ctx context.Context, a string) (bool, error) {
	stored, err := t.exists(ctx, state.KindApp, a)
	if err != nil {
		return false, err
	}
	app, err := t.r.d.Okta.GetApp(ctx, a)
	switch {
	case errors.Is(err, okta.ErrNotFound) || (err == nil && !t.appInScope(app)):
		if !stored {
			return false, nil
		}
		for _, kind := range []string{state.KindAppUsers, state.KindAppGroups} {
			if err := t.remove(ctx, kind, a); err != nil {
				return false, err
			}
		}
		return false, t.remove(ctx, state.KindApp, a)
	case err != nil:
		return false, err
	}
	if err := t.commitResource(ctx, state.KindApp, a, appResource(app)); err != nil {
		return false, err
	}
	if !stored && t.r.caps.ReviewAppAssignment {
		return true, t.appWhole(ctx, a, "")
	}
	return true, nil
}

// appAssignments re-reads the assignments of app a, all or some users'.
func (t *targetRun) appAssignments(ctx context.Context, a string, ct *containerTargets) error {
	if !t.r.caps.ReviewAppAssignment {
		return nil
	}
	if ok, err := t.exists(ctx, state.KindApp, a); err != nil {
		return err
	} else if !ok {
		_, err := t.readApp(ctx, a) // a new app comes with its assignments
		return err
	}
	if ct.whole {
		return t.appWhole(ctx, a, "")
	}
	set, _, err := t.grants(ctx, state.KindAppUsers, a)
	if err != nil {
		return err
	}
	for _, u := range ct.users {
		k := "app_assignment/" + a + "/user/" + u
		in, err := t.ensureUser(ctx, u)
		if err != nil {
			return err
		}
		if !in {
			delete(set.Grants, k)
			continue
		}
		au, err := t.r.d.Okta.GetAppUser(ctx, a, u)
		if errors.Is(err, okta.ErrNotFound) {
			delete(set.Grants, k)
			continue
		}
		if err != nil {
			return err
		}
		var via []string
		if au.Scope == "GROUP" {
			if via, err = t.via(ctx, a, u); err != nil {
				return err
			}
		}
		set.Add(appUserGrant(a, au, via))
	}
	return t.commitGrants(ctx, state.KindAppUsers, a, set)
}

// appWhole reads every assignment of app a. gone, when set, is a group
// being removed: out of scope already.
func (t *targetRun) appWhole(ctx context.Context, a, gone string) error {
	var aus []okta.AppUser
	if err := t.r.d.Okta.ListAppUsers(ctx, a, func(p []okta.AppUser) error { aus = append(aus, p...); return nil }); err != nil {
		return err
	}
	var ags []okta.AppGroup
	if err := t.r.d.Okta.ListAppGroups(ctx, a, func(p []okta.AppGroup) error { ags = append(ags, p...); return nil }); err != nil {
		return err
	}
	groups, users := map[string]bool{}, map[string]bool{}
	for _, ag := range ags {
		if ag.GroupID == gone {
			continue
		}
		ok, err := t.ensureGroup(ctx, ag.GroupID)
		if err != nil {
			return err
		}
		groups[ag.GroupID] = ok
	}
	for _, au := range aus {
		ok, err := t.ensureUser(ctx, au.UserID)
		if err != nil {
			return err
		}
		users[au.UserID] = ok
	}
	old, _, err := t.grants(ctx, state.KindAppGroups, a)
	if err != nil {
		return err
	}
	gset, assigned := appGroupsSet(a, ags, groups)
	// A group gaining or losing an app changes its stats.
	var moved []string
	for k, g := range gset.Grants {
		if old.Grants[k] == nil {
			moved = append(moved, g.GetPrincipal().GetId())
		}
	}
	for k, g := range old.Grants {
		if gset.Grants[k] == nil && g.GetPrincipal().GetId() != gone {
			moved = append(moved, g.GetPrincipal().GetId())
		}
	}
	var merr error
	memberOf := func(gid, uid string) bool {
		ok, err := t.memberOf(ctx, gid, uid)
		if err != nil && merr == nil {
			merr = err
		}
		return ok
	}
	uset := appUsersSet(a, aus, users, groups, true, assigned, memberOf)
	if merr != nil {
		return merr
	}
	if err := t.commitGrants(ctx, state.KindAppGroups, a, gset); err != nil {
		return err
	}
	if err := t.commitGrants(ctx, state.KindAppUsers, a, uset); err != nil {
		return err
	}
	slices.Sort(moved)
	for _, g := range slices.Compact(moved) {
		if err := t.refreshGroup(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// ---- roles

// userRolesOf re-reads the role assignments of user u.
func (t *targetRun) userRolesOf(ctx context.Context, u string) error {
	if !t.r.caps.ReviewRoles {
		return nil
	}
	in, err := t.ensureUser(ctx, u)
	if err != nil {
		return err
	}
	if !in {
		return t.remove(ctx, state.KindRolesUser, u)
	}
	rs, err := t.r.d.Okta.ListUserRoles(ctx, u)
	if errors.Is(err, okta.ErrNotFound) {
		return nil // deleted meanwhile: its own event removes it
	}
	if err != nil {
		return err
	}
	old, exists, err := t.grants(ctx, state.KindRolesUser, u)
	if err != nil {
		return err
	}
	// The assignee marker (package doc) stays once given; a user with a
	// role of its own is an assignee.
	t.r.assignees = map[string]bool{u: old.Marker == assigneeMarker || len(rs) > 0}
	types := map[string]string{}
	set := t.r.rolesSet(state.KindRolesUser, "user", u, rs, types)
	if skipEmpty(state.KindRolesUser, set) && !exists {
		return nil
	}
	if err := t.commitGrants(ctx, state.KindRolesUser, u, set); err != nil {
		return err
	}
	return t.standardRoles(ctx, types)
}

// groupRolesOf re-reads the role assignments of group g.
func (t *targetRun) groupRolesOf(ctx context.Context, g string) error {
	if !t.r.caps.ReviewRoles {
		return nil
	}
	in, err := t.ensureGroup(ctx, g)
	if err != nil || !in {
		return err
	}
	rs, err := t.r.d.Okta.ListGroupRoles(ctx, g)
	if errors.Is(err, okta.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	types := map[string]string{}
	if err := t.commitGrants(ctx, state.KindRolesGroup, g, t.r.rolesSet(state.KindRolesGroup, "group", g, rs, types)); err != nil {
		return err
	}
	return t.standardRoles(ctx, types)
}

// standardRoles adds the standard role types newly held. A type no longer
// held by anyone is removed by the next full read, the only one that sees
// every principal's roles.
func (t *targetRun) standardRoles(ctx context.Context, types map[string]string) error {
	for _, typ := range sortedKeys(types) {
		if err := t.commitResource(ctx, state.KindStandardRole, typ, standardRoleResource(typ, types[typ])); err != nil {
			return err
		}
	}
	return nil
}

func cloneGrant(g *eventsv1.Grant) *eventsv1.Grant { return proto.CloneOf(g) }
