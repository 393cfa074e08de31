package fullsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"golang.org/x/sync/errgroup"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Incremental resync defaults (see the package doc).
const (
	// DefaultResyncMargin is how far before the last run's start an
	// incremental run looks, for clock skew and late System Log storage.
	DefaultResyncMargin = 5 * time.Minute
	// DefaultFullResyncAfter is the longest an incremental run may build on:
	// past it since the last full read (or the last run), a run reads in full.
	DefaultFullResyncAfter = 24 * time.Hour
	// DefaultFullResyncEvery is how many incremental runs may follow a full one.
	DefaultFullResyncEvery = 24
)

// logFilter selects the System Log events that tell an incremental run what
// to re-read: user deletions, role grants and revocations, group and app
// changes (memberships, assignments, lifecycle) and custom role changes.
const logFilter = `eventType sw "user.lifecycle." or eventType sw "user.account.privilege." or ` +
	`eventType sw "group." or eventType sw "application." or eventType sw "iam."`

// errNeedFull makes a run read in full after an incremental read found it
// cannot be trusted.
var errNeedFull = errors.New("fullsync: incremental read not possible")

// fingerprint names what the state was built with: an incremental run
// needs the same options and capabilities.
func (r *runner) fingerprint() string {
	o := r.c.Options
	doms := slices.Clone(o.UserDomains)
	for i, d := range doms {
		doms[i] = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
	}
	slices.Sort(doms)
	return fmt.Sprintf("v1 inactive=%t skipappgroups=%t custom=%t domains=%s members=%t apps=%t roles=%t",
		o.SyncInactiveApps, o.SkipAppGroups, o.SyncCustomRoles, strings.Join(doms, ","),
		r.caps.ReviewGroupMembership, r.caps.ReviewAppAssignment, r.caps.ReviewRoles)
}

// incrementalSince returns the time an incremental read looks back to, or
// the reason the run reads in full.
func (r *runner) incrementalSince() (time.Time, string) {
	m, o, now := r.snap.Meta, r.c.Options, r.caps.ServerTime
	after := o.FullResyncAfter
	if after <= 0 {
		after = DefaultFullResyncAfter
	}
	every := o.FullResyncEvery
	if every == 0 {
		every = DefaultFullResyncEvery
	}
	margin := o.ResyncMargin
	if margin <= 0 {
		margin = DefaultResyncMargin
	}
	switch {
	case every < 0:
		return time.Time{}, "incremental resync is turned off"
	case r.c.ConfirmRemovals:
		return time.Time{}, "confirming removals"
	case m.Watermark.IsZero():
		return time.Time{}, "no previous run to build on"
	case now.IsZero():
		return time.Time{}, "Okta sent no Date header"
	case !r.caps.ReviewGroupMembership || !r.caps.ReviewAppAssignment:
		return time.Time{}, "the token may not review memberships and assignments"
	case m.Fingerprint != r.fingerprint():
		return time.Time{}, "options or capabilities changed"
	case now.Sub(m.Watermark) > after || now.Sub(m.LastFull) > after:
		return time.Time{}, "the last full read is too old"
	case m.SinceFull >= every:
		return time.Time{}, "periodic full read"
	}
	return m.Watermark.Add(-margin), ""
}

// writeMeta records what the next run builds on. A run that held removals
// forces the next one to read in full, so that it finds them again.
func (r *runner) writeMeta(ctx context.Context) error {
	m := state.SyncMeta{Fingerprint: r.fingerprint(), LastFull: r.snap.Meta.LastFull, SinceFull: r.snap.Meta.SinceFull + 1,
		Capabilities: state.MetaCapabilities{
			ReviewGroupMembership: r.caps.ReviewGroupMembership,
			ReviewAppAssignment:   r.caps.ReviewAppAssignment,
			ReviewRoles:           r.caps.ReviewRoles,
		}}
	if !r.incremental {
		m.LastFull, m.SinceFull = r.caps.ServerTime, 0
	}
	if !r.report.RemovalsHeld {
		m.Watermark = r.caps.ServerTime
	}
	return r.d.State.PutMeta(ctx, r.c.ID, m)
}

