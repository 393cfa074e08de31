package access_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"

	"github.com/accessbus/accessbus/services/sync/internal/access"
)

// listGrants pages through ListGrants and returns every grant.
func (e *env) listGrants(t *testing.T, req *accessv1.ListGrantsRequest) []*accessv1.AccessGrant {
	t.Helper()
	var out []*accessv1.AccessGrant
	for page := 0; ; page++ {
		resp, err := e.client.ListGrants(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatalf("list grants %v page %d: %v", req, page, err)
		}
		if n := len(resp.Msg.GetGrants()); req.GetPageSize() > 0 && n > int(req.GetPageSize()) {
			t.Fatalf("page of %d grants, page size %d", n, req.GetPageSize())
		}
		out = append(out, resp.Msg.GetGrants()...)
		if resp.Msg.GetNextPageToken() == "" {
			return out
		}
		req = cloneReq(req)
		req.PageToken = resp.Msg.GetNextPageToken()
	}
}

func cloneReq(r *accessv1.ListGrantsRequest) *accessv1.ListGrantsRequest {
	c := &accessv1.ListGrantsRequest{ConnectorId: r.GetConnectorId(), Kind: r.GetKind(), PageSize: r.GetPageSize(), PageToken: r.GetPageToken()}
	c.Filter = r.Filter
	return c
}

func keys(gs []*accessv1.AccessGrant) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.GetGrant().GetKey())
	}
	return out
}

// TestListGrants: every filter returns exactly the grants it promises, in
// key order, across pages.
func TestListGrants(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustSync(t, connector)
	all := e.mustExport(t, connector).grants
	if got := keys(e.listGrants(t, &accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: 1000})); !slices.Equal(got, keys(all)) {
		t.Fatalf("unfiltered listing: %d grants, snapshot %d", len(got), len(all))
	}

	// Subjects for the filters: the user, group and app with the most grants.
	count := map[string]int{}
	for _, ag := range all {
		g := ag.GetGrant()
		count["u:"+g.GetPrincipal().GetId()]++
		count["g:"+g.GetGroupMembership().GetGroupId()]++
		count["a:"+g.GetAppAssignment().GetAppId()]++
	}
	best := func(prefix string, ok func(string) bool) string {
		id, n := "", 0
		for k, c := range count {
			if rest, found := strings.CutPrefix(k, prefix); found && rest != "" && c > n && ok(rest) {
				id, n = rest, c
			}
		}
		return id
	}
	anyID := func(string) bool { return true }
	isUser := func(id string) bool { return strings.HasPrefix(id, "00u") }
	user := best("u:", isUser)
	group := best("g:", func(id string) bool {
		// A group that also holds grants itself (an app assignment).
		for _, ag := range all {
			p := ag.GetGrant().GetPrincipal()
			if p.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP && p.GetId() == id {
				return true
			}
		}
		return false
	})
	app := best("a:", anyID)
	if user == "" || group == "" || app == "" {
		t.Fatalf("no user (%q), group (%q) or app (%q) to filter on", user, group, app)
	}

	isUserP := func(g *eventsv1.Grant, id string) bool {
		return g.GetPrincipal().GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_USER && g.GetPrincipal().GetId() == id
	}
	membership := eventsv1.GrantKind_GRANT_KIND_GROUP_MEMBERSHIP
	cases := []struct {
		name  string
		req   *accessv1.ListGrantsRequest
		want  func(*eventsv1.Grant) bool
		kinds int // distinct grant kinds expected at least
	}{
		{"user", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_UserId{UserId: user}},
			func(g *eventsv1.Grant) bool { return isUserP(g, user) }, 2},
		{"user memberships", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_UserId{UserId: user}, Kind: membership},
			func(g *eventsv1.Grant) bool { return isUserP(g, user) && g.GetGroupMembership() != nil }, 1},
		{"group", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_GroupId{GroupId: group}},
			func(g *eventsv1.Grant) bool {
				p := g.GetPrincipal()
				return g.GetGroupMembership().GetGroupId() == group || (p.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP && p.GetId() == group)
			}, 2},
		{"app", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_AppId{AppId: app}},
			func(g *eventsv1.Grant) bool { return g.GetAppAssignment().GetAppId() == app }, 1},
		{"standard role", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_Role{Role: "SUPER_ADMIN"}},
			func(g *eventsv1.Grant) bool { return g.GetRoleAssignment().GetRoleType() == "SUPER_ADMIN" }, 1},
		{"kind only", &accessv1.ListGrantsRequest{Kind: eventsv1.GrantKind_GRANT_KIND_ROLE_ASSIGNMENT},
			func(g *eventsv1.Grant) bool { return g.GetRoleAssignment() != nil }, 1},
		{"unknown user", &accessv1.ListGrantsRequest{Filter: &accessv1.ListGrantsRequest_UserId{UserId: "00unobody"}},
			func(*eventsv1.Grant) bool { return false }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, ag := range all {
				if tc.want(ag.GetGrant()) {
					want = append(want, ag.GetGrant().GetKey())
				}
			}
			tc.req.ConnectorId, tc.req.PageSize = connector, 40
			got := e.listGrants(t, tc.req)
			if !slices.Equal(keys(got), want) {
				t.Fatalf("got %d grants, want %d\ngot  %v\nwant %v", len(got), len(want), keys(got)[:min(5, len(got))], want[:min(5, len(want))])
			}
			kinds := map[eventsv1.GrantKind]bool{}
			for _, g := range got {
				kinds[g.GetKind()] = true
			}
			if len(kinds) < tc.kinds {
				t.Errorf("%d grants of kinds %v, want at least %d kinds", len(got), kinds, tc.kinds)
			}
		})
	}
	// A user's access includes app assignments held through groups.
	viaGroup := false
	for _, ag := range all {
		if aa := ag.GetGrant().GetAppAssignment(); aa.GetScope() == eventsv1.AppAssignment_SCOPE_GROUP {
			u := ag.GetGrant().GetPrincipal().GetId()
			got := keys(e.listGrants(t, &accessv1.ListGrantsRequest{ConnectorId: connector, Filter: &accessv1.ListGrantsRequest_UserId{UserId: u}}))
			if !slices.Contains(got, ag.GetGrant().GetKey()) {
				t.Fatalf("user %s's access lacks %s", u, ag.GetGrant().GetKey())
			}
			viaGroup = true
			break
		}
	}
	if !viaGroup {
		t.Error("the small org has no app assignment through a group")
	}
}

