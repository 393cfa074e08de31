package oktasim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The simulator's own endpoints, under /_sim/: what tests, benchmarks and
// demos use to change the org the way people do in Okta's admin console,
// and to read what the simulator saw. They answer only requests carrying
// header X-Sim-Admin-Key equal to Options.AdminKey (401 otherwise) and do
// not exist (404) when no key is configured. They are outside Okta's rate
// limits and faults, which belong to the API.
//
// Every change goes through the org's methods with an actor, so the System
// Log and event hooks see it as they would see a console change: by default
// the actor is the org's first super admin (the generated super admin user;
// Okta records console changes under the admin who made them), or the user
// named by header X-Sim-Actor.
//
//	GET    /_sim/counters                      requests per rate-limit bucket (Server.Counts)
//	GET    /_sim/summary                       counts of the org's objects (Org.Summary)
//	GET    /_sim/tokens                        the admin tokens (Tokens, and every token)
//	POST   /_sim/users                         create a user: {"profile":{...},"status":"ACTIVE"}
//	POST   /_sim/users/{uid}/status            {"status":"SUSPENDED"}
//	POST   /_sim/users/{uid}/roles             {"type":"APP_ADMIN"} or {"type":"CUSTOM","role":..,"resource-set":..}
//	DELETE /_sim/users/{uid}/roles/{raId}
//	POST   /_sim/groups                        create an OKTA_GROUP: {"name":..,"description":..}
//	POST   /_sim/groups/{gid}/members/{uid}    add a member (PUT too)
//	DELETE /_sim/groups/{gid}/members/{uid}
//	POST   /_sim/apps/{aid}/users/{uid}        assign directly: optional {"profile":{...}} (PUT too)
//	DELETE /_sim/apps/{aid}/users/{uid}
//	PUT    /_sim/apps/{aid}/groups/{gid}       assign a group: optional {"priority":0,"profile":{...}} (POST too)
//	DELETE /_sim/apps/{aid}/groups/{gid}
//	POST   /_sim/apps/{aid}/status             {"status":"INACTIVE"}
//
// Changes answer 200 (201 for a creation) with the object as the API shows
// it, or {"changed":bool} where there is no object left to show.

// adminKeyHeader carries the admin key; adminActorHeader optionally names
// the user who makes a change.
const (
	adminKeyHeader   = "X-Sim-Admin-Key"
	adminActorHeader = "X-Sim-Actor"
)

// adminRoute is one admin path: its segments after /_sim/ ("{name}" is a
// parameter) and its handlers by method.
type adminRoute struct {
	path     []string
	byMethod map[string]func(http.ResponseWriter, *http.Request, adminParams)
}

// adminParams are a request's path parameters.
type adminParams map[string]string

// serveAdmin answers the /_sim/ endpoints.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if s.opts.AdminKey == "" {
		notFound(w, r.URL.Path)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(adminKeyHeader)), []byte(s.opts.AdminKey)) != 1 {
		writeError(w, http.StatusUnauthorized, codeInvalidToken, "Invalid simulator admin key: send it in header "+adminKeyHeader)
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/_sim/"), "/"), "/")
	for _, rt := range s.adminRoutes() {
		params, ok := matchAdmin(rt.path, segs)
		if !ok {
			continue
		}
		h, ok := rt.byMethod[r.Method]
		if !ok {
			writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowd, "The endpoint does not support the provided HTTP method")
			return
		}
		h(w, r, params)
		return
	}
	notFound(w, r.URL.Path)
}

