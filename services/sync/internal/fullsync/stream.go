package fullsync

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"golang.org/x/sync/errgroup"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// Committing while reading. A full read hands each container to a pool of
// committers as soon as everything it depends on is read, instead of
// committing the whole org after the whole read: the commit then overlaps
// the read, which the rate limits make long, and a run ends soon after its
// last call. A container's dependencies:
//
//   - users, groups, apps: their own list page;
//   - a group's members: the group's member list and the complete users
//     list (the connector's scope of users);
//   - an app's group assignments: the app's list and the complete groups
//     list; its user assignments: the app's two lists, both complete lists,
//     and the member lists of the groups assigned to it (via_group_ids);
//   - a principal's roles: its role list and the complete list of its kind.
//
// Only containers that lose nothing are committed early: additions and
// updates. A container that would lose a grant waits for the end of the
// read, where the removal guard counts every removal before any is
// published (package doc), exactly as when nothing was committed early.
// Standard roles, custom roles, resource sets and bindings, and every
// container gone, are committed after the read too. Each early commit is an
// ordinary journaled commit (package changes), so a run killed at any
// point loses and duplicates nothing.

// streamJob is one container to commit early: a grant container (built
// by set when a committer takes it) or a resource.
type streamJob struct {
	key      string
	kind     string
	set      func() *changes.GrantSet
	resource *eventsv1.Resource
}

// streamer commits the containers of a full read while it reads.
type streamer struct {
	r *runner
	// queue holds the containers waiting for a committer. It is not
	// bounded: a reader that waited for the committers would leave its
	// bucket idle, and the bucket, not the commit, is what a run waits for.
	// What it holds is what the read holds anyway.
	qmu    sync.Mutex
	queue  []streamJob
	oldest time.Time     // when the oldest job in queue was queued
	linger time.Duration // streamLinger; longer in tests
	closed bool
	wake   chan struct{} // a token when the queue may have work or closed

	// usersDone and groupsDone close when the complete users or groups
	// list is in, after users or groups (the ids in scope) are set.
	usersDone, groupsDone chan struct{}
	// membersDone closes when the members of every group are read (or
	// skipped, or not to be read at all).
	membersDone   chan struct{}
	users, groups map[string]bool
	// memberRead maps each group whose members are listed to a channel
	// closed once they are read (or skipped); set before groupsDone closes.
	memberRead map[string]chan struct{}

	// g runs the lists and the builders that wait for a container's
	// dependencies; ctx is its context.
	g   *errgroup.Group
	ctx context.Context

	mu sync.Mutex
	// done holds the containers committed early, with their grant count.
	done map[string]int
}

func newStreamer(r *runner) *streamer {
	return &streamer{
		r: r, wake: make(chan struct{}, 1), linger: streamLinger,
		usersDone: make(chan struct{}), groupsDone: make(chan struct{}), membersDone: make(chan struct{}),
		done: map[string]int{},
	}
}

// committed says whether container key was committed early, and with how
// many grants.
func (s *streamer) committed(key string) (int, bool) {
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.done[key]
	return n, ok
}

// wait waits for every channel to close.
func wait(ctx context.Context, chs ...chan struct{}) error {
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// offer queues a container for an early commit.
func (s *streamer) offer(ctx context.Context, j streamJob) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.qmu.Lock()
	if len(s.queue) == 0 {
		s.oldest = time.Now()
	}
	s.queue = append(s.queue, j)
	s.qmu.Unlock()
	s.signal()
	return nil
}

// offerResource queues a resource container.
func (s *streamer) offerResource(ctx context.Context, kind, id string, res *eventsv1.Resource) error {
	key, err := s.r.key(kind, id)
	if err != nil {
		return err
	}
	return s.offer(ctx, streamJob{key: key, kind: kind, resource: res})
}

