package oktasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// grpMake creates a group of a type.
func grpMake(t *testing.T, f *fixture, typ, name string) *Group {
	t.Helper()
	g, err := f.org.CreateGroup(nil, typ, name, name+" description", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGroupsListFilterSearchFindAndStats(t *testing.T) {
	f := newFixture(t, NoLimits)
	advance := usrClock(f)
	c := newContract(t, f)
	eng := grpMake(t, f, GroupOkta, "Engineering")
	advance(time.Second)
	ops := grpMake(t, f, GroupOkta, "Operations")
	app := grpMake(t, f, GroupApp, "AD Engineers")
	everyone := grpMake(t, f, GroupBuiltIn, "Everyone")
	cut := oktaTimeString(eng.LastUpdated)
	advance(time.Second)
	u := usrMake(t, f, "m@example.com", "M", "M", "ACTIVE")
	if _, err := f.org.AddMember(nil, eng.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignRole(nil, "GROUP", eng.ID, "HELP_DESK_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	all := []string{eng.ID, ops.ID, app.ID, everyone.ID}

	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all", "", all},
		{"filter type", `filter=type eq "OKTA_GROUP"`, []string{eng.ID, ops.ID}},
		{"filter or", `filter=type eq "APP_GROUP" or type eq "BUILT_IN"`, []string{app.ID, everyone.ID}},
		{"filter id", `filter=id eq "` + ops.ID + `"`, []string{ops.ID}},
		{"filter lastUpdated gt", `filter=lastUpdated gt "` + cut + `"`, []string{ops.ID, app.ID, everyone.ID}},
		{"filter lastMembershipUpdated gt", `filter=type eq "OKTA_GROUP" and lastMembershipUpdated gt "` + cut + `"`, []string{eng.ID, ops.ID}},
		{"filter lastMembershipUpdated le", `filter=lastMembershipUpdated le "` + cut + `"`, nil},
		{"search name sw", `search=profile.name sw "eng"`, []string{eng.ID}},
		{"search name co", `search=profile.name co "eng"`, []string{eng.ID, app.ID}},
		{"search type and created", `search=type eq "okta_group" and created gt "` + cut + `"`, []string{ops.ID}},
		{"q is a name prefix", `q=Op`, []string{ops.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(f.ro, "GET", "/api/v1/groups?"+usrQuery(tc.query), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if got := usrIDs(t, b); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	// expand=stats embeds the counts, in the list and on one group.
	for _, path := range []string{"/api/v1/groups?" + usrQuery(`expand=stats&filter=id eq "`+eng.ID+`"`), "/api/v1/groups/" + eng.ID + "?expand=stats"} {
		resp, b := c.check(f.ro, "GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		var g map[string]any
		if list, err := grpDecodeOne(b); err == nil {
			g = list
		} else {
			t.Fatal(err)
		}
		stats, _ := g["_embedded"].(map[string]any)["stats"].(map[string]any)
		if stats["usersCount"] != float64(1) || stats["appsCount"] != float64(0) || stats["hasAdminPrivilege"] != true {
			t.Fatalf("%s stats: %v", path, stats)
		}
	}
	// Without expand, no _embedded.
	_, b := c.check(f.ro, "GET", "/api/v1/groups/"+eng.ID, nil)
	if _, ok := usrDecode[map[string]any](t, b)["_embedded"]; ok {
		t.Fatalf("_embedded without expand: %s", b)
	}

	// Paging through groups.
	var got []string
	path := "/api/v1/groups?limit=3"
	for path != "" {
		resp, b := c.check(f.ro, "GET", path, nil)
		got = append(got, usrIDs(t, b)...)
		path = usrNext(t, f, resp)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("paged groups %v, want %v", got, all)
	}

	for _, tc := range []struct{ name, query, code string }{
		{"unparsable filter", `filter=type eq`, codeValidation},
		{"profile in a filter", `filter=profile.name eq "Operations"`, codeValidation},
		{"sw in a filter", `filter=type sw "OKTA"`, codeValidation},
		{"unknown search attribute", `search=owner eq "x"`, codeInvalidSearch},
		{"filter and search", `filter=type eq "OKTA_GROUP"&search=type eq "OKTA_GROUP"`, codeSearchAndFilter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(f.ro, "GET", "/api/v1/groups?"+usrQuery(tc.query), nil)
			if resp.StatusCode != 400 || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want 400 %s", resp.StatusCode, b, tc.code)
			}
		})
	}
}

func grpDecodeOne(b []byte) (map[string]any, error) {
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err == nil {
		if len(list) != 1 {
			return nil, fmt.Errorf("want one group, got %d", len(list))
		}
		return list[0], nil
	}
	var one map[string]any
	err := json.Unmarshal(b, &one)
	return one, err
}

func TestGroupsMembershipChanges(t *testing.T) {
	f := newFixture(t, NoLimits)
	advance := usrClock(f)
	c := newContract(t, f)
	g := grpMake(t, f, GroupOkta, "Team")
	appGroup := grpMake(t, f, GroupApp, "AD Team")
	everyone := grpMake(t, f, GroupBuiltIn, "Everyone")
	u := usrMake(t, f, "mem@example.com", "Mem", "Ber", "ACTIVE")
	// Okta puts every new user in Everyone.
	if _, ok := everyone.members.get(u.ID); !ok {
		t.Fatal("a new user is not in Everyone")
	}
	everyoneBefore := everyone.members.len()
	path := "/api/v1/groups/" + g.ID + "/users/" + u.ID

	at := advance(time.Minute)
	for i := range 2 {
		// Adding again is a no-op that still answers 204.
		if resp, b := c.check(f.appgr, "PUT", path, nil); resp.StatusCode != 204 {
			t.Fatalf("add %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if !g.LastMembershipUpdated.Equal(at) {
		t.Fatalf("lastMembershipUpdated %v, want %v", g.LastMembershipUpdated, at)
	}
	evs := usrEvents(f, "group.user_membership.add")
	if len(evs) != 1 || !slices.Equal(targetTypes(evs[0]), []string{"User", "UserGroup"}) {
		t.Fatalf("add events: %v", evs)
	}
	if _, b := c.check(f.ro, "GET", "/api/v1/groups/"+g.ID+"/users", nil); !slices.Equal(usrIDs(t, b), []string{u.ID}) {
		t.Fatalf("members after add: %s", b)
	}
	for i := range 2 {
		// Removing a user who is not a member is a 204 no-op too.
		if resp, b := c.check(f.super, "DELETE", path, nil); resp.StatusCode != 204 {
			t.Fatalf("remove %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if n := len(usrEvents(f, "group.user_membership.remove")); n != 1 {
		t.Fatalf("remove events: %d", n)
	}

	for _, tc := range []struct {
		name, token, method, path string
		status                    int
		code                      string
	}{
		{"no token", "", "PUT", path, 401, codeInvalidToken},
		{"read-only token", f.ro, "PUT", path, 403, codeForbidden},
		{"read-only token removing", f.ro, "DELETE", path, 403, codeForbidden},
		{"APP_GROUP", f.super, "PUT", "/api/v1/groups/" + appGroup.ID + "/users/" + u.ID, 403, codeForbidden},
		{"BUILT_IN", f.super, "DELETE", "/api/v1/groups/" + everyone.ID + "/users/" + u.ID, 403, codeForbidden},
		{"unknown group", f.super, "PUT", "/api/v1/groups/00g_nope/users/" + u.ID, 404, codeNotFound},
		{"unknown user", f.super, "PUT", "/api/v1/groups/" + g.ID + "/users/00u_nope", 404, codeNotFound},
		{"members of unknown group", f.ro, "GET", "/api/v1/groups/00g_nope/users", 404, codeNotFound},
		{"unknown group", f.ro, "GET", "/api/v1/groups/00g_nope", 404, codeNotFound},
		{"apps of unknown group", f.ro, "GET", "/api/v1/groups/00g_nope/apps", 404, codeNotFound},
		{"bad cursor", f.ro, "GET", "/api/v1/groups/" + g.ID + "/users?after=nonsense", 400, codeValidation},
		{"POST membership", f.super, "POST", path, 405, codeMethodNotAllowd},
		{"DELETE members", f.super, "DELETE", "/api/v1/groups/" + g.ID + "/users", 405, codeMethodNotAllowd},
		{"PATCH groups", f.super, "PATCH", "/api/v1/groups", 405, codeMethodNotAllowd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var b []byte
			if tc.status == 405 {
				resp, b = f.do(tc.token, tc.method, tc.path, nil)
			} else {
				resp, b = c.check(tc.token, tc.method, tc.path, nil)
			}
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
	if appGroup.members.len() != 0 || everyone.members.len() != everyoneBefore {
		t.Fatal("a refused membership change changed a group")
	}
}

func TestGroupsMembershipChangeLogsAppMemberships(t *testing.T) {
	f := newFixture(t, NoLimits)
	g := grpMake(t, f, GroupOkta, "With app")
	u := usrMake(t, f, "appmem@example.com", "App", "Mem", "ACTIVE")
	a, err := f.org.CreateApp(nil, AppSpec{Label: "Wiki", SignOnMode: "SAML_2_0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignGroupToApp(nil, a.ID, g.ID, 0, nil); err != nil {
		t.Fatal(err)
	}
	f.do(f.super, "PUT", "/api/v1/groups/"+g.ID+"/users/"+u.ID, nil)
	f.do(f.super, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+u.ID, nil)
	var types []string
	for _, e := range usrEvents(f, "group.user_membership.add", "group.user_membership.remove", "application.user_membership.add", "application.user_membership.remove") {
		types = append(types, e.EventType)
	}
	want := []string{"group.user_membership.add", "application.user_membership.add", "group.user_membership.remove", "application.user_membership.remove"}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
}

func TestGroupsMemberPagingWhileMembersChange(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	g := grpMake(t, f, GroupOkta, "Big")
	users := addUsers(t, f.org, 10)
	for _, u := range users {
		if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	resp, b := c.check(f.ro, "GET", "/api/v1/groups/"+g.ID+"/users?limit=4", nil)
	got := usrIDs(t, b)
	// Between pages: one member already listed and one not yet listed go,
	// and a new member comes.
	f.do(f.super, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+users[1].ID, nil)
	f.do(f.super, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+users[6].ID, nil)
	late := usrMake(t, f, "late@example.com", "Late", "Comer", "ACTIVE")
	f.do(f.super, "PUT", "/api/v1/groups/"+g.ID+"/users/"+late.ID, nil)
	for next := usrNext(t, f, resp); next != ""; next = usrNext(t, f, resp) {
		resp, b = c.check(f.ro, "GET", next, nil)
		got = append(got, usrIDs(t, b)...)
	}
	var want []string
	for i, u := range users {
		if i != 6 {
			want = append(want, u.ID)
		}
	}
	want = append(want, late.ID)
	if !slices.Equal(got, want) {
		t.Fatalf("paged members %v, want %v", got, want)
	}
}

func TestGroupsMembershipLag(t *testing.T) {
	f := newFixture(t, NoLimits)
	f.srv.opts.Faults.MembershipLag = 30 * time.Second
	advance := usrClock(f)
	g := grpMake(t, f, GroupOkta, "Laggy")
	old := addUsers(t, f.org, 3)
	for _, u := range old {
		if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	advance(time.Minute)
	fresh := usrMake(t, f, "fresh@example.com", "Fresh", "Member", "ACTIVE")
	f.do(f.super, "PUT", "/api/v1/groups/"+g.ID+"/users/"+fresh.ID, nil)
	f.do(f.super, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+old[1].ID, nil)
	// Removed and added back within the lag: seen throughout.
	f.do(f.super, "DELETE", "/api/v1/groups/"+g.ID+"/users/"+old[2].ID, nil)
	f.do(f.super, "PUT", "/api/v1/groups/"+g.ID+"/users/"+old[2].ID, nil)

	list := func(limit int) []string {
		var ids []string
		path := fmt.Sprintf("/api/v1/groups/%s/users?limit=%d", g.ID, limit)
		for path != "" {
			resp, b := f.do(f.ro, "GET", path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
			}
			ids = append(ids, usrIDs(t, b)...)
			path = usrNext(t, f, resp)
		}
		return ids
	}
	lagging := []string{old[0].ID, old[2].ID, old[1].ID}
	for _, limit := range []int{1, 2, 3, 1000} {
		if got := list(limit); !slices.Equal(got, lagging) {
			t.Fatalf("within the lag (limit %d): %v, want %v", limit, got, lagging)
		}
	}
	_, b := f.do(f.ro, "GET", "/api/v1/users/"+fresh.ID+"/groups", nil)
	if len(usrIDs(t, b)) != 0 {
		t.Fatalf("fresh member's groups within the lag: %s", b)
	}
	_, b = f.do(f.ro, "GET", "/api/v1/users/"+old[1].ID+"/groups", nil)
	if !slices.Equal(usrIDs(t, b), []string{g.ID}) {
		t.Fatalf("removed member's groups within the lag: %s", b)
	}

	advance(31 * time.Second)
	if got, want := list(2), []string{old[0].ID, fresh.ID, old[2].ID}; !slices.Equal(got, want) {
		t.Fatalf("after the lag: %v, want %v", got, want)
	}
}

func TestGroupsCreateReplaceDelete(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	resp, b := c.check(f.super, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"name": "Finance", "description": "Money"}})
	created := usrDecode[map[string]any](t, b)
	if resp.StatusCode != 200 || created["type"] != GroupOkta {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	id := created["id"].(string)
	resp, b = c.check(f.super, "PUT", "/api/v1/groups/"+id, map[string]any{"profile": map[string]any{"name": "Finance EMEA", "description": ""}})
	if resp.StatusCode != 200 || usrDecode[map[string]any](t, b)["profile"].(map[string]any)["name"] != "Finance EMEA" {
		t.Fatalf("replace: %d %s", resp.StatusCode, b)
	}
	if n := len(usrEvents(f, "group.profile.update")); n != 1 {
		t.Fatalf("profile update events: %d", n)
	}

	u := usrMake(t, f, "fin@example.com", "Fin", "Ance", "ACTIVE")
	f.do(f.super, "PUT", "/api/v1/groups/"+id+"/users/"+u.ID, nil)
	if _, err := f.org.AssignRole(nil, "GROUP", id, "REPORT_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	a, err := f.org.CreateApp(nil, AppSpec{Label: "Ledger", SignOnMode: "SAML_2_0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignGroupToApp(nil, a.ID, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	resp, b = c.check(f.ro, "GET", "/api/v1/groups/"+id+"/apps", nil)
	if resp.StatusCode != 200 || !slices.Equal(usrIDs(t, b), []string{a.ID}) {
		t.Fatalf("group apps: %d %s", resp.StatusCode, b)
	}

	if resp, b := c.check(f.super, "DELETE", "/api/v1/groups/"+id, nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if resp, _ := f.do(f.ro, "GET", "/api/v1/groups/"+id, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted group: %d", resp.StatusCode)
	}
	f.org.mu.RLock()
	_, inGroup := u.groups[id]
	_, roles := f.org.roles[roleKey("GROUP", id)]
	_, assigned := a.groups.get(id)
	_, appUser := a.users.get(u.ID)
	f.org.mu.RUnlock()
	if inGroup || roles || assigned || appUser {
		t.Fatalf("deleted group left membership %v, roles %v, app assignment %v, app user %v", inGroup, roles, assigned, appUser)
	}
	for _, ev := range []string{"group.lifecycle.delete", "group.application_assignment.remove"} {
		if n := len(usrEvents(f, ev)); n != 1 {
			t.Fatalf("%s events: %d", ev, n)
		}
	}

	appGroup := grpMake(t, f, GroupApp, "AD Finance")
	everyone := grpMake(t, f, GroupBuiltIn, "Everyone")
	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		status                    int
		code                      string
	}{
		{"create by read-only", f.ro, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"name": "X"}}, 403, codeForbidden},
		{"create by membership admin", f.appgr, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"name": "X"}}, 403, codeForbidden},
		{"create without name", f.super, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"description": "X"}}, 400, codeValidation},
		{"create duplicate name", f.super, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"name": "ad finance"}}, 200, ""},
		{"create malformed", f.super, "POST", "/api/v1/groups", []byte(`{"profile":`), 400, codeMalformedBody},
		{"replace APP_GROUP", f.super, "PUT", "/api/v1/groups/" + appGroup.ID, map[string]any{"profile": map[string]any{"name": "X"}}, 403, codeForbidden},
		{"replace unknown", f.super, "PUT", "/api/v1/groups/00g_nope", map[string]any{"profile": map[string]any{"name": "X"}}, 404, codeNotFound},
		{"replace without name", f.super, "PUT", "/api/v1/groups/" + grpMake(t, f, GroupOkta, "Named").ID, map[string]any{"profile": map[string]any{}}, 400, codeValidation},
		{"replace by read-only", f.ro, "PUT", "/api/v1/groups/" + appGroup.ID, map[string]any{"profile": map[string]any{"name": "X"}}, 403, codeForbidden},
		{"delete BUILT_IN", f.super, "DELETE", "/api/v1/groups/" + everyone.ID, nil, 403, codeForbidden},
		{"delete unknown", f.super, "DELETE", "/api/v1/groups/00g_nope", nil, 404, codeNotFound},
		{"delete by membership admin", f.appgr, "DELETE", "/api/v1/groups/" + appGroup.ID, nil, 403, codeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.check(tc.token, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
	// Okta group names are unique among Okta groups only (an APP_GROUP's
	// name does not count), which the 200 above shows; a second Okta group
	// of the same name is refused.
	resp, b = c.check(f.super, "POST", "/api/v1/groups", map[string]any{"profile": map[string]any{"name": "NAMED"}})
	if resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("duplicate Okta group name: %d %s", resp.StatusCode, b)
	}

	// The model methods.
	if err := f.org.UpdateGroup(nil, appGroup.ID, "X", ""); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("UpdateGroup of an APP_GROUP: %v", err)
	}
	if err := f.org.UpdateGroup(nil, "00g_nope", "X", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateGroup of unknown: %v", err)
	}
	if err := f.org.DeleteGroup(nil, everyone.ID); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("DeleteGroup of BUILT_IN: %v", err)
	}
	if err := f.org.DeleteGroup(nil, appGroup.ID); err != nil {
		t.Fatalf("DeleteGroup of an APP_GROUP: %v", err)
	}
}
