package oktasim

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// usrClock freezes the org's clock at its current time and returns a
// function that moves it on, so tests can see timestamps move and the
// membership lag pass without waiting.
func usrClock(f *fixture) func(time.Duration) time.Time {
	c := f.org.clock
	now := c.Now()
	c.mu.Lock()
	c.fixed, c.now = true, now
	c.mu.Unlock()
	return func(d time.Duration) time.Time {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.now = c.now.Add(d)
		return c.now
	}
}

// usrDecode decodes a JSON body or fails the test.
func usrDecode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", truncateBody(b), err)
	}
	return v
}

// usrIDs are the ids of a list answer.
func usrIDs(t *testing.T, b []byte) []string {
	t.Helper()
	var ids []string
	for _, v := range usrDecode[[]map[string]any](t, b) {
		ids = append(ids, v["id"].(string))
	}
	return ids
}

// usrNext is the path and query of a response's rel="next" link, or "".
// It also checks that every link is a header line of its own.
func usrNext(t *testing.T, f *fixture, resp *http.Response) string {
	t.Helper()
	next := ""
	for _, l := range resp.Header.Values("Link") {
		if strings.Count(l, "rel=") != 1 {
			t.Fatalf("Link header line holds several links: %q", l)
		}
		if strings.HasSuffix(l, `rel="next"`) {
			u := strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
			next = strings.TrimPrefix(u, f.url)
		}
	}
	return next
}

// usrEvents are the System Log events of the given types.
func usrEvents(f *fixture, types ...string) []*LogEvent {
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	var out []*LogEvent
	for _, e := range f.org.logs {
		if slices.Contains(types, e.EventType) {
			out = append(out, e)
		}
	}
	return out
}

