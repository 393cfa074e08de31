package oktasim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
)

// appsOrg is the fixture with users, groups of every type and apps of
// several kinds.
type appsOrg struct {
	*fixture
	users    []*User
	eng      *Group // OKTA_GROUP
	sales    *Group // OKTA_GROUP
	pushed   *Group // APP_GROUP
	everyone *Group // BUILT_IN
	saml     *App   // SAML_2_0, SCIM provisioning over a token
	bookmark *App   // SSO only
	oidc     *App   // OAuth 2.0 provisioning connection, imports
}

func newAppsOrg(t *testing.T) *appsOrg {
	t.Helper()
	f := newFixture(t, NoLimits)
	o := f.org
	ao := &appsOrg{fixture: f}
	for i := range 6 {
		login := fmt.Sprintf("person%d@example.com", i)
		u, err := o.CreateUser(nil, UserProfile{Login: login, Email: login, FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i)}, "ACTIVE", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ao.users = append(ao.users, u)
	}
	mkGroup := func(typ, name string) *Group {
		g, err := o.CreateGroup(nil, typ, name, "", "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ao.eng = mkGroup(GroupOkta, "Engineering")
	ao.sales = mkGroup(GroupOkta, "Sales")
	ao.pushed = mkGroup(GroupApp, "Pushed from HR")
	ao.everyone = mkGroup(GroupBuiltIn, "Everyone")
	for i, u := range ao.users {
		ao.member(t, ao.everyone, u)
		if i < 3 {
			ao.member(t, ao.eng, u)
		}
		if i >= 2 && i < 4 {
			ao.member(t, ao.sales, u)
		}
	}
	mkApp := func(s AppSpec) *App {
		a, err := o.CreateApp(nil, s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ao.saml = mkApp(AppSpec{Label: "Acme SAML", SignOnMode: "SAML_2_0",
		Features:   []string{"PUSH_NEW_USERS", "PUSH_PROFILE_UPDATES", "PUSH_USER_DEACTIVATION", "SCIM_PROVISIONING"},
		Connection: &AppConnection{Status: "ENABLED", AuthScheme: "TOKEN"}})
	ao.bookmark = mkApp(AppSpec{Label: "Intranet", SignOnMode: "BOOKMARK"})
	ao.oidc = mkApp(AppSpec{Label: "Portal", SignOnMode: "OPENID_CONNECT",
		Features:   []string{"IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES", "PUSH_PROFILE_UPDATES"},
		Connection: &AppConnection{Status: "ENABLED", AuthScheme: "OAUTH2"}})
	return ao
}

func (ao *appsOrg) member(t *testing.T, g *Group, u *User) {
	t.Helper()
	if _, err := ao.org.AddMember(nil, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
}

// call sends a request and fails the test unless the status is want.
func (ao *appsOrg) call(t *testing.T, token, method, path string, body any, want int) []byte {
	t.Helper()
	resp, b := ao.do(token, method, path, body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

// appUserJSON is the part of an app user the tests read.
type appUserJSON struct {
	ID          string         `json:"id"`
	Scope       string         `json:"scope"`
	Status      string         `json:"status"`
	SyncState   string         `json:"syncState"`
	LastUpdated string         `json:"lastUpdated"`
	Credentials map[string]any `json:"credentials"`
	Profile     map[string]any `json:"profile"`
	Links       map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
	Embedded map[string]json.RawMessage `json:"_embedded"`
}

// appUsers lists every app user of an app, by id.
func (ao *appsOrg) appUsers(t *testing.T, a *App) map[string]appUserJSON {
	t.Helper()
	var list []appUserJSON
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", "/api/v1/apps/"+a.ID+"/users?limit=500", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	m := map[string]appUserJSON{}
	for _, au := range list {
		m[au.ID] = au
	}
	return m
}

// scopes is the scope of each app user, by id.
func (ao *appsOrg) scopes(t *testing.T, a *App) map[string]string {
	t.Helper()
	m := map[string]string{}
	for id, au := range ao.appUsers(t, a) {
		m[id] = au.Scope
	}
	return m
}

// events are the System Log events of the given types, in order.
func appEvents(o *Org, types ...string) []*LogEvent {
	o.mu.RLock()
	defer o.mu.RUnlock()
	var out []*LogEvent
	for _, e := range o.logs {
		if slices.Contains(types, e.EventType) {
			out = append(out, e)
		}
	}
	return out
}

func targetTypes(e *LogEvent) []string {
	var ts []string
	for _, t := range e.Targets {
		ts = append(ts, t.Type)
	}
	slices.Sort(ts)
	return ts
}

func sameScopes(t *testing.T, step string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: app users %v, want %v", step, got, want)
	}
	for id, s := range want {
		if got[id] != s {
			t.Fatalf("%s: app users %v, want %v", step, got, want)
		}
	}
}

func TestAppGroupAssignmentFollowsMembership(t *testing.T) {
	ao := newAppsOrg(t)
	u := ao.users
	app := "/api/v1/apps/" + ao.saml.ID
	// u0 is assigned directly before any group.
	ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[0].ID, "scope": "USER", "profile": map[string]any{"role": "admin"}}, 200)
	// Assigning Engineering (u0, u1, u2) makes u1 and u2 GROUP users; u0 stays USER.
	b := ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.eng.ID, map[string]any{"priority": 1, "profile": map[string]any{"role": "engineer"}}, 200)
	var ag struct {
		ID       string `json:"id"`
		Priority int    `json:"priority"`
	}
	if err := json.Unmarshal(b, &ag); err != nil || ag.ID != ao.eng.ID || ag.Priority != 1 {
		t.Fatalf("group assignment %s (%v)", b, err)
	}
	sameScopes(t, "after assigning Engineering", ao.scopes(t, ao.saml),
		map[string]string{u[0].ID: ScopeUser, u[1].ID: ScopeGroup, u[2].ID: ScopeGroup})
	aus := ao.appUsers(t, ao.saml)
	if aus[u[1].ID].Profile["role"] != "engineer" || aus[u[0].ID].Profile["role"] != "admin" {
		t.Fatalf("profiles: group user %v, direct user %v", aus[u[1].ID].Profile, aus[u[0].ID].Profile)
	}
	if aus[u[1].ID].Links["group"].Href != ao.url+"/api/v1/groups/"+ao.eng.ID {
		t.Fatalf("group user links %v", aus[u[1].ID].Links)
	}
	if aus[u[1].ID].Status != "PROVISIONED" || aus[u[1].ID].SyncState != "SYNCHRONIZED" || aus[u[1].ID].Credentials["userName"] != u[1].Profile.Login {
		t.Fatalf("app user of a provisioning app: %+v", aus[u[1].ID])
	}
	// Sales (u2, u3) with a higher priority (0): u3 joins, u2's profile is Sales'.
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.sales.ID, map[string]any{"priority": 0, "profile": map[string]any{"role": "seller"}}, 200)
	sameScopes(t, "after assigning Sales", ao.scopes(t, ao.saml),
		map[string]string{u[0].ID: ScopeUser, u[1].ID: ScopeGroup, u[2].ID: ScopeGroup, u[3].ID: ScopeGroup})
	if p := ao.appUsers(t, ao.saml)[u[2].ID].Profile["role"]; p != "seller" {
		t.Fatalf("u2 in both groups has profile role %v, want the higher-priority group's", p)
	}
	// A member added to an assigned group becomes an app user (GROUP).
	ao.member(t, ao.eng, u[4])
	// Removing u2 from Engineering keeps it (Sales); removing u1 takes the app.
	if _, err := ao.org.RemoveMember(nil, ao.eng.ID, u[2].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ao.org.RemoveMember(nil, ao.eng.ID, u[1].ID); err != nil {
		t.Fatal(err)
	}
	// u0 (direct) leaves Engineering: still USER.
	if _, err := ao.org.RemoveMember(nil, ao.eng.ID, u[0].ID); err != nil {
		t.Fatal(err)
	}
	sameScopes(t, "after membership changes", ao.scopes(t, ao.saml),
		map[string]string{u[0].ID: ScopeUser, u[2].ID: ScopeGroup, u[3].ID: ScopeGroup, u[4].ID: ScopeGroup})
	// u3 assigned directly too, then unassigned: back to GROUP, not removed.
	ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[3].ID}, 200)
	if s := ao.scopes(t, ao.saml)[u[3].ID]; s != ScopeUser {
		t.Fatalf("group user assigned directly has scope %s", s)
	}
	ao.call(t, ao.appgr, "DELETE", app+"/users/"+u[3].ID, nil, 204)
	if s := ao.scopes(t, ao.saml)[u[3].ID]; s != ScopeGroup {
		t.Fatalf("unassigning a direct user who is in an assigned group left scope %q, want GROUP", s)
	}
	// A GROUP-only user cannot be unassigned directly.
	if b := ao.call(t, ao.appgr, "DELETE", app+"/users/"+u[3].ID, nil, 403); errorCode(b) != codeAppUserForbidden {
		t.Fatalf("unassign group user: %s", b)
	}
	// Unassigning Sales: u2 and u3 go; Engineering's u4 and direct u0 stay.
	ao.call(t, ao.appgr, "DELETE", app+"/groups/"+ao.sales.ID, nil, 204)
	sameScopes(t, "after unassigning Sales", ao.scopes(t, ao.saml),
		map[string]string{u[0].ID: ScopeUser, u[4].ID: ScopeGroup})
	ao.org.mu.RLock()
	_, salesHas := ao.sales.apps[ao.saml.ID]
	_, engHas := ao.eng.apps[ao.saml.ID]
	ao.org.mu.RUnlock()
	if salesHas || !engHas {
		t.Fatalf("group apps sets: sales has app %v, engineering %v", salesHas, engHas)
	}
	// The direct user unassigned with no group left loses the app.
	ao.call(t, ao.appgr, "DELETE", app+"/users/"+u[0].ID, nil, 204)
	ao.call(t, ao.ro, "GET", app+"/users/"+u[0].ID, nil, 404)
	// Unassigning a user without the app changes nothing.
	if had, err := ao.org.UnassignUserFromApp(nil, ao.saml.ID, u[0].ID); had || err != nil {
		t.Fatalf("unassign a user without the app: %v %v", had, err)
	}
	if had, err := ao.org.UnassignGroupFromApp(nil, ao.saml.ID, ao.sales.ID); had || err != nil {
		t.Fatalf("unassign a group not assigned: %v %v", had, err)
	}
}

func TestAppAssignmentEvents(t *testing.T) {
	ao := newAppsOrg(t)
	u := ao.users
	app := "/api/v1/apps/" + ao.saml.ID
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.eng.ID, nil, 200)
	ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[5].ID}, 200)
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.eng.ID, map[string]any{"priority": 5}, 200)
	ao.call(t, ao.appgr, "POST", app+"/users/"+u[5].ID, map[string]any{"profile": map[string]any{"team": "x"}}, 200)
	ao.call(t, ao.appgr, "DELETE", app+"/users/"+u[5].ID, nil, 204)
	ao.call(t, ao.appgr, "DELETE", app+"/groups/"+ao.eng.ID, nil, 204)

	adds := appEvents(ao.org, "application.user_membership.add")
	if len(adds) != 4 { // three Engineering members and u5
		t.Fatalf("%d application.user_membership.add events, want 4", len(adds))
	}
	for _, e := range appEvents(ao.org, "application.user_membership.add", "application.user_membership.remove", "application.user_membership.update") {
		if got := targetTypes(e); !slices.Equal(got, []string{"AppInstance", "AppUser", "User"}) {
			t.Fatalf("%s targets %v", e.EventType, got)
		}
		if e.Actor.AlternateID != "appgr@example.com" {
			t.Fatalf("%s actor %+v", e.EventType, e.Actor)
		}
	}
	if n := len(appEvents(ao.org, "application.user_membership.remove")); n != 4 {
		t.Fatalf("%d application.user_membership.remove events, want 4", n)
	}
	if n := len(appEvents(ao.org, "application.user_membership.update")); n != 1 {
		t.Fatalf("%d application.user_membership.update events, want 1", n)
	}
	for _, typ := range []string{"group.application_assignment.add", "group.application_assignment.update", "group.application_assignment.remove"} {
		evs := appEvents(ao.org, typ)
		if len(evs) != 1 || !slices.Equal(targetTypes(evs[0]), []string{"AppInstance", "UserGroup"}) {
			t.Fatalf("%s: %d events, targets %v", typ, len(evs), func() []string {
				if len(evs) > 0 {
					return targetTypes(evs[0])
				}
				return nil
			}())
		}
	}
	// Building state without an actor logs nothing.
	before := len(appEvents(ao.org, "group.application_assignment.add", "application.user_membership.add"))
	if _, err := ao.org.AssignGroupToApp(nil, ao.bookmark.ID, ao.everyone.ID, -1, nil); err != nil {
		t.Fatal(err)
	}
	if after := len(appEvents(ao.org, "group.application_assignment.add", "application.user_membership.add")); after != before {
		t.Fatalf("generator assignment logged %d events", after-before)
	}
}

