package oktasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Okta error codes of the users and groups areas (error-codes.json).
const (
	codeInvalidSearch      = "E0000031" // 400 Invalid search criteria.
	codeSearchAndFilter    = "E0000033" // 400 can't specify a search query and filter
	codeUserAlreadyActive  = "E0000016" // 403 activation of an active user
	codeUserStatusForbids  = "E0000038" // 403 not allowed in the user's current status
	codeDuplicateRole      = "E0000090" // 409 role already assigned
	codeRoleGroupTooBig    = "E0000193" // 400 roles only for groups of <= 5000 users
	codeRoleBuiltInGroup   = "E0000211" // 400 roles cannot be granted to built-in groups
	maxRoleGroupMembers    = 5000
	userListDefaultLimit   = 200
	userListMaxLimit       = 200
	userFindDefaultLimit   = 10 // Okta's default limit when q is given
	defaultUserTypeID      = "oty00000000000000001"
	profileAlreadyExistsIs = "An object with this field already exists in the current organization"
)

func (s *Server) routesUsers() {
	s.handle("/api/v1/users", map[string]http.HandlerFunc{
		http.MethodGet:  s.listUsers,
		http.MethodPost: s.createUser,
	})
	s.handle("/api/v1/users/{id}", map[string]http.HandlerFunc{
		http.MethodGet:    s.getUser,
		http.MethodPost:   s.updateUser(false),
		http.MethodPut:    s.updateUser(true),
		http.MethodDelete: s.deleteUser,
	})
	s.handle("/api/v1/users/{id}/groups", map[string]http.HandlerFunc{
		http.MethodGet: s.listUserGroups,
	})
	for _, action := range []string{actActivate, actReactivate, actDeactivate, actSuspend, actUnsuspend} {
		s.handle("/api/v1/users/{id}/lifecycle/"+action, map[string]http.HandlerFunc{
			http.MethodPost: s.userLifecycle(action),
		})
	}
}

// userByIDOrLogin finds a user by id, else by login; o.mu is held.
func (o *Org) userByIDOrLogin(ref string) (*User, bool) {
	if u, ok := o.users.get(ref); ok {
		return u, true
	}
	u, ok := o.usersByLogin[ref]
	return u, ok
}

// userNotFound answers Okta's 404 for a user.
func userNotFound(w http.ResponseWriter, ref string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+ref+" (User)")
}

// listUsers is GET /api/v1/users: the directory without DEPROVISIONED users
// by default; filter and search may name any status and so return them too
// (spec: "Returned users include those with the DEPROVISIONED status");
// q is a starts-with lookup on first name, last name and email that omits
// DEPROVISIONED users and is not paged.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	lq, ok := parseListQuery(w, r, userAttr, userListDefaultLimit, userFindDefaultLimit, userListMaxLimit)
	if !ok {
		return
	}
	p, keep, find := lq.page, lq.keep, lq.find
	if keep == nil {
		keep = func(u *User) bool { return u.Status != "DEPROVISIONED" }
	}
	if find != "" {
		prefix, base := strings.ToLower(find), keep
		keep = func(u *User) bool {
			return u.Status != "DEPROVISIONED" && base(u) &&
				(hasPrefixFold(u.Profile.FirstName, prefix) || hasPrefixFold(u.Profile.LastName, prefix) || hasPrefixFold(u.Profile.Email, prefix))
		}
	}
	s.org.mu.RLock()
	raws, last, more := pageJSON(s.org.users, p.after, p.limit, keep, func(u *User) []byte { return u.raw })
	s.org.mu.RUnlock()
	if find != "" {
		// "This doesn't support pagination, but you can use limit."
		more = false
	}
	s.setLinks(w, r, last, more)
	writeArray(w, raws)
}

// listQuery is what a directory list (users, groups) asks for: its page,
// the filter or search it matches (nil when neither is given), and q.
type listQuery[T any] struct {
	page pageParams
	keep func(T) bool
	find string
}