// offerGrants queues a grant container, which set builds when a committer
// takes it: the queue then holds what the read holds anyway (the ids of a
// group's members, an app's assignments as read), not the grants, which
// for a large org waiting for the committers were the largest part of a
// run's memory.
func (s *streamer) offerGrants(ctx context.Context, kind, id string, set func() *changes.GrantSet) error {
	key, err := s.r.key(kind, id)
	if err != nil {
		return err
	}
	return s.offer(ctx, streamJob{key: key, kind: kind, set: set})
}

// close tells the committers that nothing more comes.
func (s *streamer) close() {
	s.qmu.Lock()
	s.closed = true
	s.qmu.Unlock()
	s.signal()
}

func (s *streamer) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// streamBatch is the most containers a committer takes from the queue at
// once and commits together (changes.Committer.CommitBatch).
const streamBatch = 64

// streamLinger is how long a container may wait in the queue for others
// to commit with. Containers come in as their reads end, one at a time;
// committed as they come, most commits would hold one container, and each
// commit costs a journal write and its removal, a few round trips and a
// batch of its own on the stream, whatever its size. A full sync is paced
// by its reads, so the wait costs it nothing but a few milliseconds at the
// end.
const streamLinger = 20 * time.Millisecond

// next returns up to streamBatch queued containers, without waiting for
// more than one once the oldest has waited streamLinger; none once the
// queue is closed and empty.
func (s *streamer) next(ctx context.Context) ([]streamJob, error) {
	for {
		s.qmu.Lock()
		n := min(len(s.queue), streamBatch)
		linger := s.linger - time.Since(s.oldest)
		if n > 0 && (n == streamBatch || s.closed || linger <= 0) {
			jobs := slices.Clone(s.queue[:n])
			clear(s.queue[:n])
			s.queue = s.queue[n:]
			s.oldest = time.Now() // the rest waited, but not for long
			more := len(s.queue) > 0
			s.qmu.Unlock()
			if more {
				s.signal() // pass the wake on to another committer
			}
			return jobs, nil
		}
		closed := s.closed
		s.qmu.Unlock()
		if closed {
			s.signal() // every committer must see the end
			return nil, nil
		}
		// Wait for more (or the end), and no longer than the oldest
		// queued container may wait.
		if err := s.waitWake(ctx, n > 0, linger); err != nil {
			return nil, err
		}
	}
}