func matchAdmin(pattern, segs []string) (adminParams, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	params := adminParams{}
	for i, p := range pattern {
		if name, ok := strings.CutPrefix(p, "{"); ok {
			if segs[i] == "" {
				return nil, false
			}
			params[strings.TrimSuffix(name, "}")] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// adminRoutes is the admin path table. It is built per request: admin
// calls are rare, and the Server has no place to keep it.
func (s *Server) adminRoutes() []adminRoute {
	type h = func(http.ResponseWriter, *http.Request, adminParams)
	route := func(path string, byMethod map[string]h) adminRoute {
		return adminRoute{path: strings.Split(path, "/"), byMethod: byMethod}
	}
	return []adminRoute{
		route("counters", map[string]h{http.MethodGet: s.adminCounters}),
		route("summary", map[string]h{http.MethodGet: s.adminSummary}),
		route("tokens", map[string]h{http.MethodGet: s.adminTokens}),
		route("users", map[string]h{http.MethodPost: s.adminCreateUser}),
		route("users/{uid}/status", map[string]h{http.MethodPost: s.adminUserStatus}),
		route("users/{uid}/roles", map[string]h{http.MethodPost: s.adminAssignRole}),
		route("users/{uid}/roles/{raId}", map[string]h{http.MethodDelete: s.adminUnassignRole}),
		route("groups", map[string]h{http.MethodPost: s.adminCreateGroup}),
		route("groups/{gid}/members/{uid}", map[string]h{
			http.MethodPost: s.adminAddMember, http.MethodPut: s.adminAddMember, http.MethodDelete: s.adminRemoveMember,
		}),
		route("apps/{aid}/users/{uid}", map[string]h{
			http.MethodPost: s.adminAssignUser, http.MethodPut: s.adminAssignUser, http.MethodDelete: s.adminUnassignUser,
		}),
		route("apps/{aid}/groups/{gid}", map[string]h{
			http.MethodPut: s.adminAssignGroup, http.MethodPost: s.adminAssignGroup, http.MethodDelete: s.adminUnassignGroup,
		}),
		route("apps/{aid}/status", map[string]h{http.MethodPost: s.adminAppStatus}),
	}
}

// adminActor is who makes an admin change: the user of X-Sim-Actor, else
// the org's first super admin, else (an org without one) the simulator.
func (s *Server) adminActor(w http.ResponseWriter, r *http.Request) (*LogActor, bool) {
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	if id := r.Header.Get(adminActorHeader); id != "" {
		u, ok := o.users.get(id)
		if !ok {
			invalid(w, adminActorHeader+": no user "+id)
			return nil, false
		}
		a := userTarget(u)
		return &a, true
	}
	if u := o.firstSuperAdmin(); u != nil {
		a := userTarget(u)
		return &a, true
	}
	a := actorOf(r)
	return &a, true
}

// firstSuperAdmin is the earliest created user holding SUPER_ADMIN
// directly; o.mu is held.
func (o *Org) firstSuperAdmin() *User {
	var ids []string
	for key, set := range o.roles {
		id, ok := strings.CutPrefix(key, "user/")
		if !ok {
			continue
		}
		set.each(func(_ string, ra *RoleAssignment) bool {
			if ra.Type == "SUPER_ADMIN" {
				ids = append(ids, id)
				return false
			}
			return true
		})
	}
	// Ids are made in creation order with a fixed width, so the smallest is
	// the earliest.
	slices.Sort(ids)
	for _, id := range ids {
		if u, ok := o.users.get(id); ok && u.Status == "ACTIVE" {
			return u
		}
	}
	return nil
}

// adminFail answers a failed org change: 404 for what does not exist, 409
// for a change the org's state refuses (ErrNotWritable), 400 otherwise.
func adminFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "Not found: "+err.Error())
	case errors.Is(err, ErrNotWritable):
		writeError(w, http.StatusConflict, codeValidation, "The org refuses this change", err.Error())
	default:
		invalid(w, err.Error())
	}
}

// decodeOptionalBody is decodeBody for endpoints whose body may be empty.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return true
		}
		malformed(w, err)
		return false
	}
	return true
}

// changed answers a change that leaves no object to show.
func changed(w http.ResponseWriter, c bool) {
	writeJSON(w, http.StatusOK, map[string]bool{"changed": c})
}

func (s *Server) adminCounters(w http.ResponseWriter, _ *http.Request, _ adminParams) {
	writeJSON(w, http.StatusOK, s.Counts())
}

func (s *Server) adminSummary(w http.ResponseWriter, _ *http.Request, _ adminParams) {
	writeJSON(w, http.StatusOK, s.org.Summary())
}

// tokenInfo describes one API token.
type tokenInfo struct {
	Token  string   `json:"token"`
	UserID string   `json:"userId"`
	Login  string   `json:"login"`
	Roles  []string `json:"roles"`
}