// parseListQuery reads filter, search, q and the page of a directory list,
// answering Okta's 400 itself when they are invalid: filter and search
// exclude each other, and q changes the default limit.
func parseListQuery[T any](w http.ResponseWriter, r *http.Request, attr func(exprMode) exprAttr[T], def, findDef, max int) (listQuery[T], bool) {
	q := r.URL.Query()
	filter, search, find := q.Get("filter"), q.Get("search"), q.Get("q")
	lq := listQuery[T]{find: find}
	if filter != "" && search != "" {
		writeError(w, http.StatusBadRequest, codeSearchAndFilter, "Bad request. Can't specify a search query and filter in the same request.")
		return lq, false
	}
	if find != "" {
		def = findDef
	}
	p, ok := parsePage(w, r, def, max)
	if !ok {
		return lq, false
	}
	lq.page = p
	switch {
	case filter != "":
		m, err := parseExpr(filter, attr(exprFilter))
		if err != nil {
			invalid(w, "filter: "+err.Error())
			return lq, false
		}
		lq.keep = m
	case search != "":
		m, err := parseExpr(search, attr(exprSearch))
		if err != nil {
			writeError(w, http.StatusBadRequest, codeInvalidSearch, "Invalid search criteria.", "search: "+err.Error())
			return lq, false
		}
		lq.keep = m
	}
	return lq, true
}

// hasPrefixFold is a case-insensitive strings.HasPrefix for a lowered prefix.
func hasPrefixFold(s, lowerPrefix string) bool {
	return len(s) >= len(lowerPrefix) && strings.EqualFold(s[:len(lowerPrefix)], lowerPrefix)
}

// getUser is GET /api/v1/users/{idOrLogin}; "me" is the token's own user,
// which any valid token may read.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	if ref == "me" {
		c := callerOf(r)
		if c == nil {
			forbidden(w)
			return
		}
		s.org.mu.RLock()
		raw := c.user.raw
		s.org.mu.RUnlock()
		writeRaw(w, http.StatusOK, raw)
		return
	}
	if !allow(w, r, canReadDirectory) {
		return
	}
	s.org.mu.RLock()
	u, ok := s.org.userByIDOrLogin(ref)
	var raw []byte
	if ok {
		raw = u.raw
	}
	s.org.mu.RUnlock()
	if !ok {
		userNotFound(w, ref)
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// userBody is the writable part of a user in create and update requests.
type userBody struct {
	Profile     map[string]any `json:"profile"`
	Credentials *struct {
		Password *struct {
			Value string `json:"value"`
		} `json:"password"`
	} `json:"credentials"`
	GroupIDs []string `json:"groupIds"`
}

// profileFields are the attributes of the simulated user schema.
var profileFields = func() map[string]bool {
	b, _ := json.Marshal(UserProfile{Login: "x", Email: "x", FirstName: "x", LastName: "x", DisplayName: "x",
		Department: "x", Title: "x", ManagerID: "x", EmployeeNumber: "x", UserType: "x"})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	set := make(map[string]bool, len(m))
	for k := range m {
		set[k] = true
	}
	return set
}()

// mergeUserProfile applies a request's profile to base (nil for a full
// replacement) with Okta's checks: only schema attributes, string values.
func mergeUserProfile(base *UserProfile, in map[string]any) (UserProfile, []string) {
	m := map[string]any{}
	if base != nil {
		b, _ := json.Marshal(base)
		_ = json.Unmarshal(b, &m)
	}
	var causes []string
	for k, v := range in {
		if !profileFields[k] {
			causes = append(causes, fmt.Sprintf("Property name '%s' is not defined in profile", k))
			continue
		}
		switch v.(type) {
		case string:
			m[k] = v
		case nil:
			delete(m, k)
		default:
			causes = append(causes, k+": Does not match required type: string")
		}
	}
	var p UserProfile
	if len(causes) > 0 {
		return p, causes
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &p); err != nil {
		return p, []string{"profile: " + err.Error()}
	}
	return p, nil
}

// createUser is POST /api/v1/users: activate (default true) makes the user
// ACTIVE when created with a password and PROVISIONED (pending the welcome
// flow) without; activate=false leaves it STAGED.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteUsers) {
		return
	}
	var body userBody
	if !decodeBody(w, r, &body) {
		return
	}
	activate := true
	if v := r.URL.Query().Get("activate"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			invalid(w, "activate: must be true or false")
			return
		}
		activate = b
	}
	p, causes := mergeUserProfile(nil, body.Profile)
	if len(causes) == 0 {
		var pe *profileError
		if errors.As(checkProfile(p), &pe) {
			causes = pe.causes
		}
	}
	if len(causes) > 0 {
		invalid(w, causes...)
		return
	}
	withPassword := body.Credentials != nil && body.Credentials.Password != nil && body.Credentials.Password.Value != ""
	status := "STAGED"
	if activate {
		status = "PROVISIONED"
		if withPassword {
			status = "ACTIVE"
		}
	}
	actor := actorOf(r)
	// One write lock for the whole creation, so no reader sees the user
	// without its groups and no group vanishes between check and use.
	s.org.mu.Lock()
	var groups []*Group
	for _, gid := range body.GroupIDs {
		g, ok := s.org.groups.get(gid)
		if !ok || g.Type != GroupOkta {
			causes = append(causes, "groupIds: "+gid+" is not an Okta group of this org")
			continue
		}
		groups = append(groups, g)
	}
	if len(causes) > 0 {
		s.org.mu.Unlock()
		invalid(w, causes...)
		return
	}
	u, err := s.org.createUser(&actor, p, status, time.Time{})
	if err != nil {
		s.org.mu.Unlock()
		if errors.Is(err, ErrInvalid) {
			invalid(w, "login: "+profileAlreadyExistsIs)
			return
		}
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
		return
	}
	if withPassword && u.PasswordChanged.IsZero() {
		u.PasswordChanged = u.Created
		u.raw = render(s.org.userView(u))
	}
	if activate {
		s.org.emit("user.lifecycle.activate", "Activate Okta user", actor, userTarget(u))
	}
	for _, g := range groups {
		s.org.setMembership(&actor, g, u, true)
	}
	raw := u.raw
	s.org.mu.Unlock()
	writeRaw(w, http.StatusOK, raw)
}

