package oktasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Paging of the apps endpoints (FACTS.md).
const (
	appsPageDefault      = 20
	appsPageMax          = 200
	appUsersPageDefault  = 50
	appUsersPageMax      = 500
	appGroupsPageDefault = 20
	appGroupsPageMax     = 200
)

// Error codes only the apps endpoints answer with (error-codes.json).
const (
	codeAppInvalidSearch    = "E0000031"
	codeAppUserForbidden    = "E0000046" // unassigning a user who has the app through a group only
	codeAppDeleteForbidden  = "E0000056" // deleting an active app
	codeInactiveUserForApps = "E0000117" // assigning a deactivated user
)

// routesApps registers the application endpoints. Reads need the
// directory read permission; assignment writes need app assignment. App
// lifecycle (activate, deactivate, delete) needs app assignment too: in
// Okta the APP_ADMIN role that grants assignments also manages the apps
// themselves, and perms.go has no finer permission for it.
func (s *Server) routesApps() {
	s.handle("/api/v1/apps", map[string]http.HandlerFunc{"GET": s.listApps})
	s.handle("/api/v1/apps/{appId}", map[string]http.HandlerFunc{"GET": s.getApp, "DELETE": s.deleteApp})
	s.handle("/api/v1/apps/{appId}/lifecycle/activate", map[string]http.HandlerFunc{"POST": s.appLifecycle(AppActive)})
	s.handle("/api/v1/apps/{appId}/lifecycle/deactivate", map[string]http.HandlerFunc{"POST": s.appLifecycle(AppInactive)})
	s.handle("/api/v1/apps/{appId}/users", map[string]http.HandlerFunc{"GET": s.listAppUsers, "POST": s.assignAppUser})
	s.handle("/api/v1/apps/{appId}/users/{userId}", map[string]http.HandlerFunc{
		"GET": s.getAppUser, "POST": s.updateAppUser, "DELETE": s.unassignAppUser,
	})
	s.handle("/api/v1/apps/{appId}/groups", map[string]http.HandlerFunc{"GET": s.listAppGroups})
	s.handle("/api/v1/apps/{appId}/groups/{groupId}", map[string]http.HandlerFunc{
		"GET": s.getAppGroup, "PUT": s.assignAppGroup, "DELETE": s.unassignAppGroup,
	})
	s.handle("/api/v1/apps/{appId}/connections/default", map[string]http.HandlerFunc{"GET": s.getAppConnection})
	s.handle("/api/v1/apps/{appId}/features", map[string]http.HandlerFunc{"GET": s.listAppFeatures})
	s.handle("/api/v1/apps/{appId}/features/{featureName}", map[string]http.HandlerFunc{"GET": s.getAppFeature})
}

// appNotFound answers Okta's 404 naming the kind of resource missing.
func appNotFound(w http.ResponseWriter, id, kind string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+id+" ("+kind+")")
}

// lookupApp finds the path's app with o.mu held, answering 404 if missing.
func (s *Server) lookupApp(w http.ResponseWriter, r *http.Request) (*App, bool) {
	id := r.PathValue("appId")
	a, ok := s.org.apps.get(id)
	if !ok {
		appNotFound(w, id, "AppInstance")
	}
	return a, ok
}

// appFilter is a parsed filter of GET /api/v1/apps: `field eq "value"`
// clauses joined by `and`, on the fields Okta supports for it.
type appFilter struct {
	status, name, id, userID, groupID string
}

func parseAppFilter(expr string) (appFilter, bool) {
	var f appFilter
	if strings.TrimSpace(expr) == "" {
		return f, true
	}
	for _, clause := range appSplitAnd(expr) {
		field, rest, ok := strings.Cut(strings.TrimSpace(clause), " ")
		if !ok {
			return f, false
		}
		op, val, ok := strings.Cut(strings.TrimSpace(rest), " ")
		if !ok || op != "eq" {
			return f, false
		}
		val = strings.TrimSpace(val)
		if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
			return f, false
		}
		val = val[1 : len(val)-1]
		switch field {
		case "status":
			if val != AppActive && val != AppInactive {
				return f, false
			}
			f.status = val
		case "name":
			f.name = val
		case "id":
			f.id = val
		case "user.id":
			f.userID = val
		case "group.id":
			f.groupID = val
		default:
			return f, false
		}
	}
	return f, true
}

