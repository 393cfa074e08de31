package oktasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeJSON unmarshals a response body or fails the test.
func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", truncateBody(b), err)
	}
	return v
}

// bodyPage is an /api/v1/iam list page: items under one key, next in _links.
type bodyPage struct {
	items []map[string]any
	next  string
}

func readBodyPage(t *testing.T, b []byte, key string) bodyPage {
	t.Helper()
	raw := decodeJSON[map[string]json.RawMessage](t, b)
	var p bodyPage
	if err := json.Unmarshal(raw[key], &p.items); err != nil {
		t.Fatalf("page has no %q list: %s", key, truncateBody(b))
	}
	var links map[string]struct {
		Href string `json:"href"`
	}
	if err := json.Unmarshal(raw["_links"], &links); err != nil {
		t.Fatalf("page has no _links: %s", truncateBody(b))
	}
	p.next = links["next"].Href
	return p
}

// pathOf turns an absolute link of the fixture into a request path.
func (f *fixture) pathOf(t *testing.T, href string) string {
	t.Helper()
	p, ok := strings.CutPrefix(href, f.url)
	if !ok {
		t.Fatalf("link %q is not on the org %s", href, f.url)
	}
	return p
}

// eventTypes lists the System Log event types appended since index from.
func (f *fixture) eventTypes(from int) []string {
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	var out []string
	for _, ev := range f.org.logs[from:] {
		out = append(out, ev.EventType)
	}
	return out
}

func (f *fixture) logLen() int {
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	return len(f.org.logs)
}

// hasCustomAssignment reports whether a principal holds a CUSTOM role assignment.
func (f *fixture) hasCustomAssignment(principalType, id, roleID, rsID string) bool {
	f.org.mu.RLock()
	defer f.org.mu.RUnlock()
	found := false
	if set := f.org.roles[roleKey(principalType, id)]; set != nil {
		set.each(func(_ string, ra *RoleAssignment) bool {
			found = ra.Type == "CUSTOM" && ra.CustomRoleID == roleID && ra.ResourceSetID == rsID
			return !found
		})
	}
	return found
}

