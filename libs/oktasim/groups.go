package oktasim

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// Paging of the groups area (FACTS.md; spec for q and /apps).
const (
	groupListMaxLimit      = 10000
	groupListDefaultLimit  = 10000 // the spec's maximum; Okta's docs advise 200
	groupFindDefaultLimit  = 300   // "The default limit for a query is 300 results"
	groupUsersDefaultLimit = 1000
	groupUsersMaxLimit     = 1000
	groupAppsDefaultLimit  = 20
	groupAppsMaxLimit      = 200
)

// ghostCursorBase starts the cursor range of a member list's tail of
// recently removed members that MembershipLag still shows: they follow
// every current member, ordered by the System Log sequence of their
// removal, so a cursor into the tail stays valid while members change.
const ghostCursorBase = uint64(1) << 62

// canManageGroups is the right to create, rename and delete groups, which
// Okta gives org and super admins and group admins (USER_ADMIN), not
// group membership admins: perms has no flag of its own for it, and those
// roles are the ones that may both write users and write memberships.
func canManageGroups(p perms) bool { return p.writeMembership && p.writeUsers }

func (s *Server) routesGroups() {
	s.handle("/api/v1/groups", map[string]http.HandlerFunc{
		http.MethodGet:  s.listGroups,
		http.MethodPost: s.createGroup,
	})
	s.handle("/api/v1/groups/{groupId}", map[string]http.HandlerFunc{
		http.MethodGet:    s.getGroup,
		http.MethodPut:    s.replaceGroup,
		http.MethodDelete: s.deleteGroup,
	})
	s.handle("/api/v1/groups/{groupId}/users", map[string]http.HandlerFunc{
		http.MethodGet: s.listGroupUsers,
	})
	s.handle("/api/v1/groups/{groupId}/users/{userId}", map[string]http.HandlerFunc{
		http.MethodPut:    s.changeMembership(true),
		http.MethodDelete: s.changeMembership(false),
	})
	s.handle("/api/v1/groups/{groupId}/apps", map[string]http.HandlerFunc{
		http.MethodGet: s.listGroupApps,
	})
}

func groupNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+id+" (UserGroup)")
}

// groupExpand reads expand (comma-separated: stats, app).
func groupExpand(r *http.Request) (stats, app bool) {
	for _, e := range strings.Split(r.URL.Query().Get("expand"), ",") {
		switch strings.TrimSpace(e) {
		case "stats":
			stats = true
		case "app":
			app = true
		}
	}
	return stats, app
}

// listGroups is GET /api/v1/groups, with filter, search, q (a name prefix
// lookup that is not paged) and expand.
func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	lq, ok := parseListQuery(w, r, groupAttr, groupListDefaultLimit, groupFindDefaultLimit, groupListMaxLimit)
	if !ok {
		return
	}
	p, keep, find := lq.page, lq.keep, lq.find
	if keep == nil {
		keep = func(*Group) bool { return true }
	}
	if find != "" {
		prefix, base := strings.ToLower(find), keep
		keep = func(g *Group) bool { return base(g) && hasPrefixFold(g.Name, prefix) }
	}
	stats, app := groupExpand(r)
	o := s.org
	o.mu.RLock()
	raws, last, more := pageJSON(o.groups, p.after, p.limit, keep, func(g *Group) []byte { return o.groupExpanded(g, stats, app) })
	o.mu.RUnlock()
	if find != "" {
		// "Paging and searching are currently mutually exclusive."
		more = false
	}
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// groupAttr is the attribute table of groups: filter supports id, type,
// lastUpdated and lastMembershipUpdated; search also the profile, created
// and source.id.
func groupAttr(mode exprMode) exprAttr[*Group] {
	strs := map[string]exprField[*Group]{
		"id":                  {get: func(g *Group) string { return g.ID }, filter: true},
		"type":                {get: func(g *Group) string { return g.Type }, filter: true},
		"source.id":           {get: func(g *Group) string { return g.SourceAppID }},
		"profile.name":        {get: func(g *Group) string { return g.Name }, co: true},
		"profile.description": {get: func(g *Group) string { return g.Description }, co: true},
	}
	times := map[string]exprTime[*Group]{
		"lastUpdated":           {get: func(g *Group) time.Time { return g.LastUpdated }, filter: true},
		"lastMembershipUpdated": {get: func(g *Group) time.Time { return g.LastMembershipUpdated }, filter: true},
		"created":               {get: func(g *Group) time.Time { return g.Created }},
	}
	return compileAttr(mode, strs, times)
}