// appSplitAnd splits a filter on its `and` operators (case-insensitive).
func appSplitAnd(expr string) []string {
	var parts []string
	lower := strings.ToLower(expr)
	for {
		i := strings.Index(lower, " and ")
		if i < 0 {
			return append(parts, expr)
		}
		parts = append(parts, expr[:i])
		expr, lower = expr[i+5:], lower[i+5:]
	}
}

func appHasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// appWithEmbedded returns an object's JSON with `"_embedded":{key: v}` added.
func appWithEmbedded(raw []byte, key string, v []byte) []byte {
	if len(raw) < 2 || raw[len(raw)-1] != '}' {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(key)+len(v)+20)
	out = append(out, raw[:len(raw)-1]...)
	out = append(out, `,"_embedded":{`...)
	out = appendAppJSONString(out, key)
	out = append(out, ':')
	out = append(out, v...)
	return append(out, "}}"...)
}

// listApps is GET /api/v1/apps: all apps, active and inactive, in creation
// order; filter on status, name, id, user.id or group.id; q a prefix of
// label or name. expand=user/{userId} is ignored: the spec types every
// property of an embedded app user as an object, so no app user Okta
// returns could match it (see getApp).
func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	p, ok := parsePage(w, r, appsPageDefault, appsPageMax)
	if !ok {
		return
	}
	q := r.URL.Query()
	f, ok := parseAppFilter(q.Get("filter"))
	if !ok {
		writeError(w, http.StatusBadRequest, codeAppInvalidSearch, "Invalid search criteria.", "filter: "+q.Get("filter"))
		return
	}
	prefix := q.Get("q")
	o := s.org
	o.mu.RLock()
	var group *Group
	if f.groupID != "" {
		group, _ = o.groups.get(f.groupID)
	}
	keep := func(a *App) bool {
		switch {
		case f.status != "" && a.Status != f.status,
			f.name != "" && a.Name != f.name,
			f.id != "" && a.ID != f.id,
			prefix != "" && !appHasPrefix(a.Label, prefix) && !appHasPrefix(a.Name, prefix):
			return false
		case f.groupID != "":
			if group == nil {
				return false
			}
			if _, ok := group.apps[a.ID]; !ok {
				return false
			}
		}
		if f.userID != "" {
			if _, ok := a.users.get(f.userID); !ok {
				return false
			}
		}
		return true
	}
	raws, last, more := pageJSON(o.apps, p.after, p.limit, keep, func(a *App) []byte { return a.raw })
	o.mu.RUnlock()
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// getApp is GET /api/v1/apps/{appId}. Okta's expand=user/{userId} is
// ignored: the spec's Application._embedded.user requires every property
// of the embedded app user to be an object, which an app user (id,
// scope, ... are strings) never matches; answers must match the spec, so
// the simulator embeds nothing. Read the app user at
// /api/v1/apps/{appId}/users/{userId} instead.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	s.org.mu.RLock()
	a, ok := s.lookupApp(w, r)
	var raw []byte
	if ok {
		raw = a.raw
	}
	s.org.mu.RUnlock()
	if ok {
		writeRaw(w, http.StatusOK, raw)
	}
}