// TestListPaging: pages of any size add up to the whole, in order, with no
// repeat; page tokens are tied to their query.
func TestListPaging(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustSync(t, connector)
	x := e.mustExport(t, connector)
	for _, size := range []int32{97, 1000, 5000} {
		got := e.listGrants(t, &accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: size, Kind: eventsv1.GrantKind_GRANT_KIND_APP_ASSIGNMENT})
		var want []string
		for _, g := range x.grants {
			if g.GetKind() == eventsv1.GrantKind_GRANT_KIND_APP_ASSIGNMENT {
				want = append(want, g.GetGrant().GetKey())
			}
		}
		if !slices.Equal(keys(got), want) {
			t.Fatalf("page size %d: %d grants, want %d", size, len(got), len(want))
		}
	}
	// One grant a page, on a short listing (each page reads the state):
	// the app with the fewest assignees, at least two.
	perApp := map[string]int{}
	for _, g := range x.grants {
		if a := g.GetGrant().GetAppAssignment().GetAppId(); a != "" {
			perApp[a]++
		}
	}
	app := ""
	for a, n := range perApp {
		if n >= 2 && (app == "" || n < perApp[app] || (n == perApp[app] && a < app)) {
			app = a
		}
	}
	one := e.listGrants(t, &accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: 1, Filter: &accessv1.ListGrantsRequest_AppId{AppId: app}})
	var want []string
	for _, g := range x.grants {
		if g.GetGrant().GetAppAssignment().GetAppId() == app {
			want = append(want, g.GetGrant().GetKey())
		}
	}
	if !slices.Equal(keys(one), want) || len(want) < 2 {
		t.Fatalf("one a page: %v, want %v", keys(one), want)
	}
	// The default page and the maximum.
	resp, err := e.client.ListGrants(context.Background(), connect.NewRequest(&accessv1.ListGrantsRequest{ConnectorId: connector}))
	if err != nil || len(resp.Msg.GetGrants()) != access.DefaultPageSize || resp.Msg.GetNextPageToken() == "" {
		t.Fatalf("default page: %v, %d grants", err, len(resp.Msg.GetGrants()))
	}
	if len(x.grants) > access.MaxPageSize {
		resp, err := e.client.ListGrants(context.Background(), connect.NewRequest(&accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: 5000}))
		if err != nil || len(resp.Msg.GetGrants()) != access.MaxPageSize {
			t.Fatalf("page size 5000: %v, %d grants", err, len(resp.Msg.GetGrants()))
		}
	}

	// Resources: every kind, then one kind, in pages.
	var res []*accessv1.AccessResource
	req := &accessv1.ListResourcesRequest{ConnectorId: connector, PageSize: 61}
	for {
		resp, err := e.client.ListResources(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, resp.Msg.GetResources()...)
		if resp.Msg.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.Msg.GetNextPageToken()
	}
	if len(res) != len(x.resources) {
		t.Fatalf("listed %d resources, snapshot has %d", len(res), len(x.resources))
	}
	for i := range res {
		if res[i].GetKind() != x.resources[i].GetKind() || res[i].GetId() != x.resources[i].GetId() {
			t.Fatalf("resource %d: %v %s, snapshot %v %s", i, res[i].GetKind(), res[i].GetId(), x.resources[i].GetKind(), x.resources[i].GetId())
		}
	}
	users, err := e.client.ListResources(context.Background(), connect.NewRequest(&accessv1.ListResourcesRequest{
		ConnectorId: connector, Kind: eventsv1.ResourceKind_RESOURCE_KIND_APP, PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(users.Msg.GetResources()); n != e.run.Org.Summary().Apps || users.Msg.GetNextPageToken() != "" {
		t.Fatalf("%d apps listed, org has %d", n, e.run.Org.Summary().Apps)
	}
	for _, r := range users.Msg.GetResources() {
		if r.GetResource().GetApp() == nil || r.GetRevision() == 0 {
			t.Fatalf("app listing holds %v", r)
		}
	}
}

// TestListErrors: each bad request gets the code a caller can act on, with
// a message that says what is wrong.
func TestListErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustSync(t, connector)
	ctx := context.Background()
	first, err := e.client.ListGrants(ctx, connect.NewRequest(&accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: 3}))
	if err != nil {
		t.Fatal(err)
	}
	token := first.Msg.GetNextPageToken()
	resTok, err := e.client.ListResources(ctx, connect.NewRequest(&accessv1.ListResourcesRequest{ConnectorId: connector, PageSize: 3}))
	if err != nil {
		t.Fatal(err)
	}
	grants := []struct {
		name string
		req  *accessv1.ListGrantsRequest
		code connect.Code
		msg  string
	}{
		{"unknown connector", &accessv1.ListGrantsRequest{ConnectorId: "nope"}, connect.CodeNotFound, `connector "nope" has no synced state`},
		{"invalid connector id", &accessv1.ListGrantsRequest{ConnectorId: "C1"}, connect.CodeInvalidArgument, "lower case"},
		{"empty connector id", &accessv1.ListGrantsRequest{}, connect.CodeInvalidArgument, "empty"},
		{"garbage token", &accessv1.ListGrantsRequest{ConnectorId: connector, PageToken: "%%%"}, connect.CodeInvalidArgument, "not a token"},
		{"token of a resource listing", &accessv1.ListGrantsRequest{ConnectorId: connector, PageToken: resTok.Msg.GetNextPageToken()}, connect.CodeInvalidArgument, "another query"},
		{"token of another filter", &accessv1.ListGrantsRequest{ConnectorId: connector, PageToken: token,
			Filter: &accessv1.ListGrantsRequest_AppId{AppId: "0oa1"}}, connect.CodeInvalidArgument, "another query"},
		{"empty filter value", &accessv1.ListGrantsRequest{ConnectorId: connector, Filter: &accessv1.ListGrantsRequest_Role{}}, connect.CodeInvalidArgument, "role is set but empty"},
		{"unknown kind", &accessv1.ListGrantsRequest{ConnectorId: connector, Kind: 99}, connect.CodeInvalidArgument, "not a GrantKind"},
		{"negative page size", &accessv1.ListGrantsRequest{ConnectorId: connector, PageSize: -1}, connect.CodeInvalidArgument, "negative"},
	}
	for _, tc := range grants {
		_, err := e.client.ListGrants(ctx, connect.NewRequest(tc.req))
		if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v with %q", tc.name, err, tc.code, tc.msg)
		}
	}
	resources := []struct {
		name string
		req  *accessv1.ListResourcesRequest
		code connect.Code
		msg  string
	}{
		{"unknown connector", &accessv1.ListResourcesRequest{ConnectorId: "nope"}, connect.CodeNotFound, `"nope"`},
		{"token of a grant listing", &accessv1.ListResourcesRequest{ConnectorId: connector, PageToken: token}, connect.CodeInvalidArgument, "another query"},
		{"token of another kind", &accessv1.ListResourcesRequest{ConnectorId: connector, PageToken: resTok.Msg.GetNextPageToken(),
			Kind: eventsv1.ResourceKind_RESOURCE_KIND_USER}, connect.CodeInvalidArgument, "another query"},
		{"unknown kind", &accessv1.ListResourcesRequest{ConnectorId: connector, Kind: 99}, connect.CodeInvalidArgument, "not a ResourceKind"},
		{"negative page size", &accessv1.ListResourcesRequest{ConnectorId: connector, PageSize: -5}, connect.CodeInvalidArgument, "negative"},
	}
	for _, tc := range resources {
		_, err := e.client.ListResources(ctx, connect.NewRequest(tc.req))
		if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v with %q", tc.name, err, tc.code, tc.msg)
		}
	}
	if _, err := access.New(access.Deps{}); !errors.Is(err, access.ErrInvalidRequest) {
		t.Errorf("New without deps: %v", err)
	}
}