// usrMake creates a user in status with a distinct profile.
func usrMake(t *testing.T, f *fixture, login, first, last, status string) *User {
	t.Helper()
	u, err := f.org.CreateUser(nil, UserProfile{Login: login, Email: login, FirstName: first, LastName: last, Department: "Eng"}, status, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUsersListPagesWithoutDeprovisioned(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	want := []string{f.admin.ID}
	f.org.mu.RLock()
	want = want[:0]
	f.org.users.each(func(id string, _ *User) bool { want = append(want, id); return true })
	f.org.mu.RUnlock()
	for i := range 7 {
		u := usrMake(t, f, "p"+string(rune('a'+i))+"@example.com", "P", "Q", "ACTIVE")
		want = append(want, u.ID)
	}
	usrMake(t, f, "gone@example.com", "Gone", "User", "DEPROVISIONED")

	var got []string
	path := "/api/v1/users?limit=3"
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		resp, b := c.check(f.ro, "GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		got = append(got, usrIDs(t, b)...)
		path = usrNext(t, f, resp)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged users %v, want %v", got, want)
	}

	// A limit above 200 is clamped, not refused.
	resp, b := f.do(f.ro, "GET", "/api/v1/users?limit=5000", nil)
	if resp.StatusCode != 200 || len(usrIDs(t, b)) != len(want) {
		t.Fatalf("clamped limit: %d %s", resp.StatusCode, b)
	}
}

func TestUsersFilterSearchAndFind(t *testing.T) {
	f := newFixture(t, NoLimits)
	advance := usrClock(f)
	ann := usrMake(t, f, "ann@example.com", "Ann", "Archer", "ACTIVE")
	advance(time.Second)
	bob := usrMake(t, f, "bob@example.com", "Bob", "Baker", "STAGED")
	advance(time.Second)
	cat := usrMake(t, f, "cat@example.com", "Cat", "Archer", "SUSPENDED")
	gone := usrMake(t, f, "gone@example.com", "Gone", "Archer", "DEPROVISIONED")
	cut := oktaTimeString(bob.LastUpdated)

	c := newContract(t, f)
	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"filter status", `filter=status eq "DEPROVISIONED"`, []string{gone.ID}},
		{"filter status and name", `filter=status eq "ACTIVE" and profile.lastName eq "Archer"`, []string{ann.ID}},
		{"filter or", `filter=id eq "` + bob.ID + `" or profile.login eq "cat@example.com"`, []string{bob.ID, cat.ID}},
		{"filter lastUpdated gt skips the rendered time", `filter=lastUpdated gt "` + cut + `"`, []string{cat.ID, gone.ID}},
		{"filter lastUpdated ge", `filter=lastUpdated ge "` + cut + `" and profile.firstName eq "Bob"`, []string{bob.ID}},
		{"filter lastUpdated lt", `filter=lastUpdated lt "` + cut + `" and profile.email eq "ann@example.com"`, []string{ann.ID}},
		{"filter with parentheses", `filter=profile.lastName eq "Archer" and (status eq "SUSPENDED" or status eq "DEPROVISIONED")`, []string{cat.ID, gone.ID}},
		{"filter values are case-sensitive", `filter=profile.firstName eq "ann"`, nil},
		{"filter operators are not", `filter=profile.firstName EQ "Ann"`, []string{ann.ID}},
		{"search status pr includes deprovisioned", `search=status pr and profile.lastName eq "archer"`, []string{ann.ID, cat.ID, gone.ID}},
		{"search sw", `search=profile.firstName sw "b"`, []string{bob.ID}},
		{"search co", `search=profile.email co "at@"`, []string{cat.ID}},
		{"search ne by lt or gt", `search=profile.lastName eq "Archer" and (status lt "SUSPENDED" or status gt "SUSPENDED")`, []string{ann.ID, gone.ID}},
		{"search other profile attribute", `search=profile.department eq "eng" and profile.firstName sw "C"`, []string{cat.ID}},
		{"q finds by name prefix without deprovisioned", `q=arc`, []string{ann.ID, cat.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(f.ro, "GET", "/api/v1/users?"+usrQuery(tc.query), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if got := usrIDs(t, b); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name, query, code string
	}{
		{"unparsable filter", `filter=status eq`, codeValidation},
		{"unquoted value", `filter=status eq ACTIVE`, codeValidation},
		{"unknown attribute", `filter=profile.department eq "Eng"`, codeValidation},
		{"sw in a filter", `filter=profile.login sw "a"`, codeValidation},
		{"gt on a string in a filter", `filter=status gt "A"`, codeValidation},
		{"bad date", `filter=lastUpdated gt "yesterday"`, codeValidation},
		{"unbalanced", `filter=(status eq "ACTIVE"`, codeValidation},
		{"not", `filter=not status eq "ACTIVE"`, codeValidation},
		{"trailing words", `filter=status eq "ACTIVE" status`, codeValidation},
		{"bad search", `search=profile.nope eq "x"`, codeInvalidSearch},
		{"co on an attribute without it", `search=status co "A"`, codeInvalidSearch},
		{"filter and search", `filter=status eq "ACTIVE"&search=status pr`, codeSearchAndFilter},
		{"bad limit", `limit=zero`, codeValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(f.ro, "GET", "/api/v1/users?"+usrQuery(tc.query), nil)
			if resp.StatusCode != 400 || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want 400 %s", resp.StatusCode, b, tc.code)
			}
			if tc.code != codeSearchAndFilter && len(usrDecode[apiError](t, b).ErrorCauses) == 0 {
				t.Fatalf("no errorCauses: %s", b)
			}
		})
	}
}

// usrQuery URL-encodes the values of a readable query string.
func usrQuery(raw string) string {
	q := url.Values{}
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		q.Add(k, v)
	}
	return q.Encode()
}