func (s *Server) adminTokens(w http.ResponseWriter, _ *http.Request, _ adminParams) {
	infos := s.org.tokenInfos()
	var t Tokens
	// The earliest admin of each kind in the capability table, so that an
	// org built by Generate answers exactly its Generated.Tokens.
	for _, in := range infos {
		has := func(role string) bool { return slices.Contains(in.Roles, role) }
		switch {
		case has("SUPER_ADMIN"):
			if t.SuperAdmin == "" {
				t.SuperAdmin = in.Token
			}
		case has("APP_ADMIN") && (has("USER_ADMIN") || has("GROUP_MEMBERSHIP_ADMIN")):
			if t.AppGroupAdmin == "" {
				t.AppGroupAdmin = in.Token
			}
		case len(in.Roles) == 1 && has("READ_ONLY_ADMIN"):
			if t.ReadOnlyAdmin == "" {
				t.ReadOnlyAdmin = in.Token
			}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Tokens
		All []tokenInfo `json:"tokens"`
	}{t, infos})
}

// tokenInfos lists the org's tokens in the creation order of their users,
// each with the role types its user holds, directly or through groups.
func (o *Org) tokenInfos() []tokenInfo {
	o.mu.RLock()
	defer o.mu.RUnlock()
	infos := make([]tokenInfo, 0, len(o.tokens))
	for tok, uid := range o.tokens {
		in := tokenInfo{Token: tok, UserID: uid, Roles: []string{}}
		u, ok := o.users.get(uid)
		if !ok {
			continue
		}
		in.Login = u.Profile.Login
		keys := []string{roleKey("USER", uid)}
		for gid := range u.groups {
			keys = append(keys, roleKey("GROUP", gid))
		}
		for _, k := range keys {
			if set := o.roles[k]; set != nil {
				set.each(func(_ string, ra *RoleAssignment) bool {
					if !slices.Contains(in.Roles, ra.Type) {
						in.Roles = append(in.Roles, ra.Type)
					}
					return true
				})
			}
		}
		slices.Sort(in.Roles)
		infos = append(infos, in)
	}
	slices.SortFunc(infos, func(a, b tokenInfo) int {
		return strings.Compare(a.UserID+" "+a.Token, b.UserID+" "+b.Token)
	})
	return infos
}

// createStatuses are the statuses a user can be created in; the others of
// Okta's UserStatus (reachedStatuses) are reached from ACTIVE afterwards,
// with their own events, as they are in Okta.
var (
	createStatuses  = []string{"STAGED", "PROVISIONED", "ACTIVE"}
	reachedStatuses = []string{"SUSPENDED", "DEPROVISIONED", "LOCKED_OUT", "PASSWORD_EXPIRED", "RECOVERY"}
)