// deleteApp is DELETE /api/v1/apps/{appId}: 204, or 403 E0000056 for an
// active app, which Okta deletes only once deactivated.
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	err := o.deleteApp(&by, a)
	o.mu.Unlock()
	if errors.Is(err, ErrNotWritable) {
		writeError(w, http.StatusForbidden, codeAppDeleteForbidden, "Delete application forbidden.", "Deactivate the application before deleting it.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// appLifecycle answers POST .../lifecycle/activate|deactivate with 200 and
// an empty object, as Okta does, whether or not the status changed.
func (s *Server) appLifecycle(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteAppAssignment) {
			return
		}
		by := actorOf(r)
		o := s.org
		o.mu.Lock()
		a, ok := s.lookupApp(w, r)
		if !ok {
			o.mu.Unlock()
			return
		}
		err := o.setAppStatus(&by, a, status)
		o.mu.Unlock()
		if err != nil {
			invalid(w, err.Error())
			return
		}
		writeRaw(w, http.StatusOK, []byte("{}"))
	}
}

// listAppUsers is GET /api/v1/apps/{appId}/users: app users in assignment
// order; q a prefix of userName, firstName, lastName or email;
// expand=user embeds the Okta user.
func (s *Server) listAppUsers(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	p, ok := parsePage(w, r, appUsersPageDefault, appUsersPageMax)
	if !ok {
		return
	}
	q := r.URL.Query()
	prefix := q.Get("q")
	expandUser := q.Get("expand") == "user"
	o := s.org
	o.mu.RLock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.RUnlock()
		return
	}
	var keep func(*AppUser) bool
	if prefix != "" {
		keep = func(au *AppUser) bool { return o.appUserMatches(au, prefix) }
	}
	raws, last, more := pageJSON(a.users, p.after, p.limit, keep, func(au *AppUser) []byte {
		if expandUser {
			if u, ok := o.users.get(au.UserID); ok {
				return appWithEmbedded(au.raw, "user", u.raw)
			}
		}
		return au.raw
	})
	o.mu.RUnlock()
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// appUserMatches is the q search of app users: a case-insensitive prefix
// of the user name, first or last name, or email; o.mu is held.
func (o *Org) appUserMatches(au *AppUser, prefix string) bool {
	if u, ok := o.users.get(au.UserID); ok {
		p := u.Profile
		if appHasPrefix(p.Login, prefix) || appHasPrefix(p.FirstName, prefix) ||
			appHasPrefix(p.LastName, prefix) || appHasPrefix(p.Email, prefix) {
			return true
		}
	}
	for _, k := range []string{"firstName", "lastName", "email"} {
		if v, ok := au.Profile[k].(string); ok && appHasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

// getAppUser is GET /api/v1/apps/{appId}/users/{userId}; expand=user
// embeds the Okta user.
func (s *Server) getAppUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		return
	}
	uid := r.PathValue("userId")
	au, ok := a.users.get(uid)
	if !ok {
		appNotFound(w, uid, "AppUser")
		return
	}
	raw := au.raw
	if r.URL.Query().Get("expand") == "user" {
		if u, ok := o.users.get(uid); ok {
			raw = appWithEmbedded(au.raw, "user", u.raw)
		}
	}
	writeRaw(w, http.StatusOK, raw)
}

// appUserRequest is the body of the assign and update app user endpoints
// (spec: AppUserAssignRequest, AppUserUpdateRequest). Credentials are
// accepted and ignored: the simulator keeps no app passwords, and the
// user name follows the app's template.
type appUserRequest struct {
	ID          string          `json:"id"`
	Scope       string          `json:"scope"`
	Profile     map[string]any  `json:"profile"`
	Credentials json.RawMessage `json:"credentials"`
}