// updateUser is POST (partial: the attributes sent change) and PUT (full
// replacement: attributes not sent are removed) of /api/v1/users/{id}.
func (s *Server) updateUser(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteUsers) {
			return
		}
		var body userBody
		if !decodeBody(w, r, &body) {
			return
		}
		ref := r.PathValue("id")
		if ref == "me" {
			ref = callerOf(r).user.ID
		}
		actor := actorOf(r)
		o := s.org
		o.mu.Lock()
		u, ok := o.userByIDOrLogin(ref)
		if !ok {
			o.mu.Unlock()
			userNotFound(w, ref)
			return
		}
		var err error
		var causes []string
		if body.Profile != nil || replace {
			base := &u.Profile
			if replace {
				base = nil
			}
			var p UserProfile
			if p, causes = mergeUserProfile(base, body.Profile); len(causes) == 0 {
				err = o.updateUserProfile(&actor, u, p)
			}
		}
		raw := u.raw
		o.mu.Unlock()
		var pe *profileError
		switch {
		case len(causes) > 0:
			invalid(w, causes...)
		case errors.Is(err, ErrNotWritable):
			writeError(w, http.StatusForbidden, codeUserStatusForbids, "This operation is not allowed in the user's current status.")
		case errors.As(err, &pe):
			invalid(w, pe.causes...)
		case errors.Is(err, ErrInvalid):
			invalid(w, "login: "+profileAlreadyExistsIs)
		case err != nil:
			writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
		default:
			writeRaw(w, http.StatusOK, raw)
		}
	}
}