func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request, _ adminParams) {
	var body struct {
		UserProfile
		Profile *UserProfile `json:"profile"`
		Status  string       `json:"status"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	p := body.UserProfile
	if body.Profile != nil {
		p = *body.Profile
	}
	if p.Email == "" {
		p.Email = p.Login
	}
	status := body.Status
	if status == "" {
		status = "ACTIVE"
	}
	if err := checkProfile(p); err != nil {
		adminFail(w, err)
		return
	}
	if !slices.Contains(createStatuses, status) && !slices.Contains(reachedStatuses, status) {
		invalid(w, "status: "+status+" is not a user status")
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	initial := status
	if !slices.Contains(createStatuses, status) {
		initial = "ACTIVE"
	}
	u, err := s.org.CreateUser(by, p, initial, time.Time{})
	if err != nil {
		adminFail(w, err)
		return
	}
	if initial != "STAGED" {
		// Created with activation, as the admin console does by default.
		s.org.mu.Lock()
		s.org.emit("user.lifecycle.activate", "Activate Okta user", *by, userTarget(u))
		s.org.mu.Unlock()
	}
	if initial != status {
		if err := s.org.SetUserStatus(by, u.ID, status); err != nil {
			adminFail(w, err)
			return
		}
	}
	s.writeUser(w, http.StatusCreated, u.ID)
}

func (s *Server) writeUser(w http.ResponseWriter, code int, id string) {
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	u, ok := s.org.users.get(id)
	if !ok {
		notFound(w, id)
		return
	}
	writeRaw(w, code, u.raw)
}

func (s *Server) adminUserStatus(w http.ResponseWriter, r *http.Request, p adminParams) {
	var body struct {
		Status string `json:"status"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Status == "" {
		invalid(w, "status: required")
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	if err := s.org.SetUserStatus(by, p["uid"], body.Status); err != nil {
		adminFail(w, err)
		return
	}
	s.writeUser(w, http.StatusOK, p["uid"])
}

func (s *Server) adminAssignRole(w http.ResponseWriter, r *http.Request, p adminParams) {
	var body struct {
		Type        string `json:"type"`
		Role        string `json:"role"`
		ResourceSet string `json:"resource-set"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	ra, err := s.org.AssignRole(by, "USER", p["uid"], body.Type, body.Role, body.ResourceSet)
	if err != nil {
		adminFail(w, err)
		return
	}
	s.org.mu.RLock()
	v := s.org.roleAssignmentView(ra)
	s.org.mu.RUnlock()
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) adminUnassignRole(w http.ResponseWriter, r *http.Request, p adminParams) {
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	if err := s.org.UnassignRole(by, "USER", p["uid"], p["raId"]); err != nil {
		adminFail(w, err)
		return
	}
	changed(w, true)
}

func (s *Server) adminCreateGroup(w http.ResponseWriter, r *http.Request, _ adminParams) {
	var body struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Name == "" {
		invalid(w, "name: The field cannot be left blank")
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	g, err := s.org.CreateGroup(by, GroupOkta, body.Name, body.Description, "", time.Time{})
	if err != nil {
		adminFail(w, err)
		return
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	writeRaw(w, http.StatusCreated, g.raw)
}

func (s *Server) adminAddMember(w http.ResponseWriter, r *http.Request, p adminParams) {
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	c, err := s.org.AddMember(by, p["gid"], p["uid"])
	if err != nil {
		adminFail(w, err)
		return
	}
	changed(w, c)
}

func (s *Server) adminRemoveMember(w http.ResponseWriter, r *http.Request, p adminParams) {
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	c, err := s.org.RemoveMember(by, p["gid"], p["uid"])
	if err != nil {
		adminFail(w, err)
		return
	}
	changed(w, c)
}

func (s *Server) adminAssignUser(w http.ResponseWriter, r *http.Request, p adminParams) {
	var body struct {
		Profile map[string]any `json:"profile"`
	}
	if !decodeOptionalBody(w, r, &body) {
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	created, err := s.org.AssignUserToApp(by, p["aid"], p["uid"], body.Profile)
	if err != nil {
		adminFail(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	a, ok := s.org.apps.get(p["aid"])
	if !ok {
		notFound(w, p["aid"])
		return
	}
	au, ok := a.users.get(p["uid"])
	if !ok {
		notFound(w, p["uid"])
		return
	}
	writeRaw(w, code, au.raw)
}

func (s *Server) adminUnassignUser(w http.ResponseWriter, r *http.Request, p adminParams) {
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	c, err := s.org.UnassignUserFromApp(by, p["aid"], p["uid"])
	if err != nil {
		adminFail(w, err)
		return
	}
	changed(w, c)
}

func (s *Server) adminAssignGroup(w http.ResponseWriter, r *http.Request, p adminParams) {
	body := struct {
		Priority *int           `json:"priority"`
		Profile  map[string]any `json:"profile"`
	}{}
	if !decodeOptionalBody(w, r, &body) {
		return
	}
	priority := -1 // the next after the app's groups, as Okta does
	if body.Priority != nil {
		if *body.Priority < 0 {
			invalid(w, "priority: must not be negative")
			return
		}
		priority = *body.Priority
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	created, err := s.org.AssignGroupToApp(by, p["aid"], p["gid"], priority, body.Profile)
	if err != nil {
		adminFail(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	a, ok := s.org.apps.get(p["aid"])
	if !ok {
		notFound(w, p["aid"])
		return
	}
	ag, ok := a.groups.get(p["gid"])
	if !ok {
		notFound(w, p["gid"])
		return
	}
	writeRaw(w, code, ag.raw)
}

func (s *Server) adminUnassignGroup(w http.ResponseWriter, r *http.Request, p adminParams) {
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	c, err := s.org.UnassignGroupFromApp(by, p["aid"], p["gid"])
	if err != nil {
		adminFail(w, err)
		return
	}
	changed(w, c)
}

func (s *Server) adminAppStatus(w http.ResponseWriter, r *http.Request, p adminParams) {
	var body struct {
		Status string `json:"status"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	by, ok := s.adminActor(w, r)
	if !ok {
		return
	}
	if err := s.org.SetAppStatus(by, p["aid"], body.Status); err != nil {
		adminFail(w, err)
		return
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	a, ok := s.org.apps.get(p["aid"])
	if !ok {
		notFound(w, p["aid"])
		return
	}
	writeRaw(w, http.StatusOK, a.raw)
}
