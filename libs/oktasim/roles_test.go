package oktasim

import (
	"fmt"
	"net/http"
	"testing"
)

func TestRolesReadOnlyTokenMayNotListRoles(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	g := grpMake(t, f, GroupOkta, "Admins")
	// The acceptance script checks exactly this: a read-only admin token
	// gets 403 E0000006 on role assignments, users' and groups' alike.
	for _, token := range []string{f.ro, f.appgr} {
		for _, path := range []string{"/api/v1/users/" + f.admin.ID + "/roles", "/api/v1/groups/" + g.ID + "/roles"} {
			resp, b := c.check(token, "GET", path, nil)
			if resp.StatusCode != 403 || errorCode(b) != codeForbidden {
				t.Fatalf("%s %s: %d %s", token, path, resp.StatusCode, b)
			}
		}
	}
	resp, b := c.check(f.super, "GET", "/api/v1/users/"+f.admin.ID+"/roles", nil)
	roles := usrDecode[[]map[string]any](t, b)
	if resp.StatusCode != 200 || len(roles) != 1 || roles[0]["type"] != "SUPER_ADMIN" || roles[0]["assignmentType"] != "USER" {
		t.Fatalf("super admin's roles: %d %s", resp.StatusCode, b)
	}
	links := roles[0]["_links"].(map[string]any)
	if links["assignee"].(map[string]any)["href"] != f.url+"/api/v1/users/"+f.admin.ID {
		t.Fatalf("assignee link: %v", links)
	}
	// A group without roles has an empty array, not null.
	if _, b := c.check(f.super, "GET", "/api/v1/groups/"+g.ID+"/roles", nil); string(b) != "[]\n" {
		t.Fatalf("no roles: %q", b)
	}
}

func TestRolesAssignAndUnassign(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "admin2@example.com", "Ad", "Min", "ACTIVE")
	g := grpMake(t, f, GroupOkta, "Helpdesk")
	for _, tc := range []struct {
		kind, id, grant, revoke string
	}{
		{"users", u.ID, "user.account.privilege.grant", "user.account.privilege.revoke"},
		{"groups", g.ID, "group.privilege.grant", "group.privilege.revoke"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			base := "/api/v1/" + tc.kind + "/" + tc.id + "/roles"
			resp, b := c.check(f.super, "POST", base, map[string]string{"type": "APP_ADMIN"})
			ra := usrDecode[map[string]any](t, b)
			if resp.StatusCode != 201 || ra["type"] != "APP_ADMIN" || ra["status"] != "ACTIVE" || ra["id"] == "" {
				t.Fatalf("assign: %d %s", resp.StatusCode, b)
			}
			if n := len(usrEvents(f, tc.grant)); n != 1 {
				t.Fatalf("%s events: %d", tc.grant, n)
			}
			resp, b = c.check(f.super, "POST", base, map[string]string{"type": "APP_ADMIN"})
			if resp.StatusCode != 409 || errorCode(b) != codeDuplicateRole {
				t.Fatalf("duplicate: %d %s", resp.StatusCode, b)
			}
			id := ra["id"].(string)
			resp, b = c.check(f.super, "GET", base+"/"+id, nil)
			if resp.StatusCode != 200 || usrDecode[map[string]any](t, b)["id"] != id {
				t.Fatalf("get: %d %s", resp.StatusCode, b)
			}
			if resp, b := c.check(f.super, "DELETE", base+"/"+id, nil); resp.StatusCode != 204 {
				t.Fatalf("unassign: %d %s", resp.StatusCode, b)
			}
			if n := len(usrEvents(f, tc.revoke)); n != 1 {
				t.Fatalf("%s events: %d", tc.revoke, n)
			}
			if resp, b := c.check(f.super, "DELETE", base+"/"+id, nil); resp.StatusCode != 404 || errorCode(b) != codeNotFound {
				t.Fatalf("unassign again: %d %s", resp.StatusCode, b)
			}
		})
	}

	// The assignment gives its permissions: a group's APP_ADMIN makes its
	// members app admins.
	if _, err := f.org.AddMember(nil, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, b := c.check(f.super, "POST", "/api/v1/groups/"+g.ID+"/roles", map[string]string{"type": "GROUP_MEMBERSHIP_ADMIN"}); errorCode(b) != "" {
		t.Fatalf("assign to group: %s", b)
	}
	if err := f.org.AddToken(u.ID, "tok-gma"); err != nil {
		t.Fatal(err)
	}
	other := usrMake(t, f, "other@example.com", "O", "T", "ACTIVE")
	if resp, b := f.do("tok-gma", "PUT", "/api/v1/groups/"+g.ID+"/users/"+other.ID, nil); resp.StatusCode != 204 {
		t.Fatalf("membership admin through a group role: %d %s", resp.StatusCode, b)
	}
}

