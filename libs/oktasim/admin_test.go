package oktasim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testAdminKey = "test-admin-key"

// startSmall serves a small org of seed 7 until the test ends.
func startSmall(t *testing.T, cfg Config) *Running {
	t.Helper()
	cfg.Profile, cfg.Seed = "small", 7
	run, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := run.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return run
}

// call sends a request to run with optional headers (name, value pairs).
func call(t *testing.T, run *Running, method, path string, body any, headers ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, run.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := run.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// admin sends an admin request with the right key.
func admin(t *testing.T, run *Running, method, path string, body any, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return call(t, run, method, path, body, append([]string{adminKeyHeader, testAdminKey}, headers...)...)
}

func api(t *testing.T, run *Running, token, method, path string) (*http.Response, []byte) {
	t.Helper()
	return call(t, run, method, path, nil, "Authorization", "SSWS "+token)
}

// The checks of shared/acceptance/oktasim, in-process.
func TestStartServesGeneratedOrgAsOkta(t *testing.T) {
	run := startSmall(t, Config{})
	if !strings.HasPrefix(run.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s", run.URL)
	}
	resp, b := api(t, run, run.Tokens.ReadOnlyAdmin, "GET", "/api/v1/users?limit=50")
	if resp.StatusCode != 200 {
		t.Fatalf("users: %d %s", resp.StatusCode, b)
	}
	for _, h := range []string{"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if links := resp.Header.Values("Link"); len(links) != 2 || !strings.Contains(links[1], `rel="next"`) {
		t.Errorf("Link headers %q; want self and next on separate lines", links)
	}
	var users []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &users); err != nil || len(users) != 50 {
		t.Fatalf("users page: %d users, %v", len(users), err)
	}
	rolesPath := "/api/v1/users/" + users[0].ID + "/roles"
	if resp, b := api(t, run, run.Tokens.ReadOnlyAdmin, "GET", rolesPath); resp.StatusCode != 403 || errorCode(b) != codeForbidden {
		t.Errorf("roles with read-only token: %d %s", resp.StatusCode, b)
	}
	if resp, b := api(t, run, run.Tokens.SuperAdmin, "GET", rolesPath); resp.StatusCode != 200 {
		t.Errorf("roles with super admin token: %d %s", resp.StatusCode, b)
	}
	if resp, b := api(t, run, "nope", "GET", "/api/v1/users"); resp.StatusCode != 401 || errorCode(b) != codeInvalidToken {
		t.Errorf("bad token: %d %s", resp.StatusCode, b)
	}
	// The simulated clock starts at the documented date.
	if date, err := http.ParseTime(resp.Header.Get("Date")); err != nil || date.Sub(DefaultStart()) < 0 || date.Sub(DefaultStart()) > time.Hour {
		t.Errorf("Date %q (%v); want just after %v", resp.Header.Get("Date"), err, DefaultStart())
	}
}

func TestStartTLS(t *testing.T) {
	run := startSmall(t, Config{TLS: true, RateLimits: NoLimits})
	if !strings.HasPrefix(run.URL, "https://127.0.0.1:") || !bytes.Contains(run.CACertPEM, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("URL %s, CA %q", run.URL, run.CACertPEM)
	}
	if resp, b := api(t, run, run.Tokens.SuperAdmin, "GET", "/api/v1/users?limit=1"); resp.StatusCode != 200 {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, b)
	}
	if resp, err := http.Get(run.URL + "/api/v1/users"); err == nil {
		resp.Body.Close()
		t.Fatal("a client without the CA trusted the certificate")
	}
	localhost := strings.Replace(run.URL, "127.0.0.1", "localhost", 1)
	resp, err := run.Client().Get(localhost + "/api/v1/users")
	if err != nil {
		t.Fatalf("certificate not valid for localhost: %v", err)
	}
	resp.Body.Close()
}

func TestStartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"unknown profile", Config{Profile: "huge"}},
		{"bad address", Config{Addr: "127.0.0.1:notaport"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if run, err := Start(context.Background(), tc.cfg); err == nil {
				_ = run.Close(context.Background())
				t.Fatal("started")
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if run, err := Start(ctx, Config{}); err == nil {
		_ = run.Close(context.Background())
		t.Fatal("started with a cancelled context")
	}
}

func TestStartCloseIsIdempotent(t *testing.T) {
	run, err := Start(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := run.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if run.Err() != nil {
		t.Fatal(run.Err())
	}
}

func TestAdminAuth(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers []string
		status  int
		code    string
	}{
		{"no key", "GET", "/_sim/counters", nil, 401, codeInvalidToken},
		{"wrong key", "GET", "/_sim/counters", []string{adminKeyHeader, "wrong"}, 401, codeInvalidToken},
		{"API token instead", "GET", "/_sim/counters", []string{"Authorization", "SSWS " + run.Tokens.SuperAdmin}, 401, codeInvalidToken},
		{"right key", "GET", "/_sim/counters", []string{adminKeyHeader, testAdminKey}, 200, ""},
		{"unknown path", "GET", "/_sim/nothing", []string{adminKeyHeader, testAdminKey}, 404, codeNotFound},
		{"wrong method", "DELETE", "/_sim/counters", []string{adminKeyHeader, testAdminKey}, 405, codeMethodNotAllowd},
		{"empty parameter", "POST", "/_sim/groups//members/00u1", []string{adminKeyHeader, testAdminKey}, 404, codeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := call(t, run, tc.method, tc.path, nil, tc.headers...)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s; want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

func TestAdminDisabledWithoutKey(t *testing.T) {
	run := startSmall(t, Config{})
	for _, key := range []string{"", "anything"} {
		if resp, b := call(t, run, "GET", "/_sim/counters", nil, adminKeyHeader, key); resp.StatusCode != 404 || errorCode(b) != codeNotFound {
			t.Errorf("key %q: %d %s", key, resp.StatusCode, b)
		}
	}
}

// picks finds objects of a generated org for the admin tests.
type picks struct {
	active, deprovisioned, member *User
	group, everyone, appGroup     *Group
	app                           *App
}

func pick(t *testing.T, o *Org) picks {
	t.Helper()
	o.mu.RLock()
	defer o.mu.RUnlock()
	var p picks
	o.groups.each(func(_ string, g *Group) bool {
		switch {
		case g.Type == GroupBuiltIn:
			p.everyone = g
		case g.Type == GroupOkta && len(g.apps) == 0 && g.members.len() > 0 && p.group == nil:
			p.group = g
			g.members.each(func(_ string, u *User) bool { p.member = u; return false })
		case g.Type == GroupApp && p.appGroup == nil:
			p.appGroup = g
		}
		return true
	})
	o.apps.each(func(_ string, a *App) bool {
		if a.Status == "ACTIVE" && a.groups.len() == 0 {
			p.app = a
			return false
		}
		return true
	})
	if p.group == nil || p.app == nil || p.appGroup == nil || p.everyone == nil {
		t.Fatalf("small org lacks what the test needs: %+v", p)
	}
	o.users.each(func(_ string, u *User) bool {
		_, inGroup := u.groups[p.group.ID]
		_, hasApp := p.app.users.get(u.ID)
		switch {
		case u.Status == "DEPROVISIONED" && p.deprovisioned == nil:
			p.deprovisioned = u
		case u.Status == "ACTIVE" && !inGroup && !hasApp && o.roles[roleKey("USER", u.ID)] == nil && p.active == nil:
			p.active = u // no admin, not in the group, not on the app
		}
		return true
	})
	if p.active == nil || p.deprovisioned == nil {
		t.Fatalf("small org lacks what the test needs: %+v", p)
	}
	return p
}

// logSince returns the event types logged from index from on, with their actors.
func logSince(o *Org, from int) (types []string, actors []string) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, e := range o.logs[from:] {
		types = append(types, e.EventType)
		actors = append(actors, e.Actor.ID)
	}
	return types, actors
}

func logLen(o *Org) int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.logs)
}

func TestAdminChangesAreLoggedAsTheSuperAdmin(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	o := run.Org
	p := pick(t, o)
	type step struct {
		name   string
		method string
		path   string
		body   any
		status int
		want   string // a substring of the answer
		events []string
	}
	uid, gid, aid := p.active.ID, p.group.ID, p.app.ID
	var roleID string
	steps := []step{
		{"create user", "POST", "/_sim/users", map[string]any{"profile": map[string]any{"login": "new.hire@example.com", "firstName": "New", "lastName": "Hire"}, "status": "SUSPENDED"},
			201, `"status":"SUSPENDED"`, []string{"user.lifecycle.create", "user.lifecycle.activate", "group.user_membership.add", "user.lifecycle.suspend"}},
		{"create user flat", "POST", "/_sim/users", map[string]any{"login": "flat@example.com", "email": "flat@example.com", "firstName": "Flat", "lastName": "Body", "status": "STAGED"},
			201, `"status":"STAGED"`, []string{"user.lifecycle.create", "group.user_membership.add"}},
		{"add member", "POST", "/_sim/groups/" + gid + "/members/" + uid, nil, 200, `"changed":true`, []string{"group.user_membership.add"}},
		{"add member again", "PUT", "/_sim/groups/" + gid + "/members/" + uid, nil, 200, `"changed":false`, nil},
		{"remove member", "DELETE", "/_sim/groups/" + gid + "/members/" + uid, nil, 200, `"changed":true`, []string{"group.user_membership.remove"}},
		{"assign user to app", "POST", "/_sim/apps/" + aid + "/users/" + uid, map[string]any{"profile": map[string]any{"role": "viewer"}}, 201, `"scope":"USER"`, []string{"application.user_membership.add"}},
		{"unassign user from app", "DELETE", "/_sim/apps/" + aid + "/users/" + uid, nil, 200, `"changed":true`, []string{"application.user_membership.remove"}},
		{"unassign user from app again", "DELETE", "/_sim/apps/" + aid + "/users/" + uid, nil, 200, `"changed":false`, nil},
		{"assign group to app", "PUT", "/_sim/apps/" + aid + "/groups/" + gid, map[string]any{"priority": 0}, 201, `"priority":0`, nil},
		{"unassign group from app", "DELETE", "/_sim/apps/" + aid + "/groups/" + gid, nil, 200, `"changed":true`, nil},
		{"suspend user", "POST", "/_sim/users/" + uid + "/status", map[string]string{"status": "SUSPENDED"}, 200, `"status":"SUSPENDED"`, []string{"user.lifecycle.suspend"}},
		{"unsuspend user", "POST", "/_sim/users/" + uid + "/status", map[string]string{"status": "ACTIVE"}, 200, `"status":"ACTIVE"`, []string{"user.lifecycle.unsuspend"}},
		{"grant role", "POST", "/_sim/users/" + uid + "/roles", map[string]string{"type": "APP_ADMIN"}, 201, `"type":"APP_ADMIN"`, []string{"user.account.privilege.grant"}},
		{"create group", "POST", "/_sim/groups", map[string]string{"name": "Created by admin"}, 201, `"name":"Created by admin"`, []string{"group.lifecycle.create"}},
		{"deactivate app", "POST", "/_sim/apps/" + aid + "/status", map[string]string{"status": "INACTIVE"}, 200, `"status":"INACTIVE"`, []string{"application.lifecycle.deactivate"}},
	}
	for _, s := range steps {
		from := logLen(o)
		resp, b := admin(t, run, s.method, s.path, s.body)
		if resp.StatusCode != s.status || !strings.Contains(string(b), s.want) {
			t.Fatalf("%s: %d %s; want %d with %s", s.name, resp.StatusCode, b, s.status, s.want)
		}
		types, actors := logSince(o, from)
		for _, want := range s.events {
			if !contains(types, want) {
				t.Errorf("%s: logged %v; want %s", s.name, types, want)
			}
		}
		for _, a := range actors {
			if a != run.Generated.Admins.SuperAdmin {
				t.Errorf("%s: actor %s; want the super admin %s (%v)", s.name, a, run.Generated.Admins.SuperAdmin, types)
			}
		}
		if s.name == "grant role" {
			var ra struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(b, &ra)
			roleID = ra.ID
		}
	}
	// The role just granted shows in the API and can be revoked.
	if resp, b := api(t, run, run.Tokens.SuperAdmin, "GET", "/api/v1/users/"+uid+"/roles"); resp.StatusCode != 200 || !strings.Contains(string(b), roleID) {
		t.Errorf("roles after grant: %d %s", resp.StatusCode, b)
	}
	from := logLen(o)
	if resp, b := admin(t, run, "DELETE", "/_sim/users/"+uid+"/roles/"+roleID, nil); resp.StatusCode != 200 {
		t.Fatalf("revoke role: %d %s", resp.StatusCode, b)
	}
	if types, _ := logSince(o, from); !contains(types, "user.account.privilege.revoke") {
		t.Errorf("revoke logged %v", types)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestAdminActorHeader(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	p := pick(t, run.Org)
	from := logLen(run.Org)
	resp, b := admin(t, run, "POST", "/_sim/groups/"+p.group.ID+"/members/"+p.active.ID, nil, adminActorHeader, run.Generated.Admins.AppGroupAdmin)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if _, actors := logSince(run.Org, from); len(actors) != 1 || actors[0] != run.Generated.Admins.AppGroupAdmin {
		t.Errorf("actors %v; want %s", actors, run.Generated.Admins.AppGroupAdmin)
	}
	if resp, b := admin(t, run, "POST", "/_sim/groups/"+p.group.ID+"/members/"+p.active.ID, nil, adminActorHeader, "00unobody"); resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Errorf("unknown actor: %d %s", resp.StatusCode, b)
	}
}

func TestAdminReads(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	api(t, run, run.Tokens.ReadOnlyAdmin, "GET", "/api/v1/users?limit=1")
	resp, b := admin(t, run, "GET", "/_sim/counters", nil)
	var counts Counts
	if err := json.Unmarshal(b, &counts); resp.StatusCode != 200 || err != nil || counts.Requests[BucketUsersList] != 1 {
		t.Errorf("counters: %d %s %v", resp.StatusCode, b, err)
	}
	resp, b = admin(t, run, "GET", "/_sim/tokens", nil)
	var tokens struct {
		Tokens
		All []tokenInfo `json:"tokens"`
	}
	if err := json.Unmarshal(b, &tokens); resp.StatusCode != 200 || err != nil || tokens.Tokens != run.Tokens || len(tokens.All) != 3 {
		t.Errorf("tokens: %d %s %v; want %+v", resp.StatusCode, b, err, run.Tokens)
	}
	resp, b = admin(t, run, "GET", "/_sim/summary", nil)
	var sum Summary
	if err := json.Unmarshal(b, &sum); resp.StatusCode != 200 || err != nil || sum.Users != 200 {
		t.Errorf("summary: %d %s %v", resp.StatusCode, b, err)
	}
}

// The tokens of an org not made by Generate are found by their roles.
func TestAdminTokensOfFixtureOrg(t *testing.T) {
	f := newFixture(t, NoLimits)
	req := httptest.NewRequest("GET", "/_sim/tokens", nil)
	req.Header.Set(adminKeyHeader, "sim-admin")
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	var got Tokens
	if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if want := (Tokens{ReadOnlyAdmin: f.ro, AppGroupAdmin: f.appgr, SuperAdmin: f.super}); got != want {
		t.Errorf("tokens %+v, want %+v", got, want)
	}
}

func TestAdminErrors(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	p := pick(t, run.Org)
	uid, gid, aid := p.active.ID, p.group.ID, p.app.ID
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"member: unknown group", "POST", "/_sim/groups/00gnope/members/" + uid, nil, 404, codeNotFound},
		{"member: unknown user", "DELETE", "/_sim/groups/" + gid + "/members/00unope", nil, 404, codeNotFound},
		{"app user: unknown app", "POST", "/_sim/apps/0oanope/users/" + uid, nil, 404, codeNotFound},
		{"app user: unknown user", "DELETE", "/_sim/apps/" + aid + "/users/00unope", nil, 404, codeNotFound},
		{"app user: deactivated user", "POST", "/_sim/apps/" + aid + "/users/" + p.deprovisioned.ID, nil, 409, codeValidation},
		{"app user: malformed body", "POST", "/_sim/apps/" + aid + "/users/" + uid, "{", 400, codeMalformedBody},
		{"app group: unknown group", "PUT", "/_sim/apps/" + aid + "/groups/00gnope", nil, 404, codeNotFound},
		{"app group: unknown app", "DELETE", "/_sim/apps/0oanope/groups/" + gid, nil, 404, codeNotFound},
		{"app group: negative priority", "PUT", "/_sim/apps/" + aid + "/groups/" + gid, map[string]int{"priority": -2}, 400, codeValidation},
		{"create user: malformed", "POST", "/_sim/users", "not json", 400, codeMalformedBody},
		{"create user: no login", "POST", "/_sim/users", map[string]any{"profile": map[string]any{"firstName": "A"}}, 400, codeValidation},
		{"create user: bad status", "POST", "/_sim/users", map[string]any{"login": "x@example.com", "firstName": "X", "lastName": "Y", "status": "HAPPY"}, 400, codeValidation},
		{"create user: duplicate login", "POST", "/_sim/users", map[string]any{"login": p.active.Profile.Login, "firstName": "X", "lastName": "Y"}, 400, codeValidation},
		{"status: unknown user", "POST", "/_sim/users/00unope/status", map[string]string{"status": "SUSPENDED"}, 404, codeNotFound},
		{"status: missing", "POST", "/_sim/users/" + uid + "/status", map[string]string{}, 400, codeValidation},
		{"status: impossible move", "POST", "/_sim/users/" + uid + "/status", map[string]string{"status": "STAGED"}, 400, codeValidation},
		{"status: malformed", "POST", "/_sim/users/" + uid + "/status", "[", 400, codeMalformedBody},
		{"role: unknown type", "POST", "/_sim/users/" + uid + "/roles", map[string]string{"type": "KING"}, 400, codeValidation},
		{"role: unknown user", "POST", "/_sim/users/00unope/roles", map[string]string{"type": "APP_ADMIN"}, 404, codeNotFound},
		{"role: unknown custom role", "POST", "/_sim/users/" + uid + "/roles", map[string]string{"type": "CUSTOM", "role": "cr0nope", "resource-set": "iamnope"}, 404, codeNotFound},
		{"role: malformed", "POST", "/_sim/users/" + uid + "/roles", "{{", 400, codeMalformedBody},
		{"unassign role: unknown", "DELETE", "/_sim/users/" + uid + "/roles/ra1nope", nil, 404, codeNotFound},
		{"create group: no name", "POST", "/_sim/groups", map[string]string{"description": "x"}, 400, codeValidation},
		{"create group: malformed", "POST", "/_sim/groups", "x", 400, codeMalformedBody},
		{"app status: bad status", "POST", "/_sim/apps/" + aid + "/status", map[string]string{"status": "ASLEEP"}, 400, codeValidation},
		{"app status: unknown app", "POST", "/_sim/apps/0oanope/status", map[string]string{"status": "INACTIVE"}, 404, codeNotFound},
		{"users: wrong method", "GET", "/_sim/users", nil, 405, codeMethodNotAllowd},
		{"app groups: wrong method", "GET", "/_sim/apps/" + aid + "/groups/" + gid, nil, 405, codeMethodNotAllowd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := admin(t, run, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s; want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

// A CUSTOM role granted through the admin endpoint is a binding member of
// its resource set, as in Okta, and goes with the revocation.
func TestAdminCustomRole(t *testing.T) {
	run := startSmall(t, Config{AdminKey: testAdminKey})
	p := pick(t, run.Org)
	o := run.Org
	o.mu.RLock()
	var roleID, setID string
	o.customRoles.each(func(id string, _ *CustomRole) bool { roleID = id; return false })
	o.resourceSets.each(func(id string, _ *ResourceSet) bool { setID = id; return false })
	o.mu.RUnlock()
	resp, b := admin(t, run, "POST", "/_sim/users/"+p.active.ID+"/roles", map[string]string{"type": "CUSTOM", "role": roleID, "resource-set": setID})
	if resp.StatusCode != 201 {
		t.Fatalf("grant custom: %d %s", resp.StatusCode, b)
	}
	var ra struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &ra)
	href := o.href("/api/v1/users/" + p.active.ID)
	bound := func() bool {
		o.mu.RLock()
		defer o.mu.RUnlock()
		rs, _ := o.resourceSets.get(setID)
		bd, ok := rs.Bindings.get(roleID)
		return ok && findMember(bd, href) != nil
	}
	if !bound() {
		t.Fatal("custom role granted but the user is no binding member")
	}
	if resp, b := admin(t, run, "DELETE", "/_sim/users/"+p.active.ID+"/roles/"+ra.ID, nil); resp.StatusCode != 200 {
		t.Fatalf("revoke custom: %d %s", resp.StatusCode, b)
	}
	if bound() {
		t.Fatal("custom role revoked but the user is still bound")
	}
}