// waitWake waits for a wake token, for ctx to end, or, when expires is
// set, for d.
func (s *streamer) waitWake(ctx context.Context, expires bool, d time.Duration) error {
	var expired <-chan time.Time
	if expires {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-s.wake:
	case <-expired:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// work commits queued containers until the queue closes.
func (s *streamer) work(ctx context.Context) error {
	for {
		jobs, err := s.next(ctx)
		if err != nil || len(jobs) == 0 {
			return err
		}
		if err := s.commit(ctx, jobs); err != nil {
			return err
		}
	}
}

// commit commits the jobs that lose no grant, in batches whose journaled
// values stay under changes.MaxBatchJournal.
func (s *streamer) commit(ctx context.Context, jobs []streamJob) error {
	var (
		batch  []changes.Item
		keys   []string
		grants []int
		size   int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.r.com.CommitBatch(ctx, batch); err != nil {
			return err
		}
		for i, key := range keys {
			s.markDone(key, grants[i])
		}
		batch, keys, grants, size = batch[:0], keys[:0], grants[:0], 0
		return nil
	}
	for _, j := range jobs {
		it, n, ok, err := s.item(j)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if size+len(it.Next) > changes.MaxBatchJournal {
			if err := flush(); err != nil {
				return err
			}
		}
		batch, keys, grants = append(batch, it), append(keys, j.key), append(grants, n)
		size += len(it.Next)
	}
	return flush()
}

// item encodes a job, and says whether it is committed now: not when it
// loses a grant (left for the removal guard), nor when it is an empty
// user role container that does not exist yet (skipEmpty), which is done
// without a write.
func (s *streamer) item(j streamJob) (changes.Item, int, bool, error) {
	prev := s.r.snap.Containers[j.key]
	if j.set == nil {
		v, err := changes.EncodeResource(j.resource)
		if err != nil {
			return changes.Item{}, 0, false, fmt.Errorf("encode %s: %w", j.key, err)
		}
		return changes.Item{Key: j.key, Prev: prev, Next: v, Resource: j.resource}, 0, true, nil
	}
	set := j.set()
	n := len(set.Grants)
	if prev.Exists() {
		_, id, _ := state.SplitKey(s.r.c.ID, j.key)
		old, err := changes.DecodeGrants(j.kind, id, prev.Value)
		if err != nil {
			return changes.Item{}, 0, false, fmt.Errorf("early commit of %s: %w", j.key, err)
		}
		for k := range old.Grants {
			if _, ok := set.Grants[k]; !ok {
				return changes.Item{}, 0, false, nil
			}
		}
	} else if skipEmpty(j.kind, set) {
		s.markDone(j.key, n)
		return changes.Item{}, 0, false, nil
	}
	v, err := changes.EncodeGrants(j.kind, set)
	if err != nil {
		return changes.Item{}, 0, false, fmt.Errorf("encode %s: %w", j.key, err)
	}
	return changes.Item{Key: j.key, Prev: prev, Next: v, Grants: set}, n, true, nil
}

func (s *streamer) markDone(key string, n int) {
	s.mu.Lock()
	s.done[key] = n
	s.mu.Unlock()
}

// noRoles notes, without queueing it, the role container of a user in scope
// who holds no role, is no role assignee and had no container: what item
// would do with it (skipEmpty). Most users of an org are such users.
func (s *streamer) noRoles(kind, id string, rs []okta.RoleAssignment) bool {
	if kind != state.KindRolesUser || len(rs) != 0 || s.r.assignees[id] {
		return false
	}
	select {
	case <-s.usersDone:
	default:
		return false
	}
	if !s.users[id] {
		return false
	}
	key, err := s.r.key(kind, id)
	if err != nil || s.r.snap.Containers[key].Exists() {
		return false
	}
	s.markDone(key, 0)
	return true
}

// skipEmpty says whether a grant container that does not exist yet need
// not be written: a user's role container without roles or the assignee
// marker, which every user outside the role assignees has. Absent and empty
// mean the same to every later run, and writing one for each user of the
// org was the largest part of a first sync's state writes.
func skipEmpty(kind string, set *changes.GrantSet) bool {
	return kind == state.KindRolesUser && len(set.Grants) == 0 && set.Marker == ""
}

// memberOf returns whether user uid is a member of group gid as read (or
// kept); a group whose members were not read has none.
func (r *runner) memberOf(gid, uid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	set, ok := r.memberSets[gid]
	if !ok {
		ids := r.members[gid]
		set = make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		if r.memberSets == nil {
			r.memberSets = map[string]map[string]bool{}
		}
		r.memberSets[gid] = set
	}
	return set[uid]
}

// membersSet is the members container of group g: the members in scope.
func membersSet(g okta.Group, ids []string, users map[string]bool) *changes.GrantSet {
	set := changes.NewGrantSetSize(marker(g.LastMembershipUpdated), len(ids))
	for _, uid := range ids {
		if users[uid] {
			set.Add(changes.Membership(g.ID, uid))
		}
	}
	return set
}

// appGroupsSet is the group assignments container of an app, with the
// assigned groups in scope, sorted.
func appGroupsSet(appID string, ags []okta.AppGroup, groups map[string]bool) (*changes.GrantSet, []string) {
	set := changes.NewGrantSet("")
	var assigned []string
	for _, ag := range ags {
		if groups[ag.GroupID] {
			assigned = append(assigned, ag.GroupID)
			set.Add(appGroupGrant(appID, ag))
		}
	}
	slices.Sort(assigned)
	return set, slices.Compact(assigned)
}

// appUsersSet is the user assignments container of an app. A GROUP-scoped
// assignment names, as via_group_ids, the assigned groups (sorted) the user
// is a member of; when the group assignments could not be read
// (assigned == nil and !agsRead), the group Okta names, if in scope.
func appUsersSet(appID string, aus []okta.AppUser, users, groups map[string]bool, agsRead bool, assigned []string, memberOf func(gid, uid string) bool) *changes.GrantSet {
	set := changes.NewGrantSetSize("", len(aus))
	for _, au := range aus {
		if !users[au.UserID] {
			continue
		}
		var via []string
		if au.Scope == "GROUP" {
			if agsRead {
				for _, gid := range assigned {
					if memberOf(gid, au.UserID) {
						via = append(via, gid)
					}
				}
			} else if au.GroupID != "" && groups[au.GroupID] {
				via = []string{au.GroupID}
			}
		}
		set.Add(appUserGrant(appID, au, via))
	}
	return set
}

// rolesSet is the role container of a user or group (principal "user" or
// "group"); it adds the standard role types it holds to types.
func (r *runner) rolesSet(kind, principal, id string, rs []okta.RoleAssignment, types map[string]string) *changes.GrantSet {
	mark := ""
	if kind == state.KindRolesUser && r.assignees[id] {
		mark = assigneeMarker
	}
	set := changes.NewGrantSet(mark)
	for _, ra := range rs {
		if ra.Type == "CUSTOM" && !r.c.Options.SyncCustomRoles {
			continue
		}
		set.Add(roleGrant(principal, id, ra))
		if ra.Type != "CUSTOM" && types != nil {
			types[ra.Type] = ra.Label
		}
	}
	return set
}

// buildApp hands an app's assignment containers to the committers once
// their dependencies are read: the groups list for its group assignments;
// the users list and the members of every group assigned to it for its
// user assignments.
func (s *streamer) buildApp(app okta.App, aus []okta.AppUser, ausOK bool, ags []okta.AppGroup, agsOK bool) error {
	ctx := s.ctx
	if err := wait(ctx, s.groupsDone); err != nil {
		return err
	}
	var assigned []string
	if agsOK {
		var set *changes.GrantSet
		set, assigned = appGroupsSet(app.ID, ags, s.groups)
		if err := s.offerGrants(ctx, state.KindAppGroups, app.ID, func() *changes.GrantSet { return set }); err != nil {
			return err
		}
	}
	if !ausOK {
		return nil
	}
	if err := wait(ctx, s.usersDone); err != nil {
		return err
	}
	for _, gid := range assigned {
		if ch, ok := s.memberRead[gid]; ok {
			if err := wait(ctx, ch); err != nil {
				return err
			}
		}
	}
	return s.offerGrants(ctx, state.KindAppUsers, app.ID, func() *changes.GrantSet {
		return appUsersSet(app.ID, aus, s.users, s.groups, agsOK, assigned, s.r.memberOf)
	})
}

// buildMembers hands a group's members container to the committers once
// the users list is in.
func (s *streamer) buildMembers(grp okta.Group, ids []string) {
	s.g.Go(func() error {
		if err := wait(s.ctx, s.usersDone); err != nil {
			return err
		}
		return s.offerGrants(s.ctx, state.KindMembers, grp.ID, func() *changes.GrantSet { return membersSet(grp, ids, s.users) })
	})
}

// buildRoles hands a principal's role container to the committers once
// the list of its kind is in.
func (s *streamer) buildRoles(kind, principal, id string, rs []okta.RoleAssignment) {
	if s.noRoles(kind, id, rs) {
		return
	}
	s.g.Go(func() error {
		var in map[string]bool
		if kind == state.KindRolesGroup {
			if err := wait(s.ctx, s.groupsDone); err != nil {
				return err
			}
			in = s.groups
		} else {
			if err := wait(s.ctx, s.usersDone); err != nil {
				return err
			}
			in = s.users
		}
		if !in[id] {
			return nil
		}
		return s.offerGrants(s.ctx, kind, id, func() *changes.GrantSet { return s.r.rolesSet(kind, principal, id, rs, nil) })
	})
}