func TestRolesCustomAssignmentIsABindingMember(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "custom@example.com", "Cus", "Tom", "ACTIVE")
	cr, err := f.org.CreateCustomRole(nil, "Auditor", "Reads roles", []string{"okta.iam.read"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.org.CreateResourceSet(nil, "Everyone", "All users", []string{f.url + "/api/v1/users"})
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/users/" + u.ID + "/roles"
	resp, b := c.check(f.super, "POST", base, map[string]string{"type": "CUSTOM", "role": cr.ID, "resource-set": rs.ID})
	ra := usrDecode[map[string]any](t, b)
	if resp.StatusCode != 201 || ra["role"] != cr.ID || ra["resource-set"] != rs.ID || ra["label"] != "Auditor" {
		t.Fatalf("custom assign: %d %s", resp.StatusCode, b)
	}
	links := ra["_links"].(map[string]any)
	for _, l := range []string{"assignee", "role", "permissions", "resource-set", "member"} {
		if _, ok := links[l]; !ok {
			t.Fatalf("custom assignment lacks link %s: %v", l, links)
		}
	}
	member := func() bool {
		f.org.mu.RLock()
		defer f.org.mu.RUnlock()
		b, ok := rs.Bindings.get(cr.ID)
		return ok && findMember(b, f.url+"/api/v1/users/"+u.ID) != nil
	}
	if !member() {
		t.Fatal("custom assignment is no binding member")
	}
	// The assignee may now read roles.
	if err := f.org.AddToken(u.ID, "tok-auditor"); err != nil {
		t.Fatal(err)
	}
	if resp, b := c.check("tok-auditor", "GET", "/api/v1/users/"+f.admin.ID+"/roles", nil); resp.StatusCode != 200 {
		t.Fatalf("custom okta.iam.read reading roles: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check("tok-auditor", "POST", base, map[string]string{"type": "APP_ADMIN"}); resp.StatusCode != 403 || errorCode(b) != codeForbidden {
		t.Fatalf("okta.iam.read writing roles: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "DELETE", base+"/"+ra["id"].(string), nil); resp.StatusCode != 204 {
		t.Fatalf("custom unassign: %d %s", resp.StatusCode, b)
	}
	if member() {
		t.Fatal("unassigned custom role is still a binding member")
	}
}

func TestRolesErrorAnswers(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "err@example.com", "E", "R", "ACTIVE")
	everyone := grpMake(t, f, GroupBuiltIn, "Everyone")
	big := grpMake(t, f, GroupOkta, "Big")
	f.org.mu.Lock()
	for i := range maxRoleGroupMembers + 1 {
		// Members without users behind them: only the count matters here.
		big.members.put(fmt.Sprintf("00ufake%05d", i), u)
	}
	f.org.mu.Unlock()
	cr, err := f.org.CreateCustomRole(nil, "R", "R", []string{"okta.iam.read"})
	if err != nil {
		t.Fatal(err)
	}
	users := "/api/v1/users/" + u.ID + "/roles"
	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "", "GET", users, nil, 401, codeInvalidToken},
		{"read-only assigns", f.ro, "POST", users, map[string]string{"type": "APP_ADMIN"}, 403, codeForbidden},
		{"read-only unassigns", f.ro, "DELETE", users + "/ra1nope", nil, 403, codeForbidden},
		{"read-only reads one", f.ro, "GET", users + "/ra1nope", nil, 403, codeForbidden},
		{"unknown user", f.super, "GET", "/api/v1/users/00u_nope/roles", nil, 404, codeNotFound},
		{"unknown group", f.super, "GET", "/api/v1/groups/00g_nope/roles", nil, 404, codeNotFound},
		{"assign to unknown user", f.super, "POST", "/api/v1/users/00u_nope/roles", map[string]string{"type": "APP_ADMIN"}, 404, codeNotFound},
		{"unknown assignment", f.super, "GET", users + "/ra1nope", nil, 404, codeNotFound},
		{"unassign on unknown group", f.super, "DELETE", "/api/v1/groups/00g_nope/roles/ra1nope", nil, 404, codeNotFound},
		{"no type", f.super, "POST", users, map[string]string{}, 400, codeValidation},
		{"unknown type", f.super, "POST", users, map[string]string{"type": "KING"}, 400, codeValidation},
		{"custom without resource set", f.super, "POST", users, map[string]string{"type": "CUSTOM", "role": cr.ID}, 400, codeValidation},
		{"custom with unknown resource set", f.super, "POST", users, map[string]string{"type": "CUSTOM", "role": cr.ID, "resource-set": "iam_nope"}, 404, codeNotFound},
		{"custom with unknown role", f.super, "POST", users, map[string]string{"type": "CUSTOM", "role": "cr_nope", "resource-set": "iam_nope"}, 404, codeNotFound},
		{"malformed", f.super, "POST", users, []byte("[1,"), 400, codeMalformedBody},
		{"built-in group", f.super, "POST", "/api/v1/groups/" + everyone.ID + "/roles", map[string]string{"type": "READ_ONLY_ADMIN"}, 400, codeRoleBuiltInGroup},
		{"group over 5000 members", f.super, "POST", "/api/v1/groups/" + big.ID + "/roles", map[string]string{"type": "READ_ONLY_ADMIN"}, 400, codeRoleGroupTooBig},
		{"PUT roles", f.super, "PUT", users, nil, 405, codeMethodNotAllowd},
		{"PATCH assignment", f.super, "PATCH", users + "/ra1nope", nil, 405, codeMethodNotAllowd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var b []byte
			if tc.status == 405 {
				resp, b = f.do(tc.token, tc.method, tc.path, tc.body)
			} else {
				resp, b = c.check(tc.token, tc.method, tc.path, tc.body)
			}
			if resp.StatusCode != tc.status || errorCode(b) != tc.code {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	if set := f.org.roles[roleKey("USER", u.ID)]; set != nil && set.len() != 0 {
		t.Fatal("a refused assignment was made")
	}
}

func TestRolesIAMBasedStandardRoleShape(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	u := usrMake(t, f, "wf@example.com", "Work", "Flows", "ACTIVE")
	resp, b := c.check(f.super, "POST", "/api/v1/users/"+u.ID+"/roles", map[string]string{"type": "WORKFLOWS_ADMIN"})
	ra := usrDecode[map[string]any](t, b)
	if resp.StatusCode != 201 || ra["role"] != "WORKFLOWS_ADMIN" {
		t.Fatalf("IAM-based standard role: %d %s", resp.StatusCode, b)
	}
}