func TestAppUserAssignmentRules(t *testing.T) {
	ao := newAppsOrg(t)
	u := ao.users
	app := "/api/v1/apps/" + ao.bookmark.ID
	// SSO-only app: ACTIVE and syncState DISABLED.
	b := ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[0].ID, "profile": map[string]any{"a": "1"}}, 200)
	var au appUserJSON
	if err := json.Unmarshal(b, &au); err != nil || au.Scope != ScopeUser || au.Status != "ACTIVE" || au.SyncState != "DISABLED" {
		t.Fatalf("assigned app user %s (%v)", b, err)
	}
	// Assigning again merges the profile and answers 200.
	b = ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[0].ID, "profile": map[string]any{"b": "2"}}, 200)
	if err := json.Unmarshal(b, &au); err != nil || au.Profile["a"] != "1" || au.Profile["b"] != "2" {
		t.Fatalf("reassigned app user %s (%v)", b, err)
	}
	// Update: a group user converted to USER with scope USER.
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.sales.ID, nil, 200)
	b = ao.call(t, ao.appgr, "POST", app+"/users/"+u[3].ID, map[string]any{"scope": "USER"}, 200)
	if err := json.Unmarshal(b, &au); err != nil || au.Scope != ScopeUser {
		t.Fatalf("converted app user %s (%v)", b, err)
	}
	// A GROUP scope cannot be set on a direct assignment.
	if b := ao.call(t, ao.appgr, "POST", app+"/users/"+u[3].ID, map[string]any{"scope": "GROUP"}, 400); errorCode(b) != codeValidation {
		t.Fatalf("scope GROUP on a direct user: %s", b)
	}
	// expand=user embeds the Okta user.
	b = ao.call(t, ao.ro, "GET", app+"/users/"+u[0].ID+"?expand=user", nil, 200)
	if err := json.Unmarshal(b, &au); err != nil || !strings.Contains(string(au.Embedded["user"]), u[0].Profile.Login) {
		t.Fatalf("expanded app user %s (%v)", b, err)
	}
	// A deactivated user cannot be assigned, and groups skip it.
	if err := ao.org.SetUserStatus(nil, u[5].ID, "DEPROVISIONED"); err != nil {
		t.Fatal(err)
	}
	if b := ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u[5].ID}, 403); errorCode(b) != codeInactiveUserForApps {
		t.Fatalf("assign deactivated user: %s", b)
	}
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.everyone.ID, nil, 200)
	if _, ok := ao.scopes(t, ao.bookmark)[u[5].ID]; ok {
		t.Fatal("a deactivated member got the app through Everyone")
	}
	// App groups and the built-in Everyone can be assigned.
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.pushed.ID, map[string]any{}, 200)
	var groups []struct {
		ID       string `json:"id"`
		Priority int    `json:"priority"`
	}
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", app+"/groups", nil, 200), &groups); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range groups {
		ids = append(ids, g.ID)
	}
	if !slices.Equal(ids, []string{ao.sales.ID, ao.everyone.ID, ao.pushed.ID}) || groups[2].Priority != 2 {
		t.Fatalf("group assignments %+v, want Sales, Everyone, the app group with next priorities", groups)
	}
	// expand=group embeds the group; q filters on its name.
	b = ao.call(t, ao.ro, "GET", app+"/groups?q=pUsh&expand=group", nil, 200)
	if !strings.Contains(string(b), `"_embedded":{"group":`) || strings.Count(string(b), `"priority"`) != 1 {
		t.Fatalf("groups q=pUsh&expand=group: %s", b)
	}
}