// getGroup is GET /api/v1/groups/{groupId}.
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	id := r.PathValue("groupId")
	stats, app := groupExpand(r)
	s.org.mu.RLock()
	g, ok := s.org.groups.get(id)
	var raw []byte
	if ok {
		raw = s.org.groupExpanded(g, stats, app)
	}
	s.org.mu.RUnlock()
	if !ok {
		groupNotFound(w, id)
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// groupBody is the request of POST /groups and PUT /groups/{id}.
type groupBody struct {
	Profile *struct {
		Name        *string `json:"name"`
		Description string  `json:"description"`
	} `json:"profile"`
}

func (b groupBody) name() string {
	if b.Profile == nil || b.Profile.Name == nil {
		return ""
	}
	return *b.Profile.Name
}

func (b groupBody) description() string {
	if b.Profile == nil {
		return ""
	}
	return b.Profile.Description
}

// createGroup is POST /api/v1/groups: an OKTA_GROUP, whose name must be
// set and not taken by another Okta group.
func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageGroups) {
		return
	}
	var body groupBody
	if !decodeBody(w, r, &body) {
		return
	}
	name := body.name()
	if name == "" {
		invalid(w, "name: The field cannot be left blank")
		return
	}
	o := s.org
	o.mu.RLock()
	taken := o.groupNameTaken(name, "")
	o.mu.RUnlock()
	if taken {
		invalid(w, "name: "+profileAlreadyExistsIs)
		return
	}
	actor := actorOf(r)
	g, err := o.CreateGroup(&actor, GroupOkta, name, body.description(), "", time.Time{})
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
		return
	}
	o.mu.RLock()
	raw := g.raw
	o.mu.RUnlock()
	writeRaw(w, http.StatusOK, raw)
}

// groupNameTaken reports whether another OKTA_GROUP has the name; o.mu is
// held. It scans the groups, which only group creation and renames do.
func (o *Org) groupNameTaken(name, except string) bool {
	taken := false
	o.groups.each(func(id string, g *Group) bool {
		if id != except && g.Type == GroupOkta && strings.EqualFold(g.Name, name) {
			taken = true
		}
		return !taken
	})
	return taken
}

// replaceGroup is PUT /api/v1/groups/{groupId}: a new profile for an
// OKTA_GROUP. Other types' profiles are not Okta's to change; Okta refuses
// that as it refuses their membership changes, 403 E0000006.
func (s *Server) replaceGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageGroups) {
		return
	}
	var body groupBody
	if !decodeBody(w, r, &body) {
		return
	}
	id := r.PathValue("groupId")
	actor := actorOf(r)
	o := s.org
	o.mu.Lock()
	g, ok := o.groups.get(id)
	var err error
	var raw []byte
	switch {
	case !ok:
	case g.Type == GroupOkta && body.name() != "" && o.groupNameTaken(body.name(), g.ID):
		err = errNameTaken
	default:
		err = o.updateGroup(&actor, g, body.name(), body.description())
		raw = g.raw
	}
	o.mu.Unlock()
	var pe *profileError
	switch {
	case !ok:
		groupNotFound(w, id)
	case errors.Is(err, ErrNotWritable):
		forbidden(w)
	case errors.Is(err, errNameTaken):
		invalid(w, "name: "+profileAlreadyExistsIs)
	case errors.As(err, &pe):
		invalid(w, pe.causes...)
	case err != nil:
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
	default:
		writeRaw(w, http.StatusOK, raw)
	}
}

// errNameTaken is a group rename to the name of another Okta group.
var errNameTaken = errors.New("group name already exists")