func oktaTimeString(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func TestUsersGetByIDLoginAndMe(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "dana@example.com", "Dana", "Doe", "ACTIVE")
	for _, ref := range []string{u.ID, "dana@example.com"} {
		resp, b := c.check(f.ro, "GET", "/api/v1/users/"+url.PathEscape(ref), nil)
		if resp.StatusCode != 200 || usrDecode[map[string]any](t, b)["id"] != u.ID {
			t.Fatalf("GET %s: %d %s", ref, resp.StatusCode, b)
		}
	}
	// me is the token's user, for any valid token, even one with no admin
	// role at all (which may not read the directory).
	plain := usrMake(t, f, "plain@example.com", "Plain", "User", "ACTIVE")
	if err := f.org.AddToken(plain.ID, "tok-plain"); err != nil {
		t.Fatal(err)
	}
	resp, b := c.check("tok-plain", "GET", "/api/v1/users/me", nil)
	if resp.StatusCode != 200 || usrDecode[map[string]any](t, b)["id"] != plain.ID {
		t.Fatalf("me: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/api/v1/users", "/api/v1/users/" + u.ID, "/api/v1/users/" + u.ID + "/groups"} {
		if resp, b := c.check("tok-plain", "GET", path, nil); resp.StatusCode != 403 || errorCode(b) != codeForbidden {
			t.Fatalf("no-role token %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

func TestUsersErrorAnswers(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "erin@example.com", "Erin", "E", "ACTIVE")
	id := u.ID
	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "", "GET", "/api/v1/users", nil, 401, codeInvalidToken},
		{"bad token", "nope", "GET", "/api/v1/users/" + id, nil, 401, codeInvalidToken},
		{"unknown user", f.ro, "GET", "/api/v1/users/00u_nobody", nil, 404, codeNotFound},
		{"groups of unknown user", f.ro, "GET", "/api/v1/users/00u_nobody/groups", nil, 404, codeNotFound},
		{"lifecycle by read-only", f.ro, "POST", "/api/v1/users/" + id + "/lifecycle/suspend", nil, 403, codeForbidden},
		{"lifecycle by membership admin", f.appgr, "POST", "/api/v1/users/" + id + "/lifecycle/deactivate", nil, 403, codeForbidden},
		{"delete by read-only", f.ro, "DELETE", "/api/v1/users/" + id, nil, 403, codeForbidden},
		{"update by read-only", f.ro, "POST", "/api/v1/users/" + id, map[string]any{"profile": map[string]any{"title": "x"}}, 403, codeForbidden},
		{"create by read-only", f.ro, "POST", "/api/v1/users", map[string]any{"profile": map[string]any{"login": "x@example.com"}}, 403, codeForbidden},
		{"lifecycle of unknown user", f.super, "POST", "/api/v1/users/00u_nobody/lifecycle/suspend", nil, 404, codeNotFound},
		{"delete unknown user", f.super, "DELETE", "/api/v1/users/00u_nobody", nil, 404, codeNotFound},
		{"update unknown user", f.super, "POST", "/api/v1/users/00u_nobody", map[string]any{}, 404, codeNotFound},
		{"unknown attribute", f.super, "POST", "/api/v1/users/" + id, map[string]any{"profile": map[string]any{"shoeSize": "9"}}, 400, codeValidation},
		{"non-string attribute", f.super, "POST", "/api/v1/users/" + id, map[string]any{"profile": map[string]any{"title": 9}}, 400, codeValidation},
		{"replace without names", f.super, "PUT", "/api/v1/users/" + id, map[string]any{"profile": map[string]any{"login": "erin@example.com"}}, 400, codeValidation},
		{"duplicate login", f.super, "POST", "/api/v1/users/" + id, map[string]any{"profile": map[string]any{"login": "ro@example.com"}}, 400, codeValidation},
		{"malformed body", f.super, "POST", "/api/v1/users/" + id, []byte("{"), 400, codeMalformedBody},
		{"create without names", f.super, "POST", "/api/v1/users", map[string]any{"profile": map[string]any{"login": "x@example.com"}}, 400, codeValidation},
		{"create duplicate", f.super, "POST", "/api/v1/users", map[string]any{"profile": map[string]any{"login": "erin@example.com", "email": "e@example.com", "firstName": "E", "lastName": "E"}}, 400, codeValidation},
		{"create in unknown group", f.super, "POST", "/api/v1/users", map[string]any{"profile": map[string]any{"login": "n@example.com", "email": "n@example.com", "firstName": "N", "lastName": "N"}, "groupIds": []string{"00g_nope"}}, 400, codeValidation},
		{"bad sendEmail", f.super, "POST", "/api/v1/users/" + id + "/lifecycle/deactivate?sendEmail=perhaps", nil, 400, codeValidation},
		{"lifecycle GET", f.super, "GET", "/api/v1/users/" + id + "/lifecycle/suspend", nil, 405, codeMethodNotAllowd},
		{"PATCH user", f.super, "PATCH", "/api/v1/users/" + id, nil, 405, codeMethodNotAllowd},
		{"DELETE list", f.super, "DELETE", "/api/v1/users", nil, 405, codeMethodNotAllowd},
		{"POST user groups", f.super, "POST", "/api/v1/users/" + id + "/groups", nil, 405, codeMethodNotAllowd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var b []byte
			if tc.status == 405 {
				// The spec has no such operation to check against.
				resp, b = f.do(tc.token, tc.method, tc.path, tc.body)
			} else {
				resp, b = c.check(tc.token, tc.method, tc.path, tc.body)
			}
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
	// Nothing above changed the user.
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	if u.Status != "ACTIVE" || u.Profile.Title != "" || u.Profile.Login != "erin@example.com" {
		t.Fatalf("user changed: %+v", u)
	}
}

func TestUsersLifecycleFollowsOktaStateRules(t *testing.T) {
	f := newFixture(t, NoLimits)
	advance := usrClock(f)
	c := newContract(t, f)
	for _, tc := range []struct {
		from, action, to string // to "" means refused
		code             string
		event            string
	}{
		{"ACTIVE", "suspend", "SUSPENDED", "", "user.lifecycle.suspend"},
		{"STAGED", "suspend", "", codeValidation, ""},
		{"SUSPENDED", "suspend", "", codeValidation, ""},
		{"SUSPENDED", "unsuspend", "ACTIVE", "", "user.lifecycle.unsuspend"},
		{"ACTIVE", "unsuspend", "", codeValidation, ""},
		{"ACTIVE", "deactivate", "DEPROVISIONED", "", "user.lifecycle.deactivate"},
		{"SUSPENDED", "deactivate", "DEPROVISIONED", "", "user.lifecycle.deactivate"},
		{"STAGED", "deactivate", "DEPROVISIONED", "", "user.lifecycle.deactivate"},
		{"DEPROVISIONED", "deactivate", "", codeValidation, ""},
		{"STAGED", "activate", "PROVISIONED", "", "user.lifecycle.activate"},
		{"ACTIVE", "activate", "", codeUserAlreadyActive, ""},
		{"SUSPENDED", "activate", "", codeValidation, ""},
		{"PROVISIONED", "reactivate", "PROVISIONED", "", "user.lifecycle.reactivate"},
		{"RECOVERY", "reactivate", "PROVISIONED", "", "user.lifecycle.reactivate"},
		{"ACTIVE", "reactivate", "", codeValidation, ""},
	} {
		t.Run(tc.from+" "+tc.action, func(t *testing.T) {
			u := usrMake(t, f, strings.ToLower(tc.from+"."+tc.action+"@example.com"), "L", "C", tc.from)
			before := len(usrEvents(f, tc.event))
			at := advance(time.Minute)
			resp, b := c.check(f.super, "POST", "/api/v1/users/"+u.ID+"/lifecycle/"+tc.action, nil)
			f.org.mu.RLock()
			status, changed, updated := u.Status, u.StatusChanged, u.LastUpdated
			f.org.mu.RUnlock()
			if tc.to == "" {
				wantStatus := 400
				if tc.code == codeUserAlreadyActive {
					wantStatus = 403
				}
				if resp.StatusCode != wantStatus || errorCode(b) != tc.code || status != tc.from {
					t.Fatalf("%d %s status %s; want %d %s and no change", resp.StatusCode, b, status, wantStatus, tc.code)
				}
				return
			}
			if resp.StatusCode != 200 || status != tc.to {
				t.Fatalf("%d %s status %s, want 200 and %s", resp.StatusCode, b, status, tc.to)
			}
			if tc.from != tc.to && (!changed.Equal(at) || !updated.Equal(at)) {
				t.Fatalf("statusChanged %v lastUpdated %v, want %v", changed, updated, at)
			}
			if got := len(usrEvents(f, tc.event)); got != before+1 {
				t.Fatalf("%s events: %d, want %d", tc.event, got, before+1)
			}
		})
	}

	// Activation without sending an email answers the activation token; a
	// user who had a password before deactivation becomes ACTIVE again.
	u := usrMake(t, f, "back@example.com", "Back", "Again", "ACTIVE")
	if err := f.org.SetUserStatus(&LogActor{ID: "x", Type: "User"}, u.ID, "DEPROVISIONED"); err != nil {
		t.Fatal(err)
	}
	resp, b := c.check(f.super, "POST", "/api/v1/users/"+u.ID+"/lifecycle/activate?sendEmail=false", nil)
	tok := usrDecode[map[string]string](t, b)
	if resp.StatusCode != 200 || tok["activationToken"] == "" || !strings.HasSuffix(tok["activationUrl"], "/tokens/"+tok["activationToken"]+"/verify") {
		t.Fatalf("activate: %d %s", resp.StatusCode, b)
	}
	if u.Status != "ACTIVE" {
		t.Fatalf("reactivated user is %s", u.Status)
	}
	// With the email sent (the default), the answer is empty.
	staged := usrMake(t, f, "mail@example.com", "Mail", "Me", "STAGED")
	if resp, b := c.check(f.super, "POST", "/api/v1/users/"+staged.ID+"/lifecycle/activate", nil); resp.StatusCode != 200 || string(b) != "{}" {
		t.Fatalf("activate with email: %d %s", resp.StatusCode, b)
	}
}

func TestUsersDeleteDeactivatesThenDeletes(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "del@example.com", "Del", "Ete", "ACTIVE")
	g, err := f.org.CreateGroup(nil, GroupOkta, "Doomed members", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignRole(nil, "USER", u.ID, "HELP_DESK_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := f.org.AddToken(u.ID, "tok-del"); err != nil {
		t.Fatal(err)
	}

	resp, b := c.check(f.super, "DELETE", "/api/v1/users/"+u.ID, nil)
	if resp.StatusCode != 204 || u.Status != "DEPROVISIONED" {
		t.Fatalf("first delete: %d %s status %s", resp.StatusCode, b, u.Status)
	}
	if resp, _ := f.do(f.ro, "GET", "/api/v1/users/"+u.ID, nil); resp.StatusCode != 200 {
		t.Fatalf("deactivated user is gone already: %d", resp.StatusCode)
	}
	resp, b = c.check(f.super, "DELETE", "/api/v1/users/"+u.ID, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("second delete: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/api/v1/users/" + u.ID, "/api/v1/users/del@example.com"} {
		if resp, b := c.check(f.ro, "GET", path, nil); resp.StatusCode != 404 || errorCode(b) != codeNotFound {
			t.Fatalf("deleted user %s: %d %s", path, resp.StatusCode, b)
		}
	}
	f.org.mu.RLock()
	_, member := g.members.get(u.ID)
	_, roles := f.org.roles[roleKey("USER", u.ID)]
	_, tok := f.org.tokens["tok-del"]
	f.org.mu.RUnlock()
	if member || roles || tok {
		t.Fatalf("deleted user left membership %v, roles %v, token %v", member, roles, tok)
	}
	if n := len(usrEvents(f, "user.lifecycle.deactivate")); n != 1 {
		t.Fatalf("deactivate events: %d", n)
	}
	if n := len(usrEvents(f, "user.lifecycle.delete.initiated")); n != 1 {
		t.Fatalf("delete events: %d", n)
	}
	// The login is free again.
	if _, err := f.org.CreateUser(nil, UserProfile{Login: "del@example.com", Email: "d@example.com", FirstName: "D", LastName: "E"}, "ACTIVE", time.Time{}); err != nil {
		t.Fatalf("login not freed: %v", err)
	}
}

func TestUsersUpdateProfile(t *testing.T) {
	f := newFixture(t, NoLimits)
	advance := usrClock(f)
	c := newContract(t, f)
	u := usrMake(t, f, "fay@example.com", "Fay", "F", "ACTIVE")

	at := advance(time.Minute)
	resp, b := c.check(f.super, "POST", "/api/v1/users/"+u.ID, map[string]any{"profile": map[string]any{"title": "Engineer", "department": nil}})
	got := usrDecode[map[string]any](t, b)
	prof := got["profile"].(map[string]any)
	if resp.StatusCode != 200 || prof["title"] != "Engineer" || prof["firstName"] != "Fay" || prof["department"] != nil {
		t.Fatalf("partial update: %d %s", resp.StatusCode, b)
	}
	if got["lastUpdated"] != oktaTimeString(at) {
		t.Fatalf("lastUpdated %v, want %s", got["lastUpdated"], oktaTimeString(at))
	}
	if n := len(usrEvents(f, "user.account.update_profile")); n != 1 {
		t.Fatalf("update events: %d", n)
	}

	// PUT replaces: what is not sent is gone; a new login is found by it.
	resp, b = c.check(f.super, "PUT", "/api/v1/users/"+u.ID, map[string]any{"profile": map[string]any{
		"login": "fay.f@example.com", "email": "fay.f@example.com", "firstName": "Fay", "lastName": "F"}})
	if resp.StatusCode != 200 || usrDecode[map[string]any](t, b)["profile"].(map[string]any)["title"] != nil {
		t.Fatalf("replace: %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(f.ro, "GET", "/api/v1/users/fay.f@example.com", nil); resp.StatusCode != 200 {
		t.Fatalf("new login: %d", resp.StatusCode)
	}
	if resp, _ := f.do(f.ro, "GET", "/api/v1/users/fay@example.com", nil); resp.StatusCode != 404 {
		t.Fatalf("old login: %d", resp.StatusCode)
	}

	// A deactivated user's profile is not writable.
	if err := f.org.SetUserStatus(nil, u.ID, "DEPROVISIONED"); err != nil {
		t.Fatal(err)
	}
	resp, b = c.check(f.super, "POST", "/api/v1/users/"+u.ID, map[string]any{"profile": map[string]any{"title": "Gone"}})
	if resp.StatusCode != 403 || errorCode(b) != codeUserStatusForbids {
		t.Fatalf("deprovisioned update: %d %s", resp.StatusCode, b)
	}
	if err := f.org.UpdateUserProfile(nil, u.ID, u.Profile); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("UpdateUserProfile of deprovisioned: %v", err)
	}
	if err := f.org.UpdateUserProfile(nil, "00u_nobody", u.Profile); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateUserProfile of unknown: %v", err)
	}
}

func TestUsersCreate(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	g, err := f.org.CreateGroup(nil, GroupOkta, "Newcomers", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	profile := func(login string) map[string]any {
		return map[string]any{"login": login, "email": login, "firstName": "New", "lastName": "Comer"}
	}
	for _, tc := range []struct {
		name, query string
		body        map[string]any
		status      string
	}{
		{"with password", "", map[string]any{"profile": profile("pw@example.com"), "credentials": map[string]any{"password": map[string]any{"value": "s3cret!"}}, "groupIds": []string{g.ID}}, "ACTIVE"},
		{"without password", "", map[string]any{"profile": profile("nopw@example.com")}, "PROVISIONED"},
		{"not activated", "?activate=false", map[string]any{"profile": profile("staged@example.com")}, "STAGED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(f.super, "POST", "/api/v1/users"+tc.query, tc.body)
			got := usrDecode[map[string]any](t, b)
			if resp.StatusCode != 200 || got["status"] != tc.status {
				t.Fatalf("%d %s, want status %s", resp.StatusCode, b, tc.status)
			}
		})
	}
	if n := len(usrEvents(f, "user.lifecycle.create")); n != 3 {
		t.Fatalf("create events: %d", n)
	}
	if n := len(usrEvents(f, "user.lifecycle.activate")); n != 2 {
		t.Fatalf("activate events: %d", n)
	}
	if resp, b := f.do(f.ro, "GET", "/api/v1/groups/"+g.ID+"/users", nil); resp.StatusCode != 200 || len(usrIDs(t, b)) != 1 {
		t.Fatalf("groupIds: %d %s", resp.StatusCode, b)
	}
}

func TestUsersGroupsListsTheUsersGroups(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "gus@example.com", "Gus", "G", "ACTIVE")
	var want []string
	for _, name := range []string{"One", "Two", "Three"} {
		g, err := f.org.CreateGroup(nil, GroupOkta, name, "", "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if name != "Two" {
			if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			want = append(want, g.ID)
		}
	}
	resp, b := c.check(f.ro, "GET", "/api/v1/users/"+u.ID+"/groups", nil)
	if got := usrIDs(t, b); resp.StatusCode != 200 || !slices.Equal(got, want) {
		t.Fatalf("groups: %d %v, want %v", resp.StatusCode, got, want)
	}
	if len(resp.Header.Values("Link")) != 0 {
		t.Fatalf("a plain array has no links: %v", resp.Header.Values("Link"))
	}
}

func TestUsersSetUserStatusModel(t *testing.T) {
	f := newFixture(t, NoLimits)
	actor := &LogActor{ID: "00uadmin", Type: "User"}
	for _, tc := range []struct {
		from, to string
		ok       bool
		event    string
	}{
		{"PROVISIONED", "ACTIVE", true, "user.lifecycle.activate"},
		{"ACTIVE", "LOCKED_OUT", true, "user.account.lock"},
		{"LOCKED_OUT", "ACTIVE", true, "user.account.unlock_by_admin"},
		{"ACTIVE", "PASSWORD_EXPIRED", true, "user.account.expire_password"},
		{"ACTIVE", "RECOVERY", true, "user.account.reset_password"},
		{"RECOVERY", "PROVISIONED", true, "user.lifecycle.reactivate"},
		{"DEPROVISIONED", "ACTIVE", true, "user.lifecycle.activate"},
		{"ACTIVE", "STAGED", false, ""},
		{"ACTIVE", "ACTIVE", false, ""},
		{"STAGED", "SUSPENDED", false, ""},
		{"ACTIVE", "NOT_A_STATUS", false, ""},
	} {
		u := usrMake(t, f, strings.ToLower(tc.from+"-"+tc.to+"@example.com"), "S", "U", tc.from)
		before := len(usrEvents(f, tc.event))
		err := f.org.SetUserStatus(actor, u.ID, tc.to)
		if tc.ok != (err == nil) {
			t.Fatalf("%s -> %s: %v", tc.from, tc.to, err)
		}
		if !tc.ok {
			if !errors.Is(err, ErrInvalid) || u.Status != tc.from {
				t.Fatalf("%s -> %s: %v, status %s", tc.from, tc.to, err, u.Status)
			}
			continue
		}
		if u.Status != tc.to || len(usrEvents(f, tc.event)) != before+1 {
			t.Fatalf("%s -> %s: status %s, %s events %d", tc.from, tc.to, u.Status, tc.event, len(usrEvents(f, tc.event)))
		}
		if tc.to == "ACTIVE" && u.Activated.IsZero() {
			t.Fatalf("%s -> ACTIVE without activated", tc.from)
		}
	}
	if err := f.org.SetUserStatus(actor, "00u_nobody", "ACTIVE"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := f.org.DeleteUser(actor, "00u_nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown user: %v", err)
	}
	// DeleteUser of an active user deactivates it first, as Okta's history shows.
	u := usrMake(t, f, "direct-delete@example.com", "D", "D", "ACTIVE")
	if err := f.org.DeleteUser(actor, u.ID); err != nil {
		t.Fatal(err)
	}
	evs := usrEvents(f, "user.lifecycle.deactivate", "user.lifecycle.delete.initiated")
	if n := len(evs); n < 2 || evs[n-2].EventType != "user.lifecycle.deactivate" || evs[n-1].Targets[0].ID != u.ID {
		t.Fatalf("DeleteUser history: %v", evs)
	}
}

func TestUsersDeactivationTakesAppsAndReactivationRestoresGroupApps(t *testing.T) {
	f := newFixture(t, NoLimits)
	actor := &LogActor{ID: "00uadmin", Type: "User"}
	u := usrMake(t, f, "apps@example.com", "App", "User", "ACTIVE")
	g, err := f.org.CreateGroup(nil, GroupOkta, "App group", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := f.org.CreateApp(nil, AppSpec{Label: "Direct App", SignOnMode: "SAML_2_0"})
	if err != nil {
		t.Fatal(err)
	}
	viaGroup, err := f.org.CreateApp(nil, AppSpec{Label: "Group App", SignOnMode: "SAML_2_0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignGroupToApp(nil, viaGroup.ID, g.ID, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignUserToApp(nil, direct.ID, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	has := func(a *App) bool {
		f.org.mu.RLock()
		defer f.org.mu.RUnlock()
		_, ok := a.users.get(u.ID)
		return ok
	}
	if err := f.org.SetUserStatus(actor, u.ID, "DEPROVISIONED"); err != nil {
		t.Fatal(err)
	}
	if has(direct) || has(viaGroup) {
		t.Fatal("a deactivated user keeps app assignments")
	}
	if err := f.org.SetUserStatus(actor, u.ID, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if has(direct) || !has(viaGroup) {
		t.Fatalf("after reactivation: direct %v (want false), via group %v (want true)", has(direct), has(viaGroup))
	}
}