// assignAppUser is POST /api/v1/apps/{appId}/users with the user's id in
// the body: a direct assignment (scope USER). A user already assigned is
// answered 200 with the assignment converted to USER and the profile
// merged, as Okta does.
func (s *Server) assignAppUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	var body appUserRequest
	if !decodeBody(w, r, &body) {
		return
	}
	if body.ID == "" {
		invalid(w, "id: The field cannot be left blank")
		return
	}
	if body.Scope != "" && body.Scope != ScopeUser {
		invalid(w, "scope: A direct assignment has scope USER; users get scope GROUP by an assigned group")
		return
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	u, ok := o.users.get(body.ID)
	if !ok {
		o.mu.Unlock()
		appNotFound(w, body.ID, "User")
		return
	}
	au, _, err := o.assignUser(&by, a, u, body.Profile)
	var raw []byte
	if err == nil {
		raw = au.raw
	}
	o.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusForbidden, codeInactiveUserForApps, "Cannot assign apps or update app profiles for an inactive user.")
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// updateAppUser is POST /api/v1/apps/{appId}/users/{userId}: it merges the
// profile, and scope USER converts a group assignment into a direct one.
func (s *Server) updateAppUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	var body appUserRequest
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Scope != "" && body.Scope != ScopeUser && body.Scope != ScopeGroup {
		invalid(w, "scope: Does not match required pattern (USER|GROUP)")
		return
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	uid := r.PathValue("userId")
	au, ok := a.users.get(uid)
	u, uok := o.users.get(uid)
	if !ok || !uok {
		o.mu.Unlock()
		appNotFound(w, uid, "AppUser")
		return
	}
	if body.Scope == ScopeGroup && au.Direct {
		o.mu.Unlock()
		invalid(w, "scope: A direct assignment cannot be changed to GROUP; unassign the user instead")
		return
	}
	au, err := o.updateAppUser(&by, a, u, body.Scope == ScopeUser, body.Profile)
	var raw []byte
	if err == nil {
		raw = au.raw
	}
	o.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusForbidden, codeInactiveUserForApps, "Cannot assign apps or update app profiles for an inactive user.")
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// unassignAppUser is DELETE /api/v1/apps/{appId}/users/{userId}: 204. A
// user who has the app through a group only cannot be unassigned here
// (403 E0000046); a direct user who also has it through a group keeps it
// with scope GROUP.
func (s *Server) unassignAppUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	uid := r.PathValue("userId")
	u, uok := o.users.get(uid)
	if _, ok := a.users.get(uid); !ok || !uok {
		o.mu.Unlock()
		appNotFound(w, uid, "AppUser")
		return
	}
	_, err := o.unassignUser(&by, a, u)
	o.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusForbidden, codeAppUserForbidden, "Deactivate application for user forbidden.",
			"The user is assigned to the application through a group; remove the user from the group instead.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listAppGroups is GET /api/v1/apps/{appId}/groups: group assignments in
// assignment order; q a prefix of the group name; expand=group embeds
// the group.
func (s *Server) listAppGroups(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	p, ok := parsePage(w, r, appGroupsPageDefault, appGroupsPageMax)
	if !ok {
		return
	}
	q := r.URL.Query()
	prefix := q.Get("q")
	expandGroup := q.Get("expand") == "group"
	o := s.org
	o.mu.RLock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.RUnlock()
		return
	}
	var keep func(*AppGroup) bool
	if prefix != "" {
		keep = func(ag *AppGroup) bool {
			g, ok := o.groups.get(ag.GroupID)
			return ok && appHasPrefix(g.Name, prefix)
		}
	}
	raws, last, more := pageJSON(a.groups, p.after, p.limit, keep, func(ag *AppGroup) []byte {
		if expandGroup {
			if g, ok := o.groups.get(ag.GroupID); ok {
				return appWithEmbedded(ag.raw, "group", g.raw)
			}
		}
		return ag.raw
	})
	o.mu.RUnlock()
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// getAppGroup is GET /api/v1/apps/{appId}/groups/{groupId}; expand=group
// embeds the group.
func (s *Server) getAppGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		return
	}
	gid := r.PathValue("groupId")
	ag, ok := a.groups.get(gid)
	if !ok {
		appNotFound(w, gid, "AppGroup")
		return
	}
	raw := ag.raw
	if r.URL.Query().Get("expand") == "group" {
		if g, ok := o.groups.get(gid); ok {
			raw = appWithEmbedded(ag.raw, "group", g.raw)
		}
	}
	writeRaw(w, http.StatusOK, raw)
}