// storedIDs returns the ids of connector containers of kind that exist.
func (r *runner) storedIDs(kind string) map[string]bool {
	out := map[string]bool{}
	for key, ent := range r.snap.Containers {
		if !ent.Exists() {
			continue
		}
		if k, id, ok := state.SplitKey(r.c.ID, key); ok && k == kind {
			out[id] = true
		}
	}
	return out
}

// stored decodes a stored grant container; nil when absent.
func (r *runner) stored(kind, id string) (*changes.GrantSet, error) {
	key, err := r.key(kind, id)
	if err != nil {
		return nil, err
	}
	ent := r.snap.Containers[key]
	if !ent.Exists() {
		return nil, nil
	}
	return changes.DecodeGrants(kind, id, ent.Value)
}

// readIncremental reads what changed since since (see the package doc).
// errNeedFull says a full read is needed instead.
func (r *runner) readIncremental(ctx context.Context, since time.Time) error {
	r.incremental = true
	r.members, r.unchanged = map[string][]string{}, map[string]bool{}
	r.appUsers, r.appGroups = map[string][]okta.AppUser{}, map[string][]okta.AppGroup{}
	r.userRoles, r.groupRoles = map[string][]okta.RoleAssignment{}, map[string][]okta.RoleAssignment{}
	var (
		events    []okta.LogEvent
		logErr    error
		assignees = map[string]bool{}
		assignErr error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var users pageList[okta.User]
		err := r.d.Okta.ListUsers(gctx, okta.ListUsersOptions{IncludeDeprovisioned: true, LastUpdatedAfter: since}, users.add)
		r.users = users.join(r.users)
		return err
	})
	g.Go(func() error {
		var groups pageList[okta.Group]
		err := r.d.Okta.ListGroups(gctx, okta.ListGroupsOptions{ExpandStats: true}, groups.add)
		r.groups = groups.join(r.groups)
		return err
	})
	g.Go(func() error {
		var apps pageList[okta.App]
		err := r.d.Okta.ListApps(gctx, okta.ListAppsOptions{IncludeInactive: r.c.Options.SyncInactiveApps}, apps.add)
		r.apps = apps.join(r.apps)
		return err
	})
	g.Go(func() error {
		// The Date header is to whole seconds: until reaches past it, so an
		// event of the same second is not left for the next run.
		until := r.caps.ServerTime.Add(time.Second)
		logErr = r.d.Okta.ListLogs(gctx, okta.ListLogsOptions{Since: since, Until: until, Filter: logFilter}, func(evs []okta.LogEvent) error {
			events = append(events, evs...)
			return nil
		})
		if logErr != nil && gctx.Err() != nil {
			return logErr
		}
		return nil
	})
	r.assignees = assignees
	if r.caps.ReviewRoles {
		g.Go(func() error {
			assignErr = r.d.Okta.ListRoleAssignees(gctx, func(ids []string) error {
				for _, id := range ids {
					assignees[id] = true
				}
				return nil
			})
			if assignErr != nil && gctx.Err() != nil {
				return assignErr
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if logErr != nil {
		return fmt.Errorf("%w: the System Log could not be read: %w", errNeedFull, logErr)
	}
	if assignErr != nil {
		return fmt.Errorf("%w: the role assignees could not be listed: %w", errNeedFull, assignErr)
	}

	// What the System Log says changed.
	deletedUsers, logApps, logUsers, logGroups := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	iamChanged := false
	for _, ev := range events {
		t := ev.EventType
		privilege := strings.HasPrefix(t, "iam.") || strings.HasPrefix(t, "user.account.privilege.") || strings.HasPrefix(t, "group.privilege.")
		iamChanged = iamChanged || strings.HasPrefix(t, "iam.")
		for _, tg := range ev.Targets {
			switch tg.Type {
			case "AppInstance":
				logApps[tg.ID] = true
			case "User":
				if t == "user.lifecycle.delete.initiated" {
					deletedUsers[tg.ID] = true
				}
				if privilege {
					logUsers[tg.ID] = true
				}
			case "UserGroup":
				if privilege {
					logGroups[tg.ID] = true
				}
			}
		}
	}

	// Users: the changed ones were listed; the others are kept as stored.
	storedUsers := r.storedIDs(state.KindUser)
	dom := r.domainFilter()
	listed := map[string]bool{}
	for _, u := range r.users {
		listed[u.ID] = true
		delete(deletedUsers, u.ID)
		in := dom(u)
		if len(r.c.Options.UserDomains) > 0 && in != storedUsers[u.ID] && !(in && u.Created.After(since)) {
			// Its grants in containers not re-read would be wrong.
			return fmt.Errorf("%w: user %s moved in or out of the connector's user domains", errNeedFull, u.ID)
		}
	}
	r.keptUsers = map[string]bool{}
	for id := range storedUsers {
		if !listed[id] && !deletedUsers[id] {
			r.keptUsers[id] = true
		}
	}

	// Members: as in a full read, re-listed only where lastMembershipUpdated moved.
	if err := r.readMembers(ctx); err != nil {
		return err
	}
	sc := r.scope()
	changedGroups := map[string]bool{} // re-listed, new or deleted
	for _, grp := range r.groups {
		if sc.groups[grp.ID] && !r.unchanged[grp.ID] {
			changedGroups[grp.ID] = true
		}
	}
	for id := range r.storedIDs(state.KindMembers) {
		if !sc.groups[id] {
			changedGroups[id] = true
		}
	}
	groupDeleted := false
	for id := range r.storedIDs(state.KindGroup) {
		groupDeleted = groupDeleted || !sc.groups[id]
	}

	// Apps: re-read the new ones, those the log names, and those assigned
	// to a group whose members changed (their users' assignments follow).
	storedApps := r.storedIDs(state.KindAppUsers)
	reread := map[string]bool{}
	for _, a := range r.apps {
		if !storedApps[a.ID] || logApps[a.ID] {
			reread[a.ID] = true
			continue
		}
		ags, err := r.stored(state.KindAppGroups, a.ID)
		if err != nil {
			return err
		}
		if ags == nil {
			reread[a.ID] = true
			continue
		}
		for _, gr := range ags.Grants {
			if changedGroups[gr.GetPrincipal().GetId()] {
				reread[a.ID] = true
				break
			}
		}
	}
	if err := r.readAssignments(ctx, reread); err != nil {
		return err
	}

	if r.caps.ReviewRoles {
		if err := r.readRolesIncremental(ctx, sc, assignees, changedGroups, logUsers, logGroups); err != nil {
			return err
		}
	} else {
		r.skip("role_assignment", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
			"grant the token's admin the Super Administrator role to review roles")
		r.skip("standard_role", eventsv1.SkippedPart_REASON_MISSING_CAPABILITY,
			"grant the token's admin the Super Administrator role to review roles")
	}
	if r.skipCustomRoles() && (iamChanged || len(deletedUsers) > 0 || groupDeleted) {
		return r.readIAM(ctx)
	}
	return nil
}

// readRolesIncremental reads the roles of the groups that are new or that
// the log names, and of the role assignees that are new, that the log
// names, that changed, or that joined or left a group holding roles. Users
// no longer assignees hold none, without a call.
func (r *runner) readRolesIncremental(ctx context.Context, sc scope, assignees, changedGroups, logUsers, logGroups map[string]bool) error {
	storedGroupRoles := r.storedIDs(state.KindRolesGroup)
	readGroups := map[string]bool{}
	roleGroups := map[string]bool{} // groups holding roles, before or now
	for id := range sc.groups {
		if !storedGroupRoles[id] || logGroups[id] {
			readGroups[id] = true
		}
	}
	for id := range storedGroupRoles {
		set, err := r.stored(state.KindRolesGroup, id)
		if err != nil {
			return err
		}
		if set != nil && len(set.Grants) > 0 {
			roleGroups[id] = true
		}
	}
	for id := range logGroups {
		roleGroups[id] = true
	}
	readUsers := map[string]bool{}
	for _, u := range r.users {
		readUsers[u.ID] = true
	}
	for id := range logUsers {
		readUsers[id] = true
	}
	// The members of a group granted or revoked a role inherit or lose it.
	for gid := range logGroups {
		for _, u := range r.members[gid] {
			readUsers[u] = true
		}
		old, err := r.stored(state.KindMembers, gid)
		if err != nil {
			return err
		}
		if old != nil {
			for _, gr := range old.Grants {
				readUsers[gr.GetPrincipal().GetId()] = true
			}
		}
	}
	// Members who joined or left a group holding roles inherit or lose them.
	for gid := range changedGroups {
		if !roleGroups[gid] {
			continue
		}
		old, err := r.stored(state.KindMembers, gid)
		if err != nil {
			return err
		}
		now := map[string]bool{}
		for _, u := range r.members[gid] {
			now[u] = true
		}
		if old != nil {
			for _, gr := range old.Grants {
				u := gr.GetPrincipal().GetId()
				if !now[u] {
					readUsers[u] = true
				}
				delete(now, u)
			}
		}
		for u := range now {
			readUsers[u] = true
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(roleReaders)
	var mu sync.Mutex
	failed := false
	read := func(kind, id string, list func(context.Context, string) ([]okta.RoleAssignment, error), into map[string][]okta.RoleAssignment) {
		g.Go(func() error {
			rs, err := list(gctx, id)
			if err != nil {
				reason, ok := partError(err)
				if !ok {
					return err
				}
				r.skip(kind+"/"+id+"/roles", reason, "the role assignments could not be read: "+err.Error())
				mu.Lock()
				failed = true
				mu.Unlock()
				return nil
			}
			mu.Lock()
			into[id] = rs
			mu.Unlock()
			return nil
		})
	}
	for id := range sc.users {
		switch {
		case !assignees[id]:
			// Holds no role: an empty container, written only if it changes.
			set, err := r.stored(state.KindRolesUser, id)
			if err != nil {
				return err
			}
			if set == nil || len(set.Grants) > 0 || set.Marker != "" {
				mu.Lock()
				r.userRoles[id] = nil
				mu.Unlock()
			}
		case readUsers[id]:
			read("user", id, r.d.Okta.ListUserRoles, r.userRoles)
		default:
			if set, err := r.stored(state.KindRolesUser, id); err != nil {
				return err
			} else if set == nil || set.Marker != assigneeMarker {
				read("user", id, r.d.Okta.ListUserRoles, r.userRoles) // a new assignee
			}
		}
	}
	for id := range readGroups {
		read("group", id, r.d.Okta.ListGroupRoles, r.groupRoles)
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.rolesRead = !failed
	return nil
}

// keptRoleTypes adds to types the standard role types held in the role
// containers an incremental run did not re-read.
func (r *runner) keptRoleTypes(sc scope, types map[string]string) error {
	for key, ent := range r.snap.Containers {
		if !ent.Exists() {
			continue
		}
		kind, id, ok := state.SplitKey(r.c.ID, key)
		if !ok {
			continue
		}
		switch {
		case kind == state.KindRolesUser && sc.users[id]:
			if _, read := r.userRoles[id]; read {
				continue
			}
		case kind == state.KindRolesGroup && sc.groups[id]:
			if _, read := r.groupRoles[id]; read {
				continue
			}
		default:
			continue
		}
		set, err := changes.DecodeGrants(kind, id, ent.Value)
		if err != nil {
			return err
		}
		for _, gr := range set.Grants {
			if ra := gr.GetRoleAssignment(); ra != nil && ra.GetRoleType() != "CUSTOM" {
				types[ra.GetRoleType()] = ra.GetLabel()
			}
		}
	}
	return nil
}