// TestListWithConnectorRecords: with Deps.Exists a known connector without
// state lists nothing (and its snapshot is empty), an unknown one is
// NotFound, and a failing lookup is Internal.
func TestListWithConnectorRecords(t *testing.T) {
	known := map[string]bool{"new": true}
	e := newEnv(t, envOpts{deps: func(d *access.Deps) {
		d.Exists = func(_ context.Context, c string) (bool, error) {
			if c == "broken" {
				return false, errors.New("connector records unavailable")
			}
			return known[c], nil
		}
	}})
	ctx := context.Background()
	resp, err := e.client.ListGrants(ctx, connect.NewRequest(&accessv1.ListGrantsRequest{ConnectorId: "new"}))
	if err != nil || len(resp.Msg.GetGrants()) != 0 || resp.Msg.GetNextPageToken() != "" {
		t.Fatalf("known connector without state: %v, %v", err, resp)
	}
	x, err := e.export(ctx, "new", 0)
	if err != nil || x.header.GetResourceCount() != 0 || x.header.GetGrantCount() != 0 {
		t.Fatalf("snapshot of a known connector without state: %v, %v", err, x)
	}
	if _, err := e.client.ListResources(ctx, connect.NewRequest(&accessv1.ListResourcesRequest{ConnectorId: "gone"})); codeOf(err) != connect.CodeNotFound ||
		!strings.Contains(err.Error(), `connector "gone" does not exist`) {
		t.Fatalf("unknown connector: %v", err)
	}
	if _, err := e.client.ListResources(ctx, connect.NewRequest(&accessv1.ListResourcesRequest{ConnectorId: "broken"})); codeOf(err) != connect.CodeInternal ||
		!strings.Contains(err.Error(), "connector records unavailable") {
		t.Fatalf("failing lookup: %v", err)
	}
	if _, err := e.export(ctx, "broken", 0); codeOf(err) != connect.CodeInternal {
		t.Fatalf("failing lookup on export: %v", err)
	}
}