// deleteGroup is DELETE /api/v1/groups/{groupId}; BUILT_IN groups cannot
// be deleted (403 E0000006).
func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canManageGroups) {
		return
	}
	id := r.PathValue("groupId")
	actor := actorOf(r)
	err := s.org.DeleteGroup(&actor, id)
	switch {
	case errors.Is(err, ErrNotFound):
		groupNotFound(w, id)
	case errors.Is(err, ErrNotWritable):
		forbidden(w)
	case err != nil:
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// listGroupUsers is GET /api/v1/groups/{groupId}/users: the members as
// full users, in membership order, paged by cursors that stay right while
// members come and go. With Faults.MembershipLag, members added within the
// lag are not listed yet and members removed within it still are (after
// the current members, see ghostCursorBase), as Okta's eventually
// consistent membership reads behave.
func (s *Server) listGroupUsers(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	p, ok := parsePage(w, r, groupUsersDefaultLimit, groupUsersMaxLimit)
	if !ok {
		return
	}
	id := r.PathValue("groupId")
	o := s.org
	o.mu.RLock()
	g, ok := o.groups.get(id)
	if !ok {
		o.mu.RUnlock()
		groupNotFound(w, id)
		return
	}
	var (
		raws [][]byte
		last uint64
		more bool
	)
	lag := s.opts.Faults.MembershipLag
	if lag <= 0 {
		raws, last, more = pageJSON(g.members, p.after, p.limit, nil, func(u *User) []byte { return u.raw })
	} else {
		raws, last, more = o.laggedMembers(g, lag, p)
	}
	o.mu.RUnlock()
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// laggedMembers is a page of a group's members as seen MembershipLag late;
// o.mu is held.
func (o *Org) laggedMembers(g *Group, lag time.Duration, p pageParams) ([][]byte, uint64, bool) {
	echo := o.recentMembership(lag, func(_, gid string) bool { return gid == g.ID })
	var raws [][]byte
	var last uint64
	more := false
	ghostAfter := uint64(0)
	if p.after < ghostCursorBase {
		users, l, m := g.members.page(p.after, p.limit, func(u *User) bool {
			return !echo.hidden[pairKey(u.ID, g.ID)]
		})
		raws = make([][]byte, 0, len(users))
		for _, u := range users {
			raws = append(raws, u.raw)
		}
		last, more = l, m
		if last == 0 {
			last = p.after
		}
		if more {
			return raws, last, true
		}
	} else {
		ghostAfter = p.after - ghostCursorBase
	}
	for _, gh := range echo.ghosts {
		if gh.seq <= ghostAfter {
			continue
		}
		if len(raws) == p.limit {
			return raws, last, true
		}
		if u, ok := o.users.get(gh.userID); ok {
			raws = append(raws, u.raw)
			last = ghostCursorBase + gh.seq
		}
	}
	return raws, last, false
}

// changeMembership is PUT (add) and DELETE (remove) of
// /api/v1/groups/{groupId}/users/{userId}, both 204 and idempotent: adding
// a member again or removing a user who is not a member changes nothing
// and answers 204 too, as Okta does.
//
// Only OKTA_GROUP memberships are Okta's to change: APP_GROUP members come
// from their app's imports and BUILT_IN ones (Everyone) from Okta itself.
// Okta answers such a change 403 E0000006 "You do not have permission to
// perform the requested action", even to a super admin (the spec lists
// 403 and no 400 for these operations; the Okta Terraform provider skips
// these group types for that reason).
func (s *Server) changeMembership(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteMembership) {
			return
		}
		gid, uid := r.PathValue("groupId"), r.PathValue("userId")
		actor := actorOf(r)
		o := s.org
		o.mu.Lock()
		g, gok := o.groups.get(gid)
		u, uok := o.users.get(uid)
		writable := gok && g.Type == GroupOkta
		if gok && uok && writable {
			o.setMembership(&actor, g, u, add)
		}
		o.mu.Unlock()
		switch {
		case !gok:
			groupNotFound(w, gid)
		case !uok:
			userNotFound(w, uid)
		case !writable:
			forbidden(w)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// listGroupApps is GET /api/v1/groups/{groupId}/apps: the apps the group
// is assigned to, in the org's app order.
func (s *Server) listGroupApps(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	p, ok := parsePage(w, r, groupAppsDefaultLimit, groupAppsMaxLimit)
	if !ok {
		return
	}
	id := r.PathValue("groupId")
	o := s.org
	o.mu.RLock()
	g, ok := o.groups.get(id)
	if !ok {
		o.mu.RUnlock()
		groupNotFound(w, id)
		return
	}
	raws, last, more := pageJSON(o.apps, p.after, p.limit, func(a *App) bool {
		_, assigned := g.apps[a.ID]
		return assigned && a.raw != nil
	}, func(a *App) []byte { return a.raw })
	o.mu.RUnlock()
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}