// deleteUser is DELETE /api/v1/users/{id}: it deactivates a user that is
// not DEPROVISIONED, and deletes one that is, as Okta does.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteUsers) {
		return
	}
	ref := r.PathValue("id")
	actor := actorOf(r)
	o := s.org
	o.mu.Lock()
	u, ok := o.userByIDOrLogin(ref)
	if ok {
		if u.Status == "DEPROVISIONED" {
			o.purgeUser(&actor, u)
		} else {
			// Deactivation of a user not DEPROVISIONED cannot fail.
			_ = o.userLifecycle(&actor, u, actDeactivate)
		}
	}
	o.mu.Unlock()
	if !ok {
		userNotFound(w, ref)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// userLifecycle is POST /api/v1/users/{id}/lifecycle/{action}. An action
// the user's status does not allow is 400 E0000001, except activating an
// active user, which Okta answers 403 E0000016. activate (sendEmail
// defaults to true) and reactivate (defaults to false) return the
// activation token when no email is sent, {} otherwise; the others {}.
func (s *Server) userLifecycle(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteUsers) {
			return
		}
		sendEmail := action == actActivate
		if v := r.URL.Query().Get("sendEmail"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				invalid(w, "sendEmail: must be true or false")
				return
			}
			sendEmail = b
		}
		ref := r.PathValue("id")
		actor := actorOf(r)
		o := s.org
		o.mu.Lock()
		u, ok := o.userByIDOrLogin(ref)
		var err error
		var token string
		if ok {
			err = o.userLifecycle(&actor, u, action)
			if err == nil && !sendEmail && (action == actActivate || action == actReactivate) {
				token = o.newID("act")
			}
		}
		o.mu.Unlock()
		switch {
		case !ok:
			userNotFound(w, ref)
		case errors.Is(err, errUserAlreadyActive):
			writeError(w, http.StatusForbidden, codeUserAlreadyActive, "Activation failed because the user is already active")
		case errors.Is(err, ErrInvalid):
			invalid(w, lifecycleCause(action, u))
		case err != nil:
			writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
		case token != "":
			writeJSON(w, http.StatusOK, map[string]string{
				"activationToken": token,
				"activationUrl":   o.href("/tokens/" + token + "/verify"),
			})
		default:
			writeRaw(w, http.StatusOK, []byte("{}"))
		}
	}
}

// lifecycleCause words a refused lifecycle operation as Okta's cause does.
func lifecycleCause(action string, u *User) string {
	switch action {
	case actSuspend:
		return "Cannot suspend a user that is not active"
	case actUnsuspend:
		return "Cannot unsuspend a user that is not suspended"
	case actDeactivate:
		return "Cannot deactivate a user that is already deactivated"
	case actReactivate:
		return "Cannot reactivate a user that is not provisioned or in recovery"
	}
	return "Cannot activate a user whose status is " + u.Status
}

// listUserGroups is GET /api/v1/users/{id}/groups: the user's groups, a
// plain array, as eventually consistent as the group member lists.
func (s *Server) listUserGroups(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadDirectory) {
		return
	}
	ref := r.PathValue("id")
	o := s.org
	o.mu.RLock()
	u, ok := o.userByIDOrLogin(ref)
	if !ok {
		o.mu.RUnlock()
		userNotFound(w, ref)
		return
	}
	echo := o.recentMembership(s.opts.Faults.MembershipLag, func(uid, _ string) bool { return uid == u.ID })
	ids := o.sortedGroupIDs(u)
	raws := make([][]byte, 0, len(ids)+len(echo.ghosts))
	for _, gid := range ids {
		if echo.hidden[pairKey(u.ID, gid)] {
			continue
		}
		if g, ok := o.groups.get(gid); ok {
			raws = append(raws, g.raw)
		}
	}
	for _, gh := range echo.ghosts {
		if g, ok := o.groups.get(gh.groupID); ok {
			raws = append(raws, g.raw)
		}
	}
	o.mu.RUnlock()
	writeArray(w, raws)
}

// Filter and search expressions (Okta's SCIM-like query language):
// attr op "value" and attr pr, combined with and/or (and binds tighter)
// and parentheses. filter is the strict form (case-sensitive values, eq
// only except on the time attributes that allow gt/ge/lt/le); search adds
// sw, co, pr and comparisons on every attribute, with case-insensitive
// values.

type exprMode int

const (
	exprFilter exprMode = iota
	exprSearch
)

// exprTok is one token of an expression: a word, a quoted string, or a
// parenthesis.
type exprTok struct {
	kind byte // 'w' word, 's' string, '(' or ')'
	text string
}