// appGroupRequest is the optional body of PUT .../groups/{groupId}.
type appGroupRequest struct {
	Priority *int           `json:"priority"`
	Profile  map[string]any `json:"profile"`
}

// assignAppGroup is PUT /api/v1/apps/{appId}/groups/{groupId}: it assigns
// the group (any type: Okta, app or the built-in Everyone), or updates the
// priority and profile of an existing assignment; 200 either way.
func (s *Server) assignAppGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	// The body is optional, so an empty one is no error.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		malformed(w, err)
		return
	}
	var body appGroupRequest
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			malformed(w, err)
			return
		}
	}
	priority := -1
	if body.Priority != nil {
		if *body.Priority < 0 {
			invalid(w, "priority: must be zero or more")
			return
		}
		priority = *body.Priority
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	gid := r.PathValue("groupId")
	g, ok := o.groups.get(gid)
	if !ok {
		o.mu.Unlock()
		appNotFound(w, gid, "UserGroup")
		return
	}
	ag, _ := o.assignGroup(&by, a, g, priority, body.Profile)
	raw := ag.raw
	o.mu.Unlock()
	writeRaw(w, http.StatusOK, raw)
}

// unassignAppGroup is DELETE /api/v1/apps/{appId}/groups/{groupId}: 204.
func (s *Server) unassignAppGroup(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteAppAssignment) {
		return
	}
	by := actorOf(r)
	o := s.org
	o.mu.Lock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.Unlock()
		return
	}
	gid := r.PathValue("groupId")
	g, gok := o.groups.get(gid)
	if _, ok := a.groups.get(gid); !ok || !gok {
		o.mu.Unlock()
		appNotFound(w, gid, "AppGroup")
		return
	}
	o.unassignGroup(&by, a, g)
	o.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// getAppConnection is GET /api/v1/apps/{appId}/connections/default (spec:
// ProvisioningConnectionResponse). An app without a provisioning
// connection answers 404 E0000007.
func (s *Server) getAppConnection(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	o := s.org
	o.mu.RLock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.RUnlock()
		return
	}
	if a.Connection == nil {
		o.mu.RUnlock()
		appNotFound(w, "default", "AppConnection")
		return
	}
	c := *a.Connection
	self := o.href("/api/v1/apps/" + a.ID + "/connections/default")
	name := a.Name
	o.mu.RUnlock()
	v := map[string]any{
		"status":  c.Status,
		"baseUrl": "https://" + name + ".example.com/scim/v2",
		"profile": map[string]any{"authScheme": c.AuthScheme},
		"_links": map[string]any{
			"self": map[string]any{"href": self, "hints": map[string]any{"allow": []string{"GET", "POST"}}},
		},
	}
	// The spec allows a top-level authScheme of TOKEN only; OAuth 2.0
	// connections state theirs in the profile alone.
	if c.AuthScheme == "TOKEN" {
		v["authScheme"] = c.AuthScheme
	}
	links := v["_links"].(map[string]any)
	if c.Status == "ENABLED" {
		links["deactivate"] = map[string]any{"href": self + "/lifecycle/deactivate", "hints": map[string]any{"allow": []string{"POST"}}}
	} else {
		links["activate"] = map[string]any{"href": self + "/lifecycle/activate", "hints": map[string]any{"allow": []string{"POST"}}}
	}
	writeJSON(w, http.StatusOK, v)
}