func TestIAMCustomRoleLifecycle(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	logFrom := f.logLen()

	resp, b := c.check(f.super, "POST", "/api/v1/iam/roles", map[string]any{
		"label": "UserCreator", "description": "Create users",
		"permissions": []string{"okta.users.create", "okta.users.read", "okta.users.read"},
	})
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	role := decodeJSON[map[string]any](t, b)
	id, _ := role["id"].(string)
	if !strings.HasPrefix(id, "cr0") || len(id) != 20 || role["label"] != "UserCreator" || role["description"] != "Create users" {
		t.Fatalf("created role %s", b)
	}
	links, _ := role["_links"].(map[string]any)
	if perms, _ := links["permissions"].(map[string]any); perms["href"] != f.url+"/api/v1/iam/roles/"+id+"/permissions" {
		t.Fatalf("permissions link: %s", b)
	}

	// By id and by label alike.
	for _, ref := range []string{id, "UserCreator"} {
		if resp, b := c.check(f.super, "GET", "/api/v1/iam/roles/"+ref, nil); resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["id"] != id {
			t.Fatalf("get %s: %d %s", ref, resp.StatusCode, b)
		}
	}

	_, b = c.check(f.super, "GET", "/api/v1/iam/roles/"+id+"/permissions", nil)
	perms := decodeJSON[struct {
		Permissions []struct {
			Label string                       `json:"label"`
			Links map[string]map[string]string `json:"_links"`
		} `json:"permissions"`
	}](t, b)
	if len(perms.Permissions) != 2 || perms.Permissions[0].Label != "okta.users.create" || perms.Permissions[1].Label != "okta.users.read" {
		t.Fatalf("permissions (duplicates dropped, order kept): %s", b)
	}
	if perms.Permissions[0].Links["role"]["href"] != f.url+"/api/v1/iam/roles/"+id {
		t.Fatalf("permission role link: %s", b)
	}

	if resp, b := c.check(f.super, "POST", "/api/v1/iam/roles/UserCreator/permissions/okta.groups.read", nil); resp.StatusCode != 204 {
		t.Fatalf("add permission: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "GET", "/api/v1/iam/roles/"+id+"/permissions/okta.groups.read", nil); resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["label"] != "okta.groups.read" {
		t.Fatalf("get permission: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "PUT", "/api/v1/iam/roles/"+id+"/permissions/okta.groups.read", map[string]any{"conditions": nil}); resp.StatusCode != 200 {
		t.Fatalf("replace permission without conditions: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/roles/"+id+"/permissions/okta.users.create", nil); resp.StatusCode != 204 {
		t.Fatalf("delete permission: %d %s", resp.StatusCode, b)
	}
	_, b = c.check(f.super, "GET", "/api/v1/iam/roles/"+id+"/permissions", nil)
	if got := strings.Count(string(b), `"label"`); got != 2 {
		t.Fatalf("after add and delete, %d permissions: %s", got, b)
	}

	resp, b = c.check(f.super, "PUT", "/api/v1/iam/roles/"+id, map[string]any{"label": "UserMaker", "description": "Makes users"})
	if resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["label"] != "UserMaker" {
		t.Fatalf("replace: %d %s", resp.StatusCode, b)
	}
	if resp, _ := c.check(f.super, "GET", "/api/v1/iam/roles/UserCreator", nil); resp.StatusCode != 404 {
		t.Fatalf("old label still found: %d", resp.StatusCode)
	}

	_, b = c.check(f.super, "GET", "/api/v1/iam/roles", nil)
	page := readBodyPage(t, b, "roles")
	if len(page.items) != 1 || page.items[0]["id"] != id || page.next != "" {
		t.Fatalf("list: %s", b)
	}

	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/roles/UserMaker", nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "GET", "/api/v1/iam/roles/"+id, nil); resp.StatusCode != 404 || errorCode(b) != codeNotFound {
		t.Fatalf("get deleted: %d %s", resp.StatusCode, b)
	}
	want := []string{"iam.role.create", "iam.role.permissions.add", "iam.role.permissions.delete", "iam.role.update", "iam.role.delete"}
	if got := f.eventTypes(logFrom); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// iamSetup is a custom role, a resource set and the directory objects the
// binding tests use.
type iamSetup struct {
	role  *CustomRole
	rs    *ResourceSet
	user  *User // not an admin yet
	group *Group
}

func newIAMSetup(t *testing.T, f *fixture) iamSetup {
	t.Helper()
	u, err := f.org.CreateUser(nil, UserProfile{Login: "helpdesk@example.com", Email: "helpdesk@example.com", FirstName: "Help", LastName: "Desk"}, "ACTIVE", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.org.CreateGroup(nil, GroupOkta, "Helpdesk", "Helpdesk staff", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := f.org.CreateCustomRole(nil, "IAMReader", "Reads IAM", []string{"okta.iam.read", "okta.users.read"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.org.CreateResourceSet(nil, "AllUsers", "Every user", []string{f.url + "/api/v1/users"})
	if err != nil {
		t.Fatal(err)
	}
	return iamSetup{role: cr, rs: rs, user: u, group: g}
}

func TestIAMCustomRoleWithIAMReadMayReadRoles(t *testing.T) {
	f := newFixture(t, NoLimits)
	s := newIAMSetup(t, f)
	if err := f.org.BindResourceSet(nil, s.rs.ID, s.role.ID, []string{f.url + "/api/v1/users/" + s.user.ID}); err != nil {
		t.Fatal(err)
	}
	if err := f.org.AddToken(s.user.ID, "tok-iam"); err != nil {
		t.Fatal(err)
	}
	c := newContract(t, f)
	for _, path := range []string{"/api/v1/iam/roles", "/api/v1/iam/resource-sets", "/api/v1/iam/assignees/users", "/api/v1/iam/resource-sets/AllUsers/bindings"} {
		if resp, b := c.check("tok-iam", "GET", path, nil); resp.StatusCode != 200 {
			t.Errorf("okta.iam.read GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	// Reading is not writing.
	if resp, b := c.check("tok-iam", "POST", "/api/v1/iam/roles", map[string]any{"label": "x", "description": "x", "permissions": []string{"okta.users.read"}}); resp.StatusCode != 403 || errorCode(b) != codeForbidden {
		t.Errorf("okta.iam.read POST role: %d %s", resp.StatusCode, b)
	}
	// Unbound, the token loses the permission at once.
	if err := f.org.UnbindResourceSet(nil, s.rs.ID, s.role.ID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := c.check("tok-iam", "GET", "/api/v1/iam/roles", nil); resp.StatusCode != 403 {
		t.Errorf("after unbinding: %d", resp.StatusCode)
	}
}

func TestIAMResourceSetsResourcesAndBindings(t *testing.T) {
	f := newFixture(t, NoLimits)
	s := newIAMSetup(t, f)
	c := newContract(t, f)
	logFrom := f.logLen()
	app, err := f.org.CreateApp(nil, AppSpec{Name: "salesforce", Label: "Salesforce", SignOnMode: "SAML_2_0", Status: "ACTIVE"})
	if err != nil {
		t.Fatal(err)
	}

	// Resources as ORNs and as REST URLs, duplicates dropped.
	groupORN := "orn:okta:directory:" + OrgID + ":groups:" + s.group.ID
	resp, b := c.check(f.super, "POST", "/api/v1/iam/resource-sets", map[string]any{
		"label": "Helpdesk", "description": "Helpdesk scope",
		"resources": []string{groupORN, f.url + "/api/v1/groups/" + s.group.ID, "https://acme.okta.com/api/v1/groups/" + s.group.ID + "/users"},
	})
	if resp.StatusCode != 200 {
		t.Fatalf("create resource set: %d %s", resp.StatusCode, b)
	}
	rsID, _ := decodeJSON[map[string]any](t, b)["id"].(string)
	if !strings.HasPrefix(rsID, "iam") {
		t.Fatalf("resource set id %q", rsID)
	}
	_, b = c.check(f.super, "GET", "/api/v1/iam/resource-sets/Helpdesk/resources", nil)
	res := readBodyPage(t, b, "resources")
	if len(res.items) != 2 || res.items[0]["orn"] != groupORN || res.items[1]["orn"] != groupORN+":contained_resources" {
		t.Fatalf("resources: %s", b)
	}
	if self := res.items[1]["_links"].(map[string]any)["self"].(map[string]any)["href"]; self != f.url+"/api/v1/groups/"+s.group.ID+"/users" {
		t.Fatalf("resource self link %v", self)
	}

	resp, b = c.check(f.super, "PATCH", "/api/v1/iam/resource-sets/"+rsID+"/resources", map[string]any{
		"additions": []string{f.url + "/api/v1/apps/" + app.ID, "orn:okta:directory:" + OrgID + ":users"},
	})
	if resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["id"] != rsID {
		t.Fatalf("add resources: %d %s", resp.StatusCode, b)
	}
	_, b = c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/resources?limit=3", nil)
	res = readBodyPage(t, b, "resources")
	if len(res.items) != 3 || res.items[2]["orn"] != "orn:okta:idp:"+OrgID+":apps:salesforce:"+app.ID || res.next == "" {
		t.Fatalf("first page of 3: %s", b)
	}
	_, b = c.check(f.super, "GET", f.pathOf(t, res.next), nil)
	last := readBodyPage(t, b, "resources")
	if len(last.items) != 1 || last.next != "" {
		t.Fatalf("second page: %s", b)
	}
	usersRes, _ := last.items[0]["id"].(string)
	if resp, b := c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/resources/"+usersRes, nil); resp.StatusCode != 200 {
		t.Fatalf("get resource: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/resource-sets/"+rsID+"/resources/"+usersRes, nil); resp.StatusCode != 204 {
		t.Fatalf("delete resource: %d %s", resp.StatusCode, b)
	}
	resp, b = c.check(f.super, "POST", "/api/v1/iam/resource-sets/"+rsID+"/resources", map[string]any{"resourceOrnOrUrl": f.url + "/api/v1/users", "conditions": map[string]any{}})
	if resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["orn"] != "orn:okta:directory:"+OrgID+":users" {
		t.Fatalf("post resource: %d %s", resp.StatusCode, b)
	}

	// A binding with a user and a group makes both admins.
	userHref := f.url + "/api/v1/users/" + s.user.ID
	groupHref := f.url + "/api/v1/groups/" + s.group.ID
	resp, b = c.check(f.super, "POST", "/api/v1/iam/resource-sets/"+rsID+"/bindings", map[string]any{"role": s.role.Label, "members": []string{userHref}})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"bindings"`) {
		t.Fatalf("create binding: %d %s", resp.StatusCode, b)
	}
	resp, b = c.check(f.super, "PATCH", "/api/v1/iam/resource-sets/Helpdesk/bindings/"+s.role.ID+"/members", map[string]any{"additions": []string{groupHref, userHref}})
	if resp.StatusCode != 200 {
		t.Fatalf("add members: %d %s", resp.StatusCode, b)
	}
	if !f.hasCustomAssignment("USER", s.user.ID, s.role.ID, rsID) || !f.hasCustomAssignment("GROUP", s.group.ID, s.role.ID, rsID) {
		t.Fatal("binding members hold no CUSTOM role assignment")
	}

	_, b = c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/bindings", nil)
	bindings := readBodyPage(t, b, "roles")
	if len(bindings.items) != 1 || bindings.items[0]["id"] != s.role.ID {
		t.Fatalf("bindings: %s", b)
	}
	if resp, b := c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.Label, nil); resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["id"] != s.role.ID {
		t.Fatalf("get binding: %d %s", resp.StatusCode, b)
	}
	_, b = c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.ID+"/members", nil)
	members := readBodyPage(t, b, "members")
	if len(members.items) != 2 {
		t.Fatalf("members (the user once, the group): %s", b)
	}
	var userMember string
	for _, m := range members.items {
		if m["_links"].(map[string]any)["self"].(map[string]any)["href"] == userHref {
			userMember, _ = m["id"].(string)
		}
	}
	if !strings.HasPrefix(userMember, "irb") {
		t.Fatalf("no member links to the user: %s", b)
	}
	if resp, b := c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.ID+"/members/"+userMember, nil); resp.StatusCode != 200 {
		t.Fatalf("get member: %d %s", resp.StatusCode, b)
	}

	// In use: neither the role nor the set may be deleted.
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/roles/"+s.role.ID, nil); resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("delete bound role: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/resource-sets/"+rsID, nil); resp.StatusCode != 400 || errorCode(b) != codeValidation {
		t.Fatalf("delete bound resource set: %d %s", resp.StatusCode, b)
	}

	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.ID+"/members/"+userMember, nil); resp.StatusCode != 204 {
		t.Fatalf("delete member: %d %s", resp.StatusCode, b)
	}
	if f.hasCustomAssignment("USER", s.user.ID, s.role.ID, rsID) {
		t.Fatal("removed member keeps its assignment")
	}
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.ID, nil); resp.StatusCode != 204 {
		t.Fatalf("delete binding: %d %s", resp.StatusCode, b)
	}
	if f.hasCustomAssignment("GROUP", s.group.ID, s.role.ID, rsID) {
		t.Fatal("deleted binding keeps the group's assignment")
	}
	if resp, _ := c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID+"/bindings/"+s.role.ID, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted binding: %d", resp.StatusCode)
	}

	resp, b = c.check(f.super, "PUT", "/api/v1/iam/resource-sets/"+rsID, map[string]any{"label": "Helpdesk2", "description": "Renamed"})
	if resp.StatusCode != 200 || decodeJSON[map[string]any](t, b)["label"] != "Helpdesk2" {
		t.Fatalf("replace resource set: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.check(f.super, "DELETE", "/api/v1/iam/resource-sets/Helpdesk2", nil); resp.StatusCode != 204 {
		t.Fatalf("delete resource set: %d %s", resp.StatusCode, b)
	}
	if resp, _ := c.check(f.super, "GET", "/api/v1/iam/resource-sets/"+rsID, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted resource set: %d", resp.StatusCode)
	}

	want := []string{
		"iam.resourceset.create", "iam.resourceset.resources.add", "iam.resourceset.resources.delete", "iam.resourceset.resources.add",
		"user.account.privilege.grant", "iam.resourceset.bindings.add",
		"group.privilege.grant", "iam.resourceset.bindings.add",
		"user.account.privilege.revoke", "iam.resourceset.bindings.delete",
		"group.privilege.revoke", "iam.resourceset.bindings.delete",
		"iam.resourceset.update", "iam.resourceset.delete",
	}
	if got := f.eventTypes(logFrom); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

func TestIAMListsPageInTheBody(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	for i := range 250 {
		if _, err := f.org.CreateCustomRole(nil, fmt.Sprintf("role-%03d", i), "r", []string{"okta.users.read"}); err != nil {
			t.Fatal(err)
		}
	}
	// limit is not a parameter of this list: Okta's 100 per page stands.
	path := "/api/v1/iam/roles?limit=7"
	var sizes []int
	seen := map[string]bool{}
	for path != "" {
		resp, b := c.check(f.super, "GET", path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Link") != "" {
			t.Fatalf("%s: %d, Link %q", path, resp.StatusCode, resp.Header.Get("Link"))
		}
		p := readBodyPage(t, b, "roles")
		for _, r := range p.items {
			id, _ := r["id"].(string)
			if seen[id] {
				t.Fatalf("role %s listed twice", id)
			}
			seen[id] = true
		}
		sizes = append(sizes, len(p.items))
		if len(sizes) == 1 {
			// Deleting what was already listed shifts nothing after the cursor.
			if err := f.org.DeleteCustomRole(nil, "role-050"); err != nil {
				t.Fatal(err)
			}
		}
		if p.next != "" {
			u, err := url.Parse(p.next)
			if err != nil || u.Query().Get("limit") != "7" || u.Query().Get("after") == "" {
				t.Fatalf("next link %q keeps the query and adds the cursor", p.next)
			}
			path = f.pathOf(t, p.next)
		} else {
			path = ""
		}
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) || len(seen) != 250 {
		t.Fatalf("pages %v, %d roles", sizes, len(seen))
	}
}

func TestIAMAssigneesAreUsersWithAnyAdminRole(t *testing.T) {
	f := newFixture(t, NoLimits)
	c := newContract(t, f)
	users := addUsers(t, f.org, 6)
	admins, err := f.org.CreateGroup(nil, GroupOkta, "Admins", "", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.org.AssignRole(nil, "GROUP", admins.ID, "HELP_DESK_ADMIN", "", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*User{users[1], users[4]} {
		if _, err := f.org.AddMember(nil, admins.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	s := newIAMSetup(t, f)
	if err := f.org.BindResourceSet(nil, s.rs.Label, s.role.Label, []string{f.url + "/api/v1/users/" + users[3].ID}); err != nil {
		t.Fatal(err)
	}
	// The fixture's three admins, then users 1, 3 (custom role) and 4, in user order.
	want := []string{f.admin.ID, users[1].ID, users[3].ID, users[4].ID}
	var got []string
	path := "/api/v1/iam/assignees/users?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		resp, b := c.check(f.super, "GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		p := readBodyPage(t, b, "value")
		for _, it := range p.items {
			id, _ := it["id"].(string)
			got = append(got, id)
			if it["orn"] != "orn:okta:directory:"+OrgID+":users:"+id {
				t.Errorf("orn %v", it["orn"])
			}
		}
		path = ""
		if p.next != "" {
			path = f.pathOf(t, p.next)
		}
	}
	if len(got) != 6 || !slices.Equal(got[2:], want) {
		t.Fatalf("assignees %v, want the 2 other fixture admins then %v", got, want)
	}
	// A limit above 100 is clamped, not refused.
	resp, b := c.check(f.super, "GET", "/api/v1/iam/assignees/users?limit=1000", nil)
	if p := readBodyPage(t, b, "value"); resp.StatusCode != 200 || len(p.items) != 6 || p.next != "" {
		t.Fatalf("limit 1000: %d %s", resp.StatusCode, b)
	}
}

func TestIAMErrorAnswers(t *testing.T) {
	f := newFixture(t, NoLimits)
	s := newIAMSetup(t, f)
	if err := f.org.BindResourceSet(nil, s.rs.ID, s.role.ID, []string{f.url + "/api/v1/users/" + s.user.ID}); err != nil {
		t.Fatal(err)
	}
	c := newContract(t, f)
	rs, role := "/api/v1/iam/resource-sets/"+s.rs.ID, "/api/v1/iam/roles/"+s.role.ID
	binding := rs + "/bindings/" + s.role.ID
	roleBody := map[string]any{"label": "L", "description": "D", "permissions": []string{"okta.users.read"}}
	userHref := f.url + "/api/v1/users/" + s.user.ID

	// Every endpoint: 401 without a valid token, 403 for the read-only and
	// the app+group admin tokens (neither may read roles).
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/iam/roles", nil},
		{"POST", "/api/v1/iam/roles", roleBody},
		{"GET", role, nil},
		{"PUT", role, map[string]any{"label": "L", "description": "D"}},
		{"DELETE", role, nil},
		{"GET", role + "/permissions", nil},
		{"GET", role + "/permissions/okta.users.read", nil},
		{"POST", role + "/permissions/okta.groups.read", nil},
		{"PUT", role + "/permissions/okta.users.read", nil},
		{"DELETE", role + "/permissions/okta.users.read", nil},
		{"GET", "/api/v1/iam/resource-sets", nil},
		{"POST", "/api/v1/iam/resource-sets", map[string]any{"label": "L", "description": "D", "resources": []string{}}},
		{"GET", rs, nil},
		{"PUT", rs, map[string]any{"label": "L", "description": "D"}},
		{"DELETE", rs, nil},
		{"GET", rs + "/resources", nil},
		{"PATCH", rs + "/resources", map[string]any{"additions": []string{f.url + "/api/v1/groups"}}},
		{"DELETE", rs + "/resources/ire00000000000000001", nil},
		{"GET", rs + "/bindings", nil},
		{"POST", rs + "/bindings", map[string]any{"role": s.role.ID, "members": []string{userHref}}},
		{"GET", binding, nil},
		{"DELETE", binding, nil},
		{"GET", binding + "/members", nil},
		{"PATCH", binding + "/members", map[string]any{"additions": []string{userHref}}},
		{"GET", binding + "/members/irb00000000000000001", nil},
		{"DELETE", binding + "/members/irb00000000000000001", nil},
		{"GET", "/api/v1/iam/assignees/users", nil},
	}
	for _, e := range endpoints {
		if resp, b := c.check("not-a-token", e.method, e.path, e.body); resp.StatusCode != 401 || errorCode(b) != codeInvalidToken {
			t.Errorf("%s %s bad token: %d %s", e.method, e.path, resp.StatusCode, b)
		}
		for _, tok := range []string{f.ro, f.appgr} {
			if resp, b := c.check(tok, e.method, e.path, e.body); resp.StatusCode != 403 || errorCode(b) != codeForbidden {
				t.Errorf("%s %s as %s: %d %s", e.method, e.path, tok, resp.StatusCode, b)
			}
		}
	}

	for _, tc := range []struct {
		name         string
		method, path string
		body         any
		status       int
		code         string
	}{
		{"unknown role", "GET", "/api/v1/iam/roles/nope", nil, 404, codeNotFound},
		{"replace unknown role", "PUT", "/api/v1/iam/roles/nope", map[string]any{"label": "L", "description": "D"}, 404, codeNotFound},
		{"delete unknown role", "DELETE", "/api/v1/iam/roles/nope", nil, 404, codeNotFound},
		{"permissions of unknown role", "GET", "/api/v1/iam/roles/nope/permissions", nil, 404, codeNotFound},
		{"permission the role lacks", "GET", role + "/permissions/okta.apps.read", nil, 404, codeNotFound},
		{"replace permission the role lacks", "PUT", role + "/permissions/okta.apps.read", nil, 404, codeNotFound},
		{"delete permission the role lacks", "DELETE", role + "/permissions/okta.apps.read", nil, 404, codeNotFound},
		{"add unknown permission", "POST", role + "/permissions/okta.everything", nil, 400, codeValidation},
		{"add to unknown role", "POST", "/api/v1/iam/roles/nope/permissions/okta.users.read", nil, 404, codeNotFound},
		{"conditions are not modelled", "PUT", role + "/permissions/okta.users.read", map[string]any{"conditions": map[string]any{"include": map[string]any{"okta:ResourceAttribute/User/Profile": []string{"city"}}}}, 400, codeValidation},
		{"role without label", "POST", "/api/v1/iam/roles", map[string]any{"description": "D", "permissions": []string{"okta.users.read"}}, 400, codeValidation},
		{"role without description", "POST", "/api/v1/iam/roles", map[string]any{"label": "L", "permissions": []string{"okta.users.read"}}, 400, codeValidation},
		{"role without permissions", "POST", "/api/v1/iam/roles", map[string]any{"label": "L", "description": "D"}, 400, codeValidation},
		{"role with unknown permission", "POST", "/api/v1/iam/roles", map[string]any{"label": "L", "description": "D", "permissions": []string{"okta.nothing"}}, 400, codeValidation},
		{"duplicate role label", "POST", "/api/v1/iam/roles", map[string]any{"label": s.role.Label, "description": "D", "permissions": []string{"okta.users.read"}}, 400, codeValidation},
		{"malformed role", "POST", "/api/v1/iam/roles", []byte(`{"label":`), 400, codeMalformedBody},
		{"replace role to blank", "PUT", role, map[string]any{"label": "", "description": "D"}, 400, codeValidation},
		{"bound role", "DELETE", role, nil, 400, codeValidation},
		{"last permission", "DELETE", "/api/v1/iam/roles/" + s.role.ID + "/permissions/okta.iam.read", nil, 204, ""},
		{"keeps one permission", "DELETE", "/api/v1/iam/roles/" + s.role.ID + "/permissions/okta.users.read", nil, 400, codeValidation},
		{"unknown resource set", "GET", "/api/v1/iam/resource-sets/nope", nil, 404, codeNotFound},
		{"replace unknown resource set", "PUT", "/api/v1/iam/resource-sets/nope", map[string]any{"label": "L", "description": "D"}, 404, codeNotFound},
		{"delete unknown resource set", "DELETE", "/api/v1/iam/resource-sets/nope", nil, 404, codeNotFound},
		{"resource set without resources", "POST", "/api/v1/iam/resource-sets", map[string]any{"label": "L", "description": "D"}, 400, codeValidation},
		{"resource of another org", "POST", "/api/v1/iam/resource-sets", map[string]any{"label": "L", "description": "D", "resources": []string{"orn:okta:directory:00oOTHER:users"}}, 400, codeValidation},
		{"resource that is no object", "POST", "/api/v1/iam/resource-sets", map[string]any{"label": "L", "description": "D", "resources": []string{f.url + "/api/v1/groups/00gmissing"}}, 400, codeValidation},
		{"resource that is no URL", "POST", "/api/v1/iam/resource-sets", map[string]any{"label": "L", "description": "D", "resources": []string{"groups"}}, 400, codeValidation},
		{"duplicate resource set label", "POST", "/api/v1/iam/resource-sets", map[string]any{"label": s.rs.Label, "description": "D", "resources": []string{}}, 400, codeValidation},
		{"malformed resource set", "POST", "/api/v1/iam/resource-sets", []byte(`[`), 400, codeMalformedBody},
		{"bound resource set", "DELETE", rs, nil, 400, codeValidation},
		{"resources of unknown set", "GET", "/api/v1/iam/resource-sets/nope/resources", nil, 404, codeNotFound},
		{"no additions", "PATCH", rs + "/resources", map[string]any{"additions": []string{}}, 400, codeValidation},
		{"unknown resource", "GET", rs + "/resources/ire00000000000000099", nil, 404, codeNotFound},
		{"delete unknown resource", "DELETE", rs + "/resources/ire00000000000000099", nil, 404, codeNotFound},
		{"post resource without ORN", "POST", rs + "/resources", map[string]any{"conditions": map[string]any{}}, 400, codeValidation},
		{"bindings of unknown set", "GET", "/api/v1/iam/resource-sets/nope/bindings", nil, 404, codeNotFound},
		{"binding without role", "POST", rs + "/bindings", map[string]any{"members": []string{userHref}}, 400, codeValidation},
		{"binding of unknown role", "POST", rs + "/bindings", map[string]any{"role": "cr0missing", "members": []string{userHref}}, 404, codeNotFound},
		{"binding without members", "POST", rs + "/bindings", map[string]any{"role": s.role.ID, "members": []string{}}, 400, codeValidation},
		{"binding member that is no principal", "POST", rs + "/bindings", map[string]any{"role": s.role.ID, "members": []string{f.url + "/api/v1/apps/0oa1"}}, 400, codeValidation},
		{"binding member that is gone", "POST", rs + "/bindings", map[string]any{"role": s.role.ID, "members": []string{f.url + "/api/v1/users/00umissing"}}, 400, codeValidation},
		{"malformed binding", "POST", rs + "/bindings", []byte(`{`), 400, codeMalformedBody},
		{"unbound role", "GET", rs + "/bindings/cr0missing", nil, 404, codeNotFound},
		{"delete unbound role", "DELETE", rs + "/bindings/cr0missing", nil, 404, codeNotFound},
		{"members of unbound role", "GET", rs + "/bindings/cr0missing/members", nil, 404, codeNotFound},
		{"add members to unbound role", "PATCH", rs + "/bindings/cr0missing/members", map[string]any{"additions": []string{userHref}}, 404, codeNotFound},
		{"unknown member", "GET", binding + "/members/irb00000000000000099", nil, 404, codeNotFound},
		{"delete unknown member", "DELETE", binding + "/members/irb00000000000000099", nil, 404, codeNotFound},
		{"bad cursor", "GET", "/api/v1/iam/roles?after=zzz", nil, 400, codeValidation},
		{"bad limit", "GET", "/api/v1/iam/assignees/users?limit=0", nil, 400, codeValidation},
	} {
		resp, b := c.check(f.super, tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.status || errorCode(b) != tc.code {
			t.Errorf("%s: %s %s -> %d %s, want %d %s", tc.name, tc.method, tc.path, resp.StatusCode, b, tc.status, tc.code)
		}
	}

	// Methods a path does not have get Okta's 405 (checked raw: the spec
	// does not list them).
	for _, m := range []struct{ method, path string }{
		{"PATCH", "/api/v1/iam/roles"},
		{"POST", role},
		{"POST", role + "/permissions"},
		{"PATCH", "/api/v1/iam/resource-sets"},
		{"POST", rs},
		{"PUT", rs + "/bindings"},
		{"PUT", binding},
		{"POST", binding + "/members"},
		{"PUT", binding + "/members/irb1"},
		{"POST", "/api/v1/iam/assignees/users"},
	} {
		if resp, b := f.do(f.super, m.method, m.path, nil); resp.StatusCode != http.StatusMethodNotAllowed || errorCode(b) != codeMethodNotAllowd {
			t.Errorf("%s %s: %d %s", m.method, m.path, resp.StatusCode, b)
		}
	}
}

// A member whose user is deleted is no longer listed, and a binding made
// through the role assignment model shows in the bindings.
func TestIAMBindingsFollowRoleAssignments(t *testing.T) {
	f := newFixture(t, NoLimits)
	s := newIAMSetup(t, f)
	f.org.mu.Lock()
	ra, err := f.org.assignRole(nil, "GROUP", s.group.ID, "CUSTOM", s.role.ID, s.rs.ID)
	if err == nil {
		f.org.syncBindingMember(ra, true)
	}
	f.org.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	_, b := f.do(f.super, "GET", "/api/v1/iam/resource-sets/"+s.rs.ID+"/bindings/"+s.role.ID+"/members", nil)
	if p := readBodyPage(t, b, "members"); len(p.items) != 1 || !strings.HasSuffix(p.items[0]["_links"].(map[string]any)["self"].(map[string]any)["href"].(string), "/api/v1/groups/"+s.group.ID) {
		t.Fatalf("assignment made elsewhere is not a binding member: %s", b)
	}
	f.org.mu.Lock()
	f.org.syncBindingMember(ra, false)
	f.org.mu.Unlock()
	if resp, _ := f.do(f.super, "GET", "/api/v1/iam/resource-sets/"+s.rs.ID+"/bindings/"+s.role.ID, nil); resp.StatusCode != 404 {
		t.Fatalf("binding without members: %d", resp.StatusCode)
	}

	if err := f.org.BindResourceSet(nil, s.rs.ID, s.role.ID, []string{f.url + "/api/v1/users/" + s.user.ID}); err != nil {
		t.Fatal(err)
	}
	f.org.mu.Lock()
	f.org.users.del(s.user.ID) // as a user deletion would
	f.org.mu.Unlock()
	_, b = f.do(f.super, "GET", "/api/v1/iam/resource-sets/"+s.rs.ID+"/bindings/"+s.role.ID+"/members", nil)
	if p := readBodyPage(t, b, "members"); len(p.items) != 0 {
		t.Fatalf("member of a deleted user still listed: %s", b)
	}
}