func lexExpr(s string) ([]exprTok, error) {
	var toks []exprTok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')':
			toks = append(toks, exprTok{kind: c})
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at position %d", i+1)
			}
			toks = append(toks, exprTok{kind: 's', text: b.String()})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n()\"", rune(s[j])) {
				j++
			}
			toks = append(toks, exprTok{kind: 'w', text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// exprAttr compiles one comparison; value is nil for pr.
type exprAttr[T any] func(attr, op string, value *string) (func(T) bool, error)

type exprParser[T any] struct {
	toks []exprTok
	pos  int
	attr exprAttr[T]
}

// parseExpr compiles an expression into a predicate.
func parseExpr[T any](s string, attr exprAttr[T]) (func(T) bool, error) {
	toks, err := lexExpr(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("empty expression")
	}
	p := &exprParser[T]{toks: toks, attr: attr}
	m, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos].show())
	}
	return m, nil
}

func (t exprTok) show() string {
	if t.kind == 'w' || t.kind == 's' {
		return t.text
	}
	return string(t.kind)
}

func (p *exprParser[T]) peekWord(w string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == 'w' && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *exprParser[T]) or() (func(T) bool, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peekWord("or") {
		p.pos++
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(v T) bool { return l(v) || right(v) }
	}
	return left, nil
}

func (p *exprParser[T]) and() (func(T) bool, error) {
	left, err := p.term()
	if err != nil {
		return nil, err
	}
	for p.peekWord("and") {
		p.pos++
		right, err := p.term()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(v T) bool { return l(v) && right(v) }
	}
	return left, nil
}

func (p *exprParser[T]) term() (func(T) bool, error) {
	if p.pos >= len(p.toks) {
		return nil, errors.New("unexpected end of expression")
	}
	t := p.toks[p.pos]
	if t.kind == '(' {
		p.pos++
		m, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos].kind != ')' {
			return nil, errors.New("missing )")
		}
		p.pos++
		return m, nil
	}
	if t.kind != 'w' {
		return nil, fmt.Errorf("expected an attribute, found %q", t.show())
	}
	if strings.EqualFold(t.text, "not") {
		return nil, errors.New("the not operator is not supported")
	}
	if p.pos+1 >= len(p.toks) || p.toks[p.pos+1].kind != 'w' {
		return nil, fmt.Errorf("expected an operator after %s", t.text)
	}
	attr, op := t.text, strings.ToLower(p.toks[p.pos+1].text)
	p.pos += 2
	if op == "pr" {
		return p.attr(attr, op, nil)
	}
	switch op {
	case "eq", "sw", "co", "gt", "ge", "lt", "le":
	default:
		return nil, fmt.Errorf("unsupported operator %q", op)
	}
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != 's' {
		return nil, fmt.Errorf("%s %s: the value must be a quoted string", attr, op)
	}
	v := p.toks[p.pos].text
	p.pos++
	return p.attr(attr, op, &v)
}

// exprField describes a string attribute of T for expressions.
type exprField[T any] struct {
	get    func(T) string
	filter bool // usable in filter (eq only)
	co     bool // co allowed in search
}

// exprTime describes a time attribute of T for expressions.
type exprTime[T any] struct {
	get    func(T) time.Time
	filter bool // usable in filter (eq, gt, ge, lt, le)
}

// compileAttr builds the exprAttr of a resource from its attribute tables.
func compileAttr[T any](mode exprMode, strs map[string]exprField[T], times map[string]exprTime[T]) exprAttr[T] {
	return func(attr, op string, value *string) (func(T) bool, error) {
		if f, ok := strs[attr]; ok {
			if mode == exprFilter && !f.filter {
				return nil, fmt.Errorf("attribute %s is not supported in a filter", attr)
			}
			return stringMatch(mode, attr, op, value, f)
		}
		if f, ok := times[attr]; ok {
			if mode == exprFilter && !f.filter {
				return nil, fmt.Errorf("attribute %s is not supported in a filter", attr)
			}
			return timeMatch(attr, op, value, f.get)
		}
		return nil, fmt.Errorf("attribute %s is not supported", attr)
	}
}