// appFeatureViews are the app's provisioning features in the spec's
// ApplicationFeature shapes: USER_PROVISIONING (to the app) always,
// INBOUND_PROVISIONING (imports) when the app imports. ok is false when
// provisioning is not enabled, which Okta answers with 400 E0000001.
func (o *Org) appFeatureViews(a *App) (features []map[string]any, ok bool) {
	if a.Connection == nil || a.Connection.Status != "ENABLED" {
		return nil, false
	}
	status := func(feature string) map[string]any {
		if a.hasFeature(feature) {
			return map[string]any{"status": "ENABLED"}
		}
		return map[string]any{"status": "DISABLED"}
	}
	link := func(name string) map[string]any {
		return map[string]any{"self": map[string]any{
			"href":  o.href("/api/v1/apps/" + a.ID + "/features/" + name),
			"hints": map[string]any{"allow": []string{"GET", "PUT"}},
		}}
	}
	push := "DISABLED"
	for _, f := range []string{"PUSH_NEW_USERS", "PUSH_PROFILE_UPDATES", "PUSH_USER_DEACTIVATION", "PUSH_PASSWORD_UPDATES"} {
		if a.hasFeature(f) {
			push = "ENABLED"
		}
	}
	password := status("PUSH_PASSWORD_UPDATES")
	password["seed"], password["change"] = "RANDOM", "KEEP_EXISTING"
	features = append(features, map[string]any{
		"name":        "USER_PROVISIONING",
		"status":      push,
		"description": "User provisioning settings from Okta to a downstream application",
		"capabilities": map[string]any{
			"create": map[string]any{"lifecycleCreate": status("PUSH_NEW_USERS")},
			"update": map[string]any{
				"profile":             status("PUSH_PROFILE_UPDATES"),
				"lifecycleDeactivate": status("PUSH_USER_DEACTIVATION"),
				"password":            password,
			},
		},
		"_links": link("USER_PROVISIONING"),
	})
	if a.hasFeature("IMPORT_NEW_USERS") || a.hasFeature("IMPORT_PROFILE_UPDATES") {
		features = append(features, map[string]any{
			"name":        "INBOUND_PROVISIONING",
			"status":      "ENABLED",
			"description": "In-bound provisioning settings from an application to Okta",
			"capabilities": map[string]any{
				"importSettings": map[string]any{
					"username": map[string]any{"usernameFormat": "EMAIL"},
					"schedule": map[string]any{"status": "DISABLED"},
				},
				"importRules": map[string]any{"userCreateAndMatch": map[string]any{
					"exactMatchCriteria": "EMAIL", "allowPartialMatch": false, "autoConfirmPartialMatch": false,
					"autoConfirmExactMatch": false, "autoConfirmNewUsers": false, "autoActivateNewUsers": false,
				}},
			},
			"_links": link("INBOUND_PROVISIONING"),
		})
	}
	return features, true
}

// appFeatures reads the path's app features, answering 404 or 400 itself.
func (s *Server) appFeatures(w http.ResponseWriter, r *http.Request) ([]map[string]any, bool) {
	if !allow(w, r, canReadDirectory) {
		return nil, false
	}
	o := s.org
	o.mu.RLock()
	a, ok := s.lookupApp(w, r)
	if !ok {
		o.mu.RUnlock()
		return nil, false
	}
	features, ok := o.appFeatureViews(a)
	o.mu.RUnlock()
	if !ok {
		writeError(w, http.StatusBadRequest, codeValidation, "Api validation failed: feature", "Provisioning is not enabled for the app instance.")
		return nil, false
	}
	return features, true
}

// listAppFeatures is GET /api/v1/apps/{appId}/features.
func (s *Server) listAppFeatures(w http.ResponseWriter, r *http.Request) {
	if features, ok := s.appFeatures(w, r); ok {
		writeJSON(w, http.StatusOK, features)
	}
}

// getAppFeature is GET /api/v1/apps/{appId}/features/{featureName}.
func (s *Server) getAppFeature(w http.ResponseWriter, r *http.Request) {
	features, ok := s.appFeatures(w, r)
	if !ok {
		return
	}
	name := r.PathValue("featureName")
	for _, f := range features {
		if f["name"] == name {
			writeJSON(w, http.StatusOK, f)
			return
		}
	}
	appNotFound(w, name, "AppFeature")
}