func TestAppsListPagingFiltersAndSearch(t *testing.T) {
	ao := newAppsOrg(t)
	for i := range 25 {
		if _, err := ao.org.CreateApp(nil, AppSpec{Label: fmt.Sprintf("Zeta %02d", i), SignOnMode: "SAML_2_0"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ao.org.SetAppStatus(nil, ao.bookmark.ID, AppInactive); err != nil {
		t.Fatal(err)
	}
	// Default page of 20 with self and next on separate Link lines.
	resp, b := ao.do(ao.ro, "GET", "/api/v1/apps", nil)
	var page []map[string]any
	if err := json.Unmarshal(b, &page); err != nil || resp.StatusCode != 200 || len(page) != 20 {
		t.Fatalf("first page: %d, %d apps (%v)", resp.StatusCode, len(page), err)
	}
	links := resp.Header.Values("Link")
	if len(links) != 2 || !strings.HasSuffix(links[0], `rel="self"`) || !strings.HasSuffix(links[1], `rel="next"`) {
		t.Fatalf("links %q", links)
	}
	next := strings.TrimSuffix(strings.TrimPrefix(links[1], "<"), `>; rel="next"`)
	nu, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	resp, b = ao.do(ao.ro, "GET", nu.RequestURI(), nil)
	if err := json.Unmarshal(b, &page); err != nil || len(page) != 8 || len(resp.Header.Values("Link")) != 1 {
		t.Fatalf("second page: %d apps, links %q (%v)", len(page), resp.Header.Values("Link"), err)
	}
	// A limit above 200 is clamped, not refused.
	if b := ao.call(t, ao.ro, "GET", "/api/v1/apps?limit=1000", nil, 200); strings.Count(string(b), `"signOnMode"`) != 28 {
		t.Fatalf("limit=1000 did not list all 28 apps")
	}
	count := func(path string) int {
		t.Helper()
		var list []map[string]any
		if err := json.Unmarshal(ao.call(t, ao.ro, "GET", path, nil, 200), &list); err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	ao.call(t, ao.appgr, "PUT", "/api/v1/apps/"+ao.oidc.ID+"/groups/"+ao.eng.ID, nil, 200)
	ao.call(t, ao.appgr, "POST", "/api/v1/apps/"+ao.saml.ID+"/users", map[string]any{"id": ao.users[1].ID}, 200)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`filter=` + url.QueryEscape(`status eq "INACTIVE"`), 1},
		{`filter=` + url.QueryEscape(`status eq "ACTIVE"`), 27},
		{`filter=` + url.QueryEscape(`name eq "bookmark"`), 1},
		{`filter=` + url.QueryEscape(`status eq "ACTIVE" and name eq "bookmark"`), 0},
		{`filter=` + url.QueryEscape(`group.id eq "`+ao.eng.ID+`"`), 1},
		{`filter=` + url.QueryEscape(`user.id eq "`+ao.users[1].ID+`"`), 2}, // direct on saml, Engineering on oidc
		{`q=zeta`, 25},
		{`q=Intra`, 1},
		{`q=oidc`, 1}, // name oidc_client
	} {
		if got := count("/api/v1/apps?limit=200&" + tc.query); got != tc.want {
			t.Errorf("%s: %d apps, want %d", tc.query, got, tc.want)
		}
	}
	// expand=user/{id} is accepted and embeds nothing (see getApp).
	b = ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.saml.ID+"?expand=user/"+ao.users[1].ID, nil, 200)
	if strings.Contains(string(b), `"_embedded"`) {
		t.Fatalf("get app expand=user: %s", b)
	}
}

func TestAppUsersPagingWhileAssignmentsChange(t *testing.T) {
	ao := newAppsOrg(t)
	users := addUsers(t, ao.org, 1200)
	for _, u := range users[:1100] {
		if _, err := ao.org.AssignUserToApp(nil, ao.saml.ID, u.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	path := "/api/v1/apps/" + ao.saml.ID + "/users"
	// Default 50; limit clamped to 500.
	if b := ao.call(t, ao.ro, "GET", path, nil, 200); strings.Count(string(b), `"scope"`) != 50 {
		t.Fatal("default page is not 50 app users")
	}
	seen := map[string]int{}
	next := path + "?limit=5000"
	for pages := 0; next != ""; pages++ {
		resp, b := ao.do(ao.ro, "GET", next, nil)
		var list []appUserJSON
		if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("page %d: %d (%v)", pages, resp.StatusCode, err)
		}
		if pages == 0 && len(list) != 500 {
			t.Fatalf("limit=5000 gave %d app users, want 500", len(list))
		}
		for _, au := range list {
			seen[au.ID]++
		}
		if pages == 0 {
			// Between pages: unassign users not yet listed, assign new ones.
			for _, u := range users[600:650] {
				if _, err := ao.org.UnassignUserFromApp(nil, ao.saml.ID, u.ID); err != nil {
					t.Fatal(err)
				}
			}
			for _, u := range users[1100:] {
				if _, err := ao.org.AssignUserToApp(nil, ao.saml.ID, u.ID, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		next = ""
		for _, l := range resp.Header.Values("Link") {
			if strings.HasSuffix(l, `rel="next"`) {
				nu, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`))
				if err != nil {
					t.Fatal(err)
				}
				next = nu.RequestURI()
			}
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	for i, u := range users {
		want := 1
		if i >= 600 && i < 650 {
			want = 0
		}
		if seen[u.ID] != want {
			t.Fatalf("user %d listed %d times, want %d", i, seen[u.ID], want)
		}
	}
	// q matches a prefix of login, names or email, case-insensitively.
	b := ao.call(t, ao.ro, "GET", path+"?limit=500&q=USER000", nil, 200)
	if n := strings.Count(string(b), `"scope"`); n != 10 {
		t.Fatalf("q=USER000 matched %d app users, want 10", n)
	}
	b = ao.call(t, ao.ro, "GET", path+"?limit=2&expand=user", nil, 200)
	if strings.Count(string(b), `"_embedded":{"user":{"id":`) != 2 {
		t.Fatalf("expand=user: %s", b)
	}
}

func TestAppLifecycle(t *testing.T) {
	ao := newAppsOrg(t)
	app := "/api/v1/apps/" + ao.saml.ID
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.eng.ID, nil, 200)
	// An active app cannot be deleted.
	if b := ao.call(t, ao.super, "DELETE", app, nil, 403); errorCode(b) != codeAppDeleteForbidden {
		t.Fatalf("delete active app: %s", b)
	}
	ao.call(t, ao.appgr, "POST", app+"/lifecycle/deactivate", nil, 200)
	ao.call(t, ao.appgr, "POST", app+"/lifecycle/deactivate", nil, 200) // idempotent
	var v struct {
		Status string                     `json:"status"`
		Links  map[string]json.RawMessage `json:"_links"`
	}
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", app, nil, 200), &v); err != nil || v.Status != AppInactive || v.Links["activate"] == nil || v.Links["deactivate"] != nil {
		t.Fatalf("deactivated app %+v (%v)", v, err)
	}
	// Assignments survive deactivation.
	if n := len(ao.scopes(t, ao.saml)); n != 3 {
		t.Fatalf("inactive app has %d app users, want 3", n)
	}
	ao.call(t, ao.appgr, "POST", app+"/lifecycle/activate", nil, 200)
	ao.call(t, ao.appgr, "POST", app+"/lifecycle/deactivate", nil, 200)
	ao.call(t, ao.appgr, "DELETE", app, nil, 204)
	ao.call(t, ao.ro, "GET", app, nil, 404)
	ao.call(t, ao.ro, "GET", app+"/users", nil, 404)
	ao.org.mu.RLock()
	_, still := ao.eng.apps[ao.saml.ID]
	ao.org.mu.RUnlock()
	if still {
		t.Fatal("deleted app is still in the group's apps")
	}
	var types []string
	for _, e := range appEvents(ao.org, "application.lifecycle.activate", "application.lifecycle.deactivate", "application.lifecycle.delete") {
		types = append(types, strings.TrimPrefix(e.EventType, "application.lifecycle."))
		if !slices.Equal(targetTypes(e), []string{"AppInstance"}) {
			t.Fatalf("%s targets %v", e.EventType, targetTypes(e))
		}
	}
	if !slices.Equal(types, []string{"deactivate", "activate", "deactivate", "delete"}) {
		t.Fatalf("lifecycle events %v", types)
	}
	// Creating with an actor logs create and activate.
	by := LogActor{ID: ao.admin.ID, Type: "User"}
	if _, err := ao.org.CreateApp(&by, AppSpec{Label: "New", SignOnMode: "BOOKMARK"}); err != nil {
		t.Fatal(err)
	}
	if n := len(appEvents(ao.org, "application.lifecycle.create")); n != 1 {
		t.Fatalf("%d create events", n)
	}
}

func TestAppConnectionAndFeatures(t *testing.T) {
	ao := newAppsOrg(t)
	var conn map[string]any
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.saml.ID+"/connections/default", nil, 200), &conn); err != nil {
		t.Fatal(err)
	}
	if conn["status"] != "ENABLED" || conn["authScheme"] != "TOKEN" || conn["profile"].(map[string]any)["authScheme"] != "TOKEN" {
		t.Fatalf("token connection %v", conn)
	}
	conn = nil
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.oidc.ID+"/connections/default", nil, 200), &conn); err != nil {
		t.Fatal(err)
	}
	if _, top := conn["authScheme"]; top || conn["profile"].(map[string]any)["authScheme"] != "OAUTH2" {
		t.Fatalf("OAuth connection %v", conn)
	}
	if b := ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.bookmark.ID+"/connections/default", nil, 404); errorCode(b) != codeNotFound {
		t.Fatalf("connection of an SSO app: %s", b)
	}
	var features []struct {
		Name         string         `json:"name"`
		Status       string         `json:"status"`
		Capabilities map[string]any `json:"capabilities"`
	}
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.saml.ID+"/features", nil, 200), &features); err != nil {
		t.Fatal(err)
	}
	if len(features) != 1 || features[0].Name != "USER_PROVISIONING" || features[0].Status != "ENABLED" {
		t.Fatalf("features of the SCIM app %+v", features)
	}
	create := features[0].Capabilities["create"].(map[string]any)["lifecycleCreate"].(map[string]any)
	password := features[0].Capabilities["update"].(map[string]any)["password"].(map[string]any)
	if create["status"] != "ENABLED" || password["status"] != "DISABLED" {
		t.Fatalf("capabilities %v", features[0].Capabilities)
	}
	if err := json.Unmarshal(ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.oidc.ID+"/features", nil, 200), &features); err != nil {
		t.Fatal(err)
	}
	if len(features) != 2 || features[1].Name != "INBOUND_PROVISIONING" {
		t.Fatalf("features of the importing app %+v", features)
	}
	ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.oidc.ID+"/features/INBOUND_PROVISIONING", nil, 200)
	if b := ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.saml.ID+"/features/INBOUND_PROVISIONING", nil, 404); errorCode(b) != codeNotFound {
		t.Fatalf("absent feature: %s", b)
	}
	if b := ao.call(t, ao.ro, "GET", "/api/v1/apps/"+ao.bookmark.ID+"/features", nil, 400); errorCode(b) != codeValidation {
		t.Fatalf("features of an SSO app: %s", b)
	}
}

func TestAppsErrorAnswers(t *testing.T) {
	ao := newAppsOrg(t)
	app := "/api/v1/apps/" + ao.saml.ID
	u := ao.users[0].ID
	ao.call(t, ao.appgr, "POST", app+"/users", map[string]any{"id": u}, 200)
	ao.call(t, ao.appgr, "PUT", app+"/groups/"+ao.sales.ID, nil, 200)
	const missingApp = "/api/v1/apps/0oa000000000000nothere"
	for _, tc := range []struct {
		name         string
		token        string
		method, path string
		body         any
		status       int
		code         string
	}{
		{"bad token", "nope", "GET", "/api/v1/apps", nil, 401, codeInvalidToken},
		{"bad token app users", "nope", "GET", app + "/users", nil, 401, codeInvalidToken},
		{"no token", "", "PUT", app + "/groups/" + ao.eng.ID, nil, 401, codeInvalidToken},

		{"read-only assigns user", ao.ro, "POST", app + "/users", map[string]any{"id": u}, 403, codeForbidden},
		{"read-only updates user", ao.ro, "POST", app + "/users/" + u, map[string]any{}, 403, codeForbidden},
		{"read-only unassigns user", ao.ro, "DELETE", app + "/users/" + u, nil, 403, codeForbidden},
		{"read-only assigns group", ao.ro, "PUT", app + "/groups/" + ao.eng.ID, nil, 403, codeForbidden},
		{"read-only unassigns group", ao.ro, "DELETE", app + "/groups/" + ao.sales.ID, nil, 403, codeForbidden},
		{"read-only deactivates", ao.ro, "POST", app + "/lifecycle/deactivate", nil, 403, codeForbidden},
		{"read-only activates", ao.ro, "POST", app + "/lifecycle/activate", nil, 403, codeForbidden},
		{"read-only deletes", ao.ro, "DELETE", app, nil, 403, codeForbidden},

		{"missing app", ao.ro, "GET", missingApp, nil, 404, codeNotFound},
		{"missing app users", ao.ro, "GET", missingApp + "/users", nil, 404, codeNotFound},
		{"missing app user", ao.ro, "GET", missingApp + "/users/" + u, nil, 404, codeNotFound},
		{"missing app groups", ao.ro, "GET", missingApp + "/groups", nil, 404, codeNotFound},
		{"missing app group", ao.ro, "GET", missingApp + "/groups/" + ao.eng.ID, nil, 404, codeNotFound},
		{"missing app connection", ao.ro, "GET", missingApp + "/connections/default", nil, 404, codeNotFound},
		{"missing app features", ao.ro, "GET", missingApp + "/features", nil, 404, codeNotFound},
		{"missing app feature", ao.ro, "GET", missingApp + "/features/USER_PROVISIONING", nil, 404, codeNotFound},
		{"activate missing app", ao.appgr, "POST", missingApp + "/lifecycle/activate", nil, 404, codeNotFound},
		{"deactivate missing app", ao.appgr, "POST", missingApp + "/lifecycle/deactivate", nil, 404, codeNotFound},
		{"delete missing app", ao.appgr, "DELETE", missingApp, nil, 404, codeNotFound},
		{"assign to missing app", ao.appgr, "POST", missingApp + "/users", map[string]any{"id": u}, 404, codeNotFound},
		{"update on missing app", ao.appgr, "POST", missingApp + "/users/" + u, map[string]any{}, 404, codeNotFound},
		{"unassign from missing app", ao.appgr, "DELETE", missingApp + "/users/" + u, nil, 404, codeNotFound},
		{"group to missing app", ao.appgr, "PUT", missingApp + "/groups/" + ao.eng.ID, nil, 404, codeNotFound},
		{"group from missing app", ao.appgr, "DELETE", missingApp + "/groups/" + ao.eng.ID, nil, 404, codeNotFound},
		{"missing user assigned", ao.appgr, "POST", app + "/users", map[string]any{"id": "00u000000000000nothere"}, 404, codeNotFound},
		{"unassigned user read", ao.ro, "GET", app + "/users/" + ao.users[5].ID, nil, 404, codeNotFound},
		{"unassigned user updated", ao.appgr, "POST", app + "/users/" + ao.users[5].ID, map[string]any{}, 404, codeNotFound},
		{"unassigned user unassigned", ao.appgr, "DELETE", app + "/users/" + ao.users[5].ID, nil, 404, codeNotFound},
		{"missing group assigned", ao.appgr, "PUT", app + "/groups/00g000000000000nothere", nil, 404, codeNotFound},
		{"unassigned group read", ao.ro, "GET", app + "/groups/" + ao.eng.ID, nil, 404, codeNotFound},
		{"unassigned group unassigned", ao.appgr, "DELETE", app + "/groups/" + ao.eng.ID, nil, 404, codeNotFound},

		{"assign malformed", ao.appgr, "POST", app + "/users", []byte(`{"id":`), 400, codeMalformedBody},
		{"assign without id", ao.appgr, "POST", app + "/users", map[string]any{"scope": "USER"}, 400, codeValidation},
		{"assign scope GROUP", ao.appgr, "POST", app + "/users", map[string]any{"id": u, "scope": "GROUP"}, 400, codeValidation},
		{"update malformed", ao.appgr, "POST", app + "/users/" + u, []byte(`[`), 400, codeMalformedBody},
		{"update bad scope", ao.appgr, "POST", app + "/users/" + u, map[string]any{"scope": "ALL"}, 400, codeValidation},
		{"group malformed", ao.appgr, "PUT", app + "/groups/" + ao.eng.ID, []byte(`{"priority":`), 400, codeMalformedBody},
		{"group negative priority", ao.appgr, "PUT", app + "/groups/" + ao.eng.ID, map[string]any{"priority": -1}, 400, codeValidation},
		{"bad filter", ao.ro, "GET", "/api/v1/apps?filter=" + url.QueryEscape(`label sw "x"`), nil, 400, codeAppInvalidSearch},
		{"bad status filter", ao.ro, "GET", "/api/v1/apps?filter=" + url.QueryEscape(`status eq "DELETED"`), nil, 400, codeAppInvalidSearch},
		{"bad limit", ao.ro, "GET", app + "/users?limit=0", nil, 400, codeValidation},
		{"bad cursor", ao.ro, "GET", app + "/groups?after=zzz", nil, 400, codeValidation},
		{"features of SSO app", ao.ro, "GET", "/api/v1/apps/" + ao.bookmark.ID + "/features", nil, 400, codeValidation},

		{"PATCH an app user", ao.super, "PATCH", app + "/users/" + u, nil, 405, codeMethodNotAllowd},
		{"PUT app users", ao.super, "PUT", app + "/users", nil, 405, codeMethodNotAllowd},
		{"GET a lifecycle", ao.super, "GET", app + "/lifecycle/activate", nil, 405, codeMethodNotAllowd},
		{"DELETE the connection", ao.super, "DELETE", app + "/connections/default", nil, 405, codeMethodNotAllowd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := ao.do(tc.token, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%s %s: %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

// TestAppsMatchOktaSpec checks every answer of the apps endpoints, and
// apps of every signOnMode, against Okta's OpenAPI spec.
func TestAppsMatchOktaSpec(t *testing.T) {
	ao := newAppsOrg(t)
	c := newContract(t, ao.fixture)
	for _, mode := range []string{"AUTO_LOGIN", "BASIC_AUTH", "BROWSER_PLUGIN", "SAML_1_1", "SECURE_PASSWORD_STORE", "WS_FEDERATION"} {
		if _, err := ao.org.CreateApp(nil, AppSpec{Label: "App " + mode, SignOnMode: mode, Status: AppInactive}); err != nil {
			t.Fatal(err)
		}
	}
	app := "/api/v1/apps/" + ao.saml.ID
	u0, u1 := ao.users[0].ID, ao.users[1].ID
	steps := []struct {
		token, method, path string
		body                any
		status              int
	}{
		{ao.appgr, "PUT", app + "/groups/" + ao.eng.ID, map[string]any{"priority": 0, "profile": map[string]any{"role": "eng"}}, 200},
		{ao.appgr, "PUT", app + "/groups/" + ao.everyone.ID, nil, 200},
		{ao.appgr, "POST", app + "/users", map[string]any{"id": u0, "scope": "USER", "profile": map[string]any{"role": "x"}}, 200},
		{ao.appgr, "POST", app + "/users/" + u1, map[string]any{"profile": map[string]any{"n": 1}}, 200},
		{ao.appgr, "POST", "/api/v1/apps/" + ao.bookmark.ID + "/users", map[string]any{"id": u0}, 200},
		{ao.ro, "GET", "/api/v1/apps?limit=200", nil, 200},
		{ao.ro, "GET", "/api/v1/apps?filter=" + url.QueryEscape(`user.id eq "`+u0+`"`) + "&expand=user/" + u0, nil, 200},
		{ao.ro, "GET", app, nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.bookmark.ID, nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.oidc.ID, nil, 200},
		{ao.ro, "GET", app + "?expand=user/" + u0, nil, 200},
		{ao.ro, "GET", app + "/users", nil, 200},
		{ao.ro, "GET", app + "/users?expand=user&limit=2", nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.bookmark.ID + "/users", nil, 200},
		{ao.ro, "GET", app + "/users/" + u0, nil, 200},
		{ao.ro, "GET", app + "/users/" + u1 + "?expand=user", nil, 200},
		{ao.ro, "GET", app + "/groups", nil, 200},
		{ao.ro, "GET", app + "/groups?expand=group", nil, 200},
		{ao.ro, "GET", app + "/groups/" + ao.eng.ID, nil, 200},
		{ao.ro, "GET", app + "/connections/default", nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.oidc.ID + "/connections/default", nil, 200},
		{ao.ro, "GET", app + "/features", nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.oidc.ID + "/features", nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.oidc.ID + "/features/INBOUND_PROVISIONING", nil, 200},
		{ao.ro, "GET", "/api/v1/apps/" + ao.bookmark.ID + "/features", nil, 400},
		{ao.ro, "GET", "/api/v1/apps/" + ao.bookmark.ID + "/connections/default", nil, 404},
		{ao.ro, "POST", app + "/users", map[string]any{"id": u0}, 403},
		{ao.appgr, "POST", app + "/users", map[string]any{}, 400},
		{ao.appgr, "DELETE", app + "/users/" + u1, nil, 403},
		{ao.appgr, "DELETE", app + "/users/" + u0, nil, 204},
		{ao.appgr, "DELETE", app + "/groups/" + ao.eng.ID, nil, 204},
		{ao.appgr, "DELETE", app, nil, 403},
		{ao.appgr, "POST", app + "/lifecycle/deactivate", nil, 200},
		{ao.appgr, "POST", app + "/lifecycle/activate", nil, 200},
		{ao.appgr, "POST", app + "/lifecycle/deactivate", nil, 200},
		{ao.appgr, "DELETE", app, nil, 204},
		{ao.ro, "GET", app, nil, 404},
		{"nope", "GET", "/api/v1/apps", nil, 401},
	}
	for _, st := range steps {
		resp, b := c.check(st.token, st.method, st.path, st.body)
		if resp.StatusCode != st.status {
			t.Fatalf("%s %s: %d, want %d: %s", st.method, st.path, resp.StatusCode, st.status, truncateBody(b))
		}
	}
}

// TestAppsWithOktaSDK reads apps, app users and group assignments with
// okta-sdk-golang v2, paging by its own next links.
func TestAppsWithOktaSDK(t *testing.T) {
	ao := newAppsOrg(t)
	users := addUsers(t, ao.org, 620)
	g, err := ao.org.CreateGroup(nil, GroupOkta, "Big", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[:520] {
		ao.member(t, g, u)
	}
	if _, err := ao.org.AssignGroupToApp(nil, ao.saml.ID, g.ID, -1, nil); err != nil {
		t.Fatal(err)
	}
	for _, u := range users[500:] {
		if _, err := ao.org.AssignUserToApp(nil, ao.saml.ID, u.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := sdkClient(t, ao.fixture, ao.ro)
	ctx := context.Background()
	appUsers, resp, err := c.Application.ListApplicationUsers(ctx, ao.saml.ID, query.NewQueryParams(query.WithLimit(500)))
	if err != nil {
		t.Fatal(err)
	}
	for pages := 1; resp.HasNextPage(); pages++ {
		var page []*okta.AppUser
		if resp, err = resp.Next(ctx, &page); err != nil {
			t.Fatal(err)
		}
		appUsers = append(appUsers, page...)
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	scopes := map[string]int{}
	for _, au := range appUsers {
		scopes[au.Scope]++
	}
	if len(appUsers) != 620 || scopes[ScopeGroup] != 500 || scopes[ScopeUser] != 120 {
		t.Fatalf("SDK listed %d app users, scopes %v; want 620: 500 GROUP, 120 USER", len(appUsers), scopes)
	}
	apps, _, err := c.Application.ListApplications(ctx, query.NewQueryParams(query.WithLimit(200)))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 3 {
		t.Fatalf("SDK listed %d apps", len(apps))
	}
	assignments, _, err := c.Application.ListApplicationGroupAssignments(ctx, ao.saml.ID, nil)
	if err != nil || len(assignments) != 1 || assignments[0].Id != g.ID {
		t.Fatalf("SDK group assignments %v (%v)", assignments, err)
	}
	au, _, err := c.Application.GetApplicationUser(ctx, ao.saml.ID, users[0].ID, nil)
	if err != nil || au.Scope != ScopeGroup || au.Credentials.UserName != users[0].Profile.Login {
		t.Fatalf("SDK app user %+v (%v)", au, err)
	}
	if _, err := c.Application.DeleteApplicationUser(ctx, ao.saml.ID, users[0].ID, nil); err == nil {
		t.Fatal("read-only token unassigned a user")
	}
	if resp, err := http.Get(ao.url + "/api/v1/apps"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp, err)
	}
}

// BenchmarkMembershipChangedManyApps measures a membership change in an
// org with many apps, most not assigned to the group: it must cost only
// the group's own apps.
func BenchmarkMembershipChangedManyApps(b *testing.B) {
	o := NewOrg("http://sim", NewClock(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), 1))
	u, _ := o.CreateUser(nil, UserProfile{Login: "u@example.com"}, "ACTIVE", time.Time{})
	g, _ := o.CreateGroup(nil, GroupOkta, "g", "", "", time.Time{})
	for i := range 5000 {
		a, err := o.CreateApp(nil, AppSpec{Label: fmt.Sprint("app ", i), SignOnMode: "SAML_2_0"})
		if err != nil {
			b.Fatal(err)
		}
		if i%1000 == 0 {
			if _, err := o.AssignGroupToApp(nil, a.ID, g.ID, -1, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			_, _ = o.AddMember(nil, g.ID, u.ID)
		} else {
			_, _ = o.RemoveMember(nil, g.ID, u.ID)
		}
	}
}