func stringMatch[T any](mode exprMode, attr, op string, value *string, f exprField[T]) (func(T) bool, error) {
	get := f.get
	if mode == exprFilter {
		if op != "eq" {
			return nil, fmt.Errorf("operator %s is not supported on %s in a filter", op, attr)
		}
		want := *value
		return func(v T) bool { return get(v) == want }, nil
	}
	if op == "pr" {
		return func(v T) bool { return get(v) != "" }, nil
	}
	want := strings.ToLower(*value)
	switch op {
	case "eq":
		return func(v T) bool { return strings.EqualFold(get(v), want) }, nil
	case "sw":
		return func(v T) bool { return hasPrefixFold(get(v), want) }, nil
	case "co":
		if !f.co {
			return nil, fmt.Errorf("operator co is not supported on %s", attr)
		}
		return func(v T) bool { return strings.Contains(strings.ToLower(get(v)), want) }, nil
	}
	return func(v T) bool {
		c := strings.Compare(strings.ToLower(get(v)), want)
		switch op {
		case "gt":
			return c > 0
		case "ge":
			return c >= 0
		case "lt":
			return c < 0
		}
		return c <= 0
	}, nil
}

// timeMatch compares at Okta's millisecond precision, so that a client
// resuming from a rendered lastUpdated with gt does not get it again.
func timeMatch[T any](attr, op string, value *string, get func(T) time.Time) (func(T) bool, error) {
	if op == "pr" {
		return func(v T) bool { return !get(v).IsZero() }, nil
	}
	if op == "sw" || op == "co" {
		return nil, fmt.Errorf("operator %s is not supported on %s", op, attr)
	}
	at, err := time.Parse(time.RFC3339, *value)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid date %q: dates must look like 2013-01-01T12:00:00.000Z", attr, *value)
	}
	want := at.UTC().Truncate(time.Millisecond)
	return func(v T) bool {
		t := get(v)
		if t.IsZero() {
			return false
		}
		t = t.UTC().Truncate(time.Millisecond)
		switch op {
		case "eq":
			return t.Equal(want)
		case "gt":
			return t.After(want)
		case "ge":
			return !t.Before(want)
		case "lt":
			return t.Before(want)
		}
		return !t.After(want)
	}, nil
}

// userAttr is the attribute table of users: filter supports status,
// lastUpdated, id, profile.login/email/firstName/lastName; search any
// profile attribute and the top-level properties.
func userAttr(mode exprMode) exprAttr[*User] {
	strs := map[string]exprField[*User]{
		"id":                     {get: func(u *User) string { return u.ID }, filter: true},
		"status":                 {get: func(u *User) string { return u.Status }, filter: true},
		"type.id":                {get: func(*User) string { return defaultUserTypeID }},
		"profile.login":          {get: func(u *User) string { return u.Profile.Login }, filter: true, co: true},
		"profile.email":          {get: func(u *User) string { return u.Profile.Email }, filter: true, co: true},
		"profile.firstName":      {get: func(u *User) string { return u.Profile.FirstName }, filter: true, co: true},
		"profile.lastName":       {get: func(u *User) string { return u.Profile.LastName }, filter: true, co: true},
		"profile.displayName":    {get: func(u *User) string { return u.Profile.DisplayName }},
		"profile.department":     {get: func(u *User) string { return u.Profile.Department }},
		"profile.title":          {get: func(u *User) string { return u.Profile.Title }},
		"profile.managerId":      {get: func(u *User) string { return u.Profile.ManagerID }},
		"profile.employeeNumber": {get: func(u *User) string { return u.Profile.EmployeeNumber }},
		"profile.userType":       {get: func(u *User) string { return u.Profile.UserType }},
	}
	times := map[string]exprTime[*User]{
		"lastUpdated":   {get: func(u *User) time.Time { return u.LastUpdated }, filter: true},
		"created":       {get: func(u *User) time.Time { return u.Created }},
		"activated":     {get: func(u *User) time.Time { return u.Activated }},
		"statusChanged": {get: func(u *User) time.Time { return u.StatusChanged }},
	}
	return compileAttr(mode, strs, times)
}
