package okta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
)

func startSim(t *testing.T, cfg oktasim.Config) *oktasim.Running {
	t.Helper()
	if cfg.Profile == "" {
		cfg.Profile = "small"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	run, err := oktasim.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = run.Close(ctx)
	})
	return run
}

func newBudget(t *testing.T, scale float64) *ratelimit.Budget {
	t.Helper()
	b, err := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: scale})
	if err != nil {
		t.Fatalf("new budget: %v", err)
	}
	return b
}

func newClient(t *testing.T, run *oktasim.Running, token string, mod func(*Config)) *Client {
	t.Helper()
	// The simulators here have no limits: a budget at time scale 1000
	// paces Workforce limits a thousand times faster.
	cfg := Config{OrgURL: run.URL, Token: telemetry.NewSecret(token), Budget: newBudget(t, 1000),
		RequestTimeout: 5 * time.Second, RetryBackoff: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func collect[T any](t *testing.T, list func(func([]T) error) error) []T {
	t.Helper()
	var out []T
	if err := list(func(p []T) error { out = append(out, p...); return nil }); err != nil {
		t.Fatalf("list: %v", err)
	}
	return out
}

func uniqueIDs[T any](t *testing.T, items []T, id func(T) string) {
	t.Helper()
	seen := map[string]bool{}
	for _, it := range items {
		k := id(it)
		if k == "" || seen[k] {
			t.Fatalf("id %q empty or repeated", k)
		}
		seen[k] = true
	}
}

// Every list pages to the end and returns exactly the simulator's objects.
func TestListsMatchTheOrg(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	ctx := context.Background()
	sum := run.Org.Summary()

	all := collect(t, func(f func([]User) error) error {
		return c.ListUsers(ctx, ListUsersOptions{IncludeDeprovisioned: true}, f)
	})
	uniqueIDs(t, all, func(u User) string { return u.ID })
	if len(all) != sum.Users {
		t.Errorf("users with deprovisioned: got %d, org has %d", len(all), sum.Users)
	}
	deprov := sum.UsersByStatus["DEPROVISIONED"]
	if deprov == 0 {
		t.Fatal("the org has no DEPROVISIONED user to test with")
	}
	got := 0
	for _, u := range all {
		if u.Status == "DEPROVISIONED" {
			got++
		}
		if u.Login == "" || u.Created.IsZero() {
			t.Fatalf("user %s lacks login or created", u.ID)
		}
	}
	if got != deprov {
		t.Errorf("deprovisioned users: got %d, want %d", got, deprov)
	}
	active := collect(t, func(f func([]User) error) error { return c.ListUsers(ctx, ListUsersOptions{}, f) })
	if len(active) != sum.Users-deprov {
		t.Errorf("default users: got %d, want %d", len(active), sum.Users-deprov)
	}
	since := collect(t, func(f func([]User) error) error {
		return c.ListUsers(ctx, ListUsersOptions{LastUpdatedAfter: time.Unix(0, 0)}, f)
	})
	if len(since) != sum.Users-deprov {
		t.Errorf("users updated since 1970 without deprovisioned: got %d, want %d", len(since), sum.Users-deprov)
	}

	groups := collect(t, func(f func([]Group) error) error {
		return c.ListGroups(ctx, ListGroupsOptions{ExpandStats: true}, f)
	})
	uniqueIDs(t, groups, func(g Group) string { return g.ID })
	if len(groups) != sum.Groups {
		t.Errorf("groups: got %d, want %d", len(groups), sum.Groups)
	}
	members := 0
	for _, g := range groups {
		if g.UsersCount == nil || g.Type == "" || g.LastMembershipUpdated.IsZero() {
			t.Fatalf("group %s lacks stats, type or lastMembershipUpdated: %+v", g.ID, g)
		}
		ms := collect(t, func(f func([]User) error) error { return c.ListGroupMembers(ctx, g.ID, f) })
		if int64(len(ms)) != *g.UsersCount {
			t.Errorf("group %s: %d members listed, usersCount %d", g.ID, len(ms), *g.UsersCount)
		}
		members += len(ms)
		ids := collect(t, func(f func([]string) error) error { return c.ListGroupMemberIDs(ctx, g.ID, f) })
		if len(ids) != len(ms) {
			t.Fatalf("group %s: %d member ids, %d members", g.ID, len(ids), len(ms))
		}
		for i := range ids {
			if ids[i] != ms[i].ID {
				t.Fatalf("group %s: member id %d is %q, member %q", g.ID, i, ids[i], ms[i].ID)
			}
		}
	}
	if members != sum.Memberships {
		t.Errorf("memberships: got %d, want %d", members, sum.Memberships)
	}
	future := collect(t, func(f func([]Group) error) error {
		return c.ListGroups(ctx, ListGroupsOptions{LastUpdatedAfter: time.Now().AddDate(10, 0, 0), LastMembershipUpdatedAfter: time.Now().AddDate(10, 0, 0)}, f)
	})
	if len(future) != 0 {
		t.Errorf("groups changed in ten years: got %d", len(future))
	}

	apps := collect(t, func(f func([]App) error) error { return c.ListApps(ctx, ListAppsOptions{IncludeInactive: true}, f) })
	uniqueIDs(t, apps, func(a App) string { return a.ID })
	if len(apps) != sum.Apps {
		t.Errorf("apps: got %d, want %d", len(apps), sum.Apps)
	}
	activeApps := collect(t, func(f func([]App) error) error { return c.ListApps(ctx, ListAppsOptions{}, f) })
	if len(activeApps) != sum.Apps-sum.InactiveApps {
		t.Errorf("active apps: got %d, want %d", len(activeApps), sum.Apps-sum.InactiveApps)
	}
	appUsers, appGroups, direct := 0, 0, 0
	for _, a := range apps {
		if a.SignOnMode == "" || a.Status == "" {
			t.Fatalf("app %s lacks signOnMode or status", a.ID)
		}
		us := collect(t, func(f func([]AppUser) error) error { return c.ListAppUsers(ctx, a.ID, f) })
		for _, u := range us {
			if u.Scope == "USER" {
				direct++
			} else if u.Scope != "GROUP" {
				t.Fatalf("app user %s/%s scope %q", a.ID, u.UserID, u.Scope)
			}
		}
		appUsers += len(us)
		appGroups += len(collect(t, func(f func([]AppGroup) error) error { return c.ListAppGroups(ctx, a.ID, f) }))
	}
	if appUsers != sum.AppUsers || appGroups != sum.AppGroups || direct != sum.DirectAppUsers {
		t.Errorf("app users/groups/direct: got %d/%d/%d, want %d/%d/%d", appUsers, appGroups, direct, sum.AppUsers, sum.AppGroups, sum.DirectAppUsers)
	}

	roles := 0
	for _, u := range all {
		rs, err := c.ListUserRoles(ctx, u.ID)
		if err != nil {
			t.Fatalf("roles of %s: %v", u.ID, err)
		}
		roles += len(rs)
	}
	for _, g := range groups {
		rs, err := c.ListGroupRoles(ctx, g.ID)
		if err != nil {
			t.Fatalf("roles of group %s: %v", g.ID, err)
		}
		roles += len(rs)
	}
	if roles != sum.RoleAssignments {
		t.Errorf("role assignments: got %d, want %d", roles, sum.RoleAssignments)
	}

	crs := collect(t, func(f func([]CustomRole) error) error { return c.ListCustomRoles(ctx, f) })
	if len(crs) != sum.CustomRoles {
		t.Errorf("custom roles: got %d, want %d", len(crs), sum.CustomRoles)
	}
	for _, cr := range crs {
		ps := collect(t, func(f func([]Permission) error) error { return c.ListCustomRolePermissions(ctx, cr.ID, f) })
		if len(ps) == 0 {
			t.Errorf("custom role %s has no permissions", cr.ID)
		}
	}
	rss := collect(t, func(f func([]ResourceSet) error) error { return c.ListResourceSets(ctx, f) })
	if len(rss) != sum.ResourceSets {
		t.Errorf("resource sets: got %d, want %d", len(rss), sum.ResourceSets)
	}
	bindingMembers := 0
	for _, rs := range rss {
		if len(collect(t, func(f func([]Resource) error) error { return c.ListResourceSetResources(ctx, rs.ID, f) })) == 0 {
			t.Errorf("resource set %s has no resources", rs.ID)
		}
		for _, b := range collect(t, func(f func([]Binding) error) error { return c.ListBindings(ctx, rs.ID, f) }) {
			bindingMembers += len(collect(t, func(f func([]BindingMember) error) error { return c.ListBindingMembers(ctx, rs.ID, b.RoleID, f) }))
		}
	}
	if bindingMembers == 0 {
		t.Error("no binding members listed")
	}
}

// Link paging and body paging follow many pages to the end.
func TestPagingFollowsEveryPage(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	ctx := context.Background()
	pages, n := 0, 0
	err := listLinkPaged(ctx, c, "test", "/api/v1/users?limit=7&search=status+pr", wireUser.user, func(us []User) error {
		pages++
		n += len(us)
		return nil
	})
	if err != nil || n != run.Org.Summary().Users || pages < 2 {
		t.Fatalf("link paging: %d users in %d pages, err %v; want %d", n, pages, err, run.Org.Summary().Users)
	}
	pages, n = 0, 0
	err = listBodyPaged(ctx, c, "test", "/api/v1/iam/assignees/users?limit=1", "value", wireBinding.binding, func(bs []Binding) error {
		pages++
		n += len(bs)
		return nil
	})
	if err != nil || pages < 2 || n < 2 {
		t.Fatalf("body paging: %d assignees in %d pages, err %v", n, pages, err)
	}
	var big Group
	if err := c.ListGroups(ctx, ListGroupsOptions{ExpandStats: true}, func(gs []Group) error {
		for _, g := range gs {
			if big.UsersCount == nil || *g.UsersCount > *big.UsersCount {
				big = g
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pages, n = 0, 0
	err = listIDsLinkPaged(ctx, c, "test", "/api/v1/groups/"+big.ID+"/users?limit=7", func(ids []string) error {
		pages++
		n += len(ids)
		return nil
	})
	if err != nil || int64(n) != *big.UsersCount || pages < 2 {
		t.Fatalf("id paging: %d ids in %d pages, err %v; want %d", n, pages, err, *big.UsersCount)
	}
	stop := errors.New("stop")
	if err := c.ListUsers(ctx, ListUsersOptions{}, func([]User) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: got %v", err)
	}
}

// OKTA_CLIENT_* variables cannot redirect or re-authenticate the client.
func TestEnvironmentCannotChangeTheClient(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	t.Setenv("OKTA_CLIENT_ORGURL", "https://evil.example.com")
	t.Setenv("OKTA_CLIENT_TOKEN", "garbage-token")
	t.Setenv("OKTA_CLIENT_AUTHORIZATIONMODE", "Bearer")
	t.Setenv("OKTA_CLIENT_CACHE_ENABLED", "true")
	t.Setenv("OKTA_CLIENT_RATE_LIMIT_MAX_RETRIES", "7")
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	me, err := c.Me(context.Background())
	if err != nil {
		t.Fatalf("me: %v", err)
	}
	if me.ID != run.Generated.Admins.SuperAdmin {
		t.Fatalf("me is %s, want the super admin", me.ID)
	}
	if c.OrgURL() != run.URL {
		t.Fatalf("org URL %s, want %s", c.OrgURL(), run.URL)
	}
}

func TestTypedErrors(t *testing.T) {
	ctx := context.Background()
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	check := func(name string, err, want error, status int, code string) {
		t.Helper()
		var ae *APIError
		if !errors.Is(err, want) || !errors.As(err, &ae) || ae.Status != status || (code != "" && ae.Code != code) {
			t.Errorf("%s: got %v, want %v (%d %s)", name, err, want, status, code)
		}
		for _, tok := range []string{run.Tokens.SuperAdmin, run.Tokens.ReadOnlyAdmin, "bad-token-0123456789"} {
			if strings.Contains(err.Error(), tok) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), tok) {
				t.Errorf("%s: error shows a token", name)
			}
		}
	}
	bad := newClient(t, run, "bad-token-0123456789", nil)
	_, err := bad.Me(ctx)
	check("bad token", err, ErrInvalidCredentials, 401, "E0000011")

	ro := newClient(t, run, run.Tokens.ReadOnlyAdmin, nil)
	me, err := ro.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ro.ListUserRoles(ctx, me.ID)
	check("read-only roles", err, ErrPermissionDenied, 403, "E0000006")
	err = ro.ListCustomRoles(ctx, func([]CustomRole) error { t.Error("a 403 gave a page"); return nil })
	check("read-only custom roles", err, ErrPermissionDenied, 403, "E0000006")

	err = ro.ListGroupMembers(ctx, "00gdoesnotexist000000", func([]User) error { return nil })
	check("unknown group", err, ErrNotFound, 404, "E0000007")
	err = ro.ListGroupMemberIDs(ctx, "00gdoesnotexist000000", func([]string) error { return nil })
	check("unknown group's member ids", err, ErrNotFound, 404, "E0000007")

	err = getJSON(ctx, ro, "bad filter", "/api/v1/users?filter=nonsense", nil)
	check("bad filter", err, ErrInvalidInput, 400, "")

	faulty := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits, Faults: oktasim.Faults{ErrorRate: 1}})
	fc := newClient(t, faulty, faulty.Tokens.SuperAdmin, func(c *Config) { c.MaxRetries = 2 })
	_, err = fc.Me(ctx)
	check("5xx storm", err, ErrTransient, 500, "")
	if n := faulty.Server.Counts().Requests[ratelimit.BucketUserByID]; n != 3 {
		t.Errorf("5xx storm: %d requests, want 1 + 2 retries", n)
	}

	// Nothing listens on a closed simulator's port: a network failure.
	gone := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	gc := newClient(t, gone, gone.Tokens.SuperAdmin, func(c *Config) { c.MaxRetries = 1 })
	_ = gone.Close(ctx)
	if _, err := gc.Me(ctx); !errors.Is(err, ErrTransient) {
		t.Errorf("closed port: got %v, want ErrTransient", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ro.Me(cctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTransient) {
		t.Errorf("canceled: got %v", err)
	}
}

// Another integration drained the bucket: the 429 that follows is absorbed
// by the budget's pause and the transport's retry.
func TestRateLimitAbsorbed(t *testing.T) {
	const scale = 60 // a 60 s window lasts 1 s
	limits := map[string]int{}
	for b := range oktasim.Workforce.PerMinute {
		limits[b] = 1000
	}
	limits[oktasim.BucketUsersList] = 3
	run := startSim(t, oktasim.Config{RateLimits: oktasim.RateLimits{Name: "tiny", PerMinute: limits, Concurrency: 75}, TimeScale: scale})
	budget := newBudget(t, scale)
	c := newClient(t, run, run.Tokens.SuperAdmin, func(c *Config) { c.Budget = budget })
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, run.URL+"/api/v1/users?limit=1", nil)
		req.Header.Set("Authorization", "SSWS "+run.Tokens.ReadOnlyAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	start := time.Now()
	n := 0
	for range 4 {
		err := c.ListUsers(context.Background(), ListUsersOptions{}, func(us []User) error { n += len(us); return nil })
		if err != nil {
			t.Fatalf("list users under a drained bucket: %v", err)
		}
	}
	if n == 0 {
		t.Fatal("no users")
	}
	if got := run.Server.Counts().Limited[oktasim.BucketUsersList]; got == 0 {
		t.Error("no 429 was seen: the test proves nothing")
	}
	if got := budget.Stats()[ratelimit.BucketUsers].RateLimited; got == 0 {
		t.Error("the budget did not learn of the 429")
	}
	t.Logf("4 lists with a limit of 3 per 1 s window: %v, 429s %d", time.Since(start), run.Server.Counts().Limited[oktasim.BucketUsersList])
}

// The three simulator tokens yield exactly FACTS.md's capability table.
func TestCapabilityTable(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	for _, tc := range []struct {
		name, token string
		want        Capabilities
	}{
		{"read-only admin", run.Tokens.ReadOnlyAdmin, Capabilities{ReviewGroupMembership: true, ReviewAppAssignment: true}},
		{"app and group admin", run.Tokens.AppGroupAdmin, Capabilities{ReviewGroupMembership: true, ProvisionGroupMembership: true, ReviewAppAssignment: true, ProvisionAppAssignment: true}},
		{"super admin", run.Tokens.SuperAdmin, Capabilities{ReviewGroupMembership: true, ProvisionGroupMembership: true, ReviewAppAssignment: true, ProvisionAppAssignment: true, ReviewRoles: true, RoleTypes: []string{"SUPER_ADMIN"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := run.Org.Summary()
			got, err := newClient(t, run, tc.token, nil).ProbeCapabilities(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID == "" || got.Login == "" {
				t.Errorf("no owner: %+v", got)
			}
			if got.ServerTime.IsZero() {
				t.Errorf("no server time: %+v", got)
			}
			got.UserID, got.Login, got.ServerTime = "", "", time.Time{}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			after := run.Org.Summary()
			after.LogEvents, before.LogEvents = 0, 0
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("probing changed the org: %+v -> %+v", before, after)
			}
		})
	}
	bad := newClient(t, run, "not-a-token", nil)
	if _, err := bad.ProbeCapabilities(context.Background()); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("bad token: got %v, want ErrInvalidCredentials", err)
	}
}

func TestConfig(t *testing.T) {
	b := newBudget(t, 1)
	tok := telemetry.NewSecret("secret-token-value-42")
	for _, tc := range []struct{ in, want string }{
		{"acme.okta.com", "https://acme.okta.com"},
		{"https://acme.okta.com/", "https://acme.okta.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://localhost:1", "http://localhost:1"},
	} {
		c, err := New(context.Background(), Config{OrgURL: tc.in, Token: tok, Budget: b})
		if err != nil || c.OrgURL() != tc.want {
			t.Errorf("%s: got %v, %v; want %s", tc.in, c, err, tc.want)
			continue
		}
		cfg := Config{OrgURL: tc.in, Token: tok, Budget: b}
		for _, s := range []string{fmt.Sprintf("%+v %#v %v %s", c, c, *c, c), fmt.Sprintf("%+v %#v", cfg, cfg)} {
			if strings.Contains(s, tok.Reveal()) {
				t.Errorf("printing shows the token: %s", s)
			}
		}
	}
	for _, cfg := range []Config{
		{OrgURL: "http://acme.okta.com", Token: tok, Budget: b},
		{OrgURL: "ftp://acme.okta.com", Token: tok, Budget: b},
		{OrgURL: "https://acme.okta.com/path", Token: tok, Budget: b},
		{OrgURL: "", Token: tok, Budget: b},
		{OrgURL: "acme.okta.com", Budget: b},
		{OrgURL: "acme.okta.com", Token: tok},
	} {
		_, err := New(context.Background(), cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: got %v, want ErrInvalidConfig", cfg.OrgURL, err)
		} else if strings.Contains(err.Error(), tok.Reveal()) {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

// A response cut in the middle of its body is a transient failure: retried,
// and with faults on every other response the listing still completes.
func TestCutBodiesAreRetried(t *testing.T) {
	ctx := context.Background()
	always := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits, Faults: oktasim.Faults{CutRate: 1}})
	ac := newClient(t, always, always.Tokens.SuperAdmin, func(c *Config) { c.MaxRetries = 2 })
	if _, err := ac.Me(ctx); !errors.Is(err, ErrTransient) {
		t.Fatalf("every body cut: got %v, want ErrTransient", err)
	}
	some := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits, Faults: oktasim.Faults{CutRate: 0.3, Seed: 3}})
	sc := newClient(t, some, some.Tokens.SuperAdmin, func(c *Config) { c.MaxRetries = 6 })
	users := collect(t, func(fn func([]User) error) error {
		return sc.ListUsers(ctx, ListUsersOptions{IncludeDeprovisioned: true}, fn)
	})
	uniqueIDs(t, users, func(u User) string { return u.ID })
	if want := some.Org.Summary().Users; len(users) != want {
		t.Fatalf("listed %d users through cut bodies, want %d", len(users), want)
	}
}

// An answer slower than RequestTimeout is a transient failure of that
// attempt, retried, and reported as transient when every attempt times out.
func TestSlowAnswersTimeOut(t *testing.T) {
	ctx := context.Background()
	slow := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits, Faults: oktasim.Faults{Latency: 300 * time.Millisecond}})
	c := newClient(t, slow, slow.Tokens.SuperAdmin, func(c *Config) { c.MaxRetries = 1; c.RequestTimeout = 50 * time.Millisecond })
	if _, err := c.Me(ctx); !errors.Is(err, ErrTransient) {
		t.Fatalf("got %v, want ErrTransient", err)
	}
}

// The role assignees are exactly the users with a role of their own or a
// role through a group.
func TestRoleAssignees(t *testing.T) {
	ctx := context.Background()
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	assignees := map[string]bool{}
	for _, id := range collect(t, func(fn func([]string) error) error { return c.ListRoleAssignees(ctx, fn) }) {
		if assignees[id] {
			t.Fatalf("assignee %s listed twice", id)
		}
		assignees[id] = true
	}
	users := collect(t, func(fn func([]User) error) error {
		return c.ListUsers(ctx, ListUsersOptions{IncludeDeprovisioned: true}, fn)
	})
	groups := collect(t, func(fn func([]Group) error) error { return c.ListGroups(ctx, ListGroupsOptions{}, fn) })
	holders := map[string]bool{}
	for _, g := range groups {
		roles, err := c.ListGroupRoles(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) == 0 {
			continue
		}
		members := collect(t, func(fn func([]User) error) error { return c.ListGroupMembers(ctx, g.ID, fn) })
		for _, m := range members {
			holders[m.ID] = true
		}
	}
	for _, u := range users {
		roles, err := c.ListUserRoles(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) > 0 {
			holders[u.ID] = true
		}
	}
	if len(holders) == 0 {
		t.Fatal("the generated org has no admins; the test proves nothing")
	}
	for id := range holders {
		if !assignees[id] {
			t.Errorf("user %s holds a role but is not listed as an assignee", id)
		}
	}
	for id := range assignees {
		if !holders[id] {
			t.Errorf("user %s is listed as an assignee but holds no role", id)
		}
	}
}
