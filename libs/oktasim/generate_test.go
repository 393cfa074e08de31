package oktasim

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// generated builds an org of profile from seed, served nowhere.
func generated(t testing.TB, profile string, seed uint64) (*Org, *Generated) {
	t.Helper()
	org := NewOrg("http://sim.test", NewClock(DefaultStart(), 1))
	gen, err := Generate(org, profile, seed)
	if err != nil {
		t.Fatal(err)
	}
	return org, gen
}

// renderAll is every object of the org as the API renders it, in order.
func renderAll(o *Org) []byte {
	o.mu.RLock()
	defer o.mu.RUnlock()
	var b bytes.Buffer
	o.users.each(func(_ string, u *User) bool { b.Write(u.raw); return true })
	o.groups.each(func(_ string, g *Group) bool {
		b.Write(g.raw)
		g.members.each(func(id string, _ *User) bool { b.WriteString(id); return true })
		return true
	})
	o.apps.each(func(_ string, a *App) bool {
		b.Write(a.raw)
		a.users.each(func(_ string, au *AppUser) bool { b.Write(au.raw); return true })
		a.groups.each(func(_ string, ag *AppGroup) bool { b.Write(ag.raw); return true })
		return true
	})
	var keys []string
	for k := range o.roles {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		o.roles[k].each(func(_ string, ra *RoleAssignment) bool { b.Write(render(o.roleAssignmentView(ra))); return true })
	}
	o.customRoles.each(func(_ string, cr *CustomRole) bool {
		b.WriteString(cr.ID + cr.Label + strings.Join(cr.Permissions, ","))
		return true
	})
	return b.Bytes()
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, ga := generated(t, "small", 7)
	b, gb := generated(t, "small", 7)
	if ga.Tokens != gb.Tokens {
		t.Fatalf("tokens differ: %+v %+v", ga.Tokens, gb.Tokens)
	}
	ra, rb := renderAll(a), renderAll(b)
	if !bytes.Equal(ra, rb) {
		i := 0
		for i < min(len(ra), len(rb)) && ra[i] == rb[i] {
			i++
		}
		t.Fatalf("same seed, different orgs; first difference at byte %d:\n%s\n%s", i, ra[max(0, i-200):min(len(ra), i+200)], rb[max(0, i-200):min(len(rb), i+200)])
	}
	c, gc := generated(t, "small", 8)
	if bytes.Equal(ra, renderAll(c)) {
		t.Fatal("seeds 7 and 8 made the same org")
	}
	if gc.Tokens == ga.Tokens {
		t.Fatal("seeds 7 and 8 made the same tokens")
	}
	for _, tok := range []string{ga.Tokens.ReadOnlyAdmin, ga.Tokens.AppGroupAdmin, ga.Tokens.SuperAdmin} {
		if len(tok) != 42 || !strings.HasPrefix(tok, "00") {
			t.Errorf("token %q is not shaped like Okta's", tok)
		}
	}
}

func TestGenerateSmallShape(t *testing.T) {
	org, gen := generated(t, "small", 7)
	s := gen.Summary
	start := DefaultStart()
	if s.Users != 200 || s.Groups != 30 || s.Apps != 15 {
		t.Fatalf("sizes %d users, %d groups, %d apps; want 200, 30, 15", s.Users, s.Groups, s.Apps)
	}
	for _, st := range []string{"ACTIVE", "SUSPENDED", "DEPROVISIONED"} {
		if s.UsersByStatus[st] == 0 {
			t.Errorf("no %s user: %v", st, s.UsersByStatus)
		}
	}
	if s.UsersByStatus["STAGED"]+s.UsersByStatus["PROVISIONED"] == 0 {
		t.Errorf("no STAGED or PROVISIONED user: %v", s.UsersByStatus)
	}
	for _, typ := range []string{GroupOkta, GroupApp, GroupBuiltIn} {
		if s.GroupsByType[typ] == 0 {
			t.Errorf("no %s group: %v", typ, s.GroupsByType)
		}
	}
	if s.InactiveApps == 0 || s.ProvisionedApps == 0 {
		t.Errorf("inactive apps %d, provisioned apps %d; want some of each", s.InactiveApps, s.ProvisionedApps)
	}
	if len(s.AppsByMode) < 3 {
		t.Errorf("sign-on modes %v; want a mix", s.AppsByMode)
	}
	if s.AppUsers < 300 || s.DirectAppUsers == 0 || s.DirectAppUsers == s.AppUsers || s.AppGroups == 0 {
		t.Errorf("app users %d (direct %d), app groups %d; want ~400 both direct and through groups", s.AppUsers, s.DirectAppUsers, s.AppGroups)
	}
	if s.Memberships < 800 {
		t.Errorf("memberships %d; want ~1,200", s.Memberships)
	}
	if s.CustomRoles == 0 || s.ResourceSets == 0 {
		t.Errorf("custom roles %d, resource sets %d", s.CustomRoles, s.ResourceSets)
	}
	if s.LogEvents != 0 {
		t.Errorf("generation logged %d System Log events; want none", s.LogEvents)
	}

	org.mu.RLock()
	defer org.mu.RUnlock()
	domains := map[string]int{}
	org.users.each(func(id string, u *User) bool {
		if !u.Created.Before(start) || u.LastUpdated.Before(u.Created) || u.LastUpdated.After(start) {
			t.Errorf("user %s: created %v, lastUpdated %v (org starts %v)", id, u.Created, u.LastUpdated, start)
		}
		if m := u.Profile.ManagerID; m != "" {
			if _, ok := org.users.get(m); !ok {
				t.Errorf("user %s: manager %s does not exist", id, m)
			}
		}
		if u.Status == "SUSPENDED" && !u.StatusChanged.After(u.Created) {
			t.Errorf("suspended user %s: statusChanged %v not after created %v", id, u.StatusChanged, u.Created)
		}
		_, domain, _ := strings.Cut(u.Profile.Login, "@")
		domains[domain]++
		if u.Profile.Email == "" || u.Profile.FirstName == "" || u.Profile.Department == "" || u.Profile.EmployeeNumber == "" {
			t.Errorf("user %s: thin profile %+v", id, u.Profile)
		}
		return true
	})
	if len(domains) < 2 {
		t.Errorf("login domains %v; want several", domains)
	}
	var sizes []int
	org.groups.each(func(id string, g *Group) bool {
		if g.Type == GroupBuiltIn && g.members.len() != s.Users {
			t.Errorf("Everyone has %d members of %d users", g.members.len(), s.Users)
		}
		if g.Type == GroupApp && g.SourceAppID == "" {
			t.Errorf("app group %s has no source app", id)
		}
		if g.LastMembershipUpdated.Before(g.Created) || !g.LastMembershipUpdated.Before(start) {
			t.Errorf("group %s: lastMembershipUpdated %v, created %v", id, g.LastMembershipUpdated, g.Created)
		}
		if g.Type != GroupBuiltIn {
			sizes = append(sizes, g.members.len())
		}
		return true
	})
	slices.Sort(sizes)
	if median, top := sizes[len(sizes)/2], sizes[len(sizes)-1]; top < 3*median {
		t.Errorf("group sizes %v are not heavy-tailed", sizes)
	}
	scim := false
	org.apps.each(func(id string, a *App) bool {
		if a.Connection != nil && a.Connection.Status == "ENABLED" && slices.Contains(a.Features, "PUSH_NEW_USERS") {
			scim = true
		}
		return true
	})
	if !scim {
		t.Error("no SCIM app pushing new users")
	}
	userRoles, groupRoles := 0, 0
	for k, set := range org.roles {
		if strings.HasPrefix(k, "group/") {
			groupRoles += set.len()
		} else {
			userRoles += set.len()
		}
	}
	if userRoles == 0 || groupRoles == 0 {
		t.Errorf("role assignments to users %d, to groups %d; want both", userRoles, groupRoles)
	}
}

// The three tokens hold exactly the capabilities of FACTS.md's table.
func TestGenerateTokenCapabilities(t *testing.T) {
	org, gen := generated(t, "small", 7)
	org.mu.RLock()
	defer org.mu.RUnlock()
	permsOf := func(tok string) perms {
		u, ok := org.users.get(org.tokens[tok])
		if !ok {
			t.Fatalf("token %s has no user", tok)
		}
		return org.permsOf(u)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  perms
	}{
		{"read-only", gen.Tokens.ReadOnlyAdmin, perms{readDirectory: true, readLogs: true}},
		{"app+group", gen.Tokens.AppGroupAdmin, perms{readDirectory: true, readLogs: true, writeMembership: true, writeAppAssignment: true, writeUsers: true}},
		{"super", gen.Tokens.SuperAdmin, perms{true, true, true, true, true, true, true, true}},
	} {
		if got := permsOf(tc.token); got != tc.want {
			t.Errorf("%s token: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if gen.Admins.SuperAdmin != org.tokens[gen.Tokens.SuperAdmin] {
		t.Errorf("admins %+v do not own the tokens", gen.Admins)
	}
}

func TestGenerateRefuses(t *testing.T) {
	org := NewOrg("http://sim.test", NewClock(DefaultStart(), 1))
	if _, err := Generate(org, "huge", 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := Generate(org, "small", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(org, "small", 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("second generation into one org: %v", err)
	}
}

// Generation takes no time on the org's clock and leaves it running.
func TestGenerateLeavesClockRunning(t *testing.T) {
	clock := NewClock(DefaultStart(), 1000)
	org := NewOrg("http://sim.test", clock)
	if _, err := Generate(org, "small", 1); err != nil {
		t.Fatal(err)
	}
	first := clock.Now()
	if first.Before(DefaultStart()) || first.After(DefaultStart().Add(10*time.Minute)) {
		t.Fatalf("clock at %v after generation; want just after %v", first, DefaultStart())
	}
	time.Sleep(5 * time.Millisecond)
	if !clock.Now().After(first) {
		t.Fatal("clock stopped")
	}
}

func TestZipfSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := zipfSizes(r, 1000, 90_000, 6_000)
	total := 0
	for _, s := range sizes {
		if s < 1 || s > 6_000 {
			t.Fatalf("size %d out of [1, 6000]", s)
		}
		total += s
	}
	if total < 80_000 || total > 100_000 {
		t.Errorf("total %d; want about 90,000", total)
	}
	slices.Sort(sizes)
	if sizes[500] > 100 || sizes[999] < 3_000 {
		t.Errorf("median %d, largest %d: not heavy-tailed", sizes[500], sizes[999])
	}
}

// BenchmarkGenerateLarge measures the time and memory of the large
// profile (100,000 users, ~1,000,000 memberships, ~200,000 app users).
func BenchmarkGenerateLarge(b *testing.B) {
	for range b.N {
		start := time.Now()
		org, gen := generated(b, "large", 1)
		elapsed := time.Since(start)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		runtime.KeepAlive(org)
		b.ReportMetric(elapsed.Seconds(), "generate-s")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(gen.Summary.Memberships), "memberships")
		b.ReportMetric(float64(gen.Summary.AppUsers), "app-users")
	}
}

// Everything a generated org serves matches Okta's spec: every user
// (DEPROVISIONED too), group, app, membership page, app assignment, role
// assignment and custom role of the small profile.
func TestGeneratedOrgMatchesSpec(t *testing.T) {
	run := startSmall(t, Config{RateLimits: NoLimits})
	f := &fixture{t: t, srv: run.Server, org: run.Org, url: run.URL,
		ro: run.Tokens.ReadOnlyAdmin, appgr: run.Tokens.AppGroupAdmin, super: run.Tokens.SuperAdmin}
	c := newContract(t, f)
	paths := []string{
		"/api/v1/users?limit=200", `/api/v1/users?filter=status+eq+"DEPROVISIONED"`,
		"/api/v1/groups?limit=10000&expand=stats", "/api/v1/apps?limit=200",
		"/api/v1/iam/roles", "/api/v1/iam/resource-sets",
	}
	o := run.Org
	o.mu.RLock()
	o.groups.each(func(id string, _ *Group) bool {
		paths = append(paths, "/api/v1/groups/"+id+"/users?limit=1000", "/api/v1/groups/"+id+"/roles")
		return true
	})
	o.apps.each(func(id string, _ *App) bool {
		paths = append(paths, "/api/v1/apps/"+id, "/api/v1/apps/"+id+"/users?limit=500", "/api/v1/apps/"+id+"/groups?limit=200")
		return true
	})
	for key := range o.roles {
		if id, ok := strings.CutPrefix(key, "user/"); ok {
			paths = append(paths, "/api/v1/users/"+id+"/roles")
		}
	}
	o.resourceSets.each(func(id string, _ *ResourceSet) bool {
		paths = append(paths, "/api/v1/iam/resource-sets/"+id+"/resources", "/api/v1/iam/resource-sets/"+id+"/bindings")
		return true
	})
	o.mu.RUnlock()
	paths = append(paths, "/api/v1/users/me", "/api/v1/org", "/api/v1/logs?limit=10", "/api/v1/eventHooks", "/api/v1/iam/assignees/users")
	slices.Sort(paths)
	// Every answer, for each of the three tokens, against the spec: the
	// super admin reads everything; the others read the directory and the
	// System Log and get Okta's 403 on roles, IAM and event hooks.
	adminOnly := func(p string) bool {
		return strings.Contains(p, "/roles") || strings.HasPrefix(p, "/api/v1/iam/") || strings.HasPrefix(p, "/api/v1/eventHooks")
	}
	for _, tok := range []string{run.Tokens.SuperAdmin, run.Tokens.AppGroupAdmin, run.Tokens.ReadOnlyAdmin} {
		for _, p := range paths {
			want := 200
			if tok != run.Tokens.SuperAdmin && adminOnly(p) {
				want = 403
			}
			if resp, b := c.check(tok, "GET", p, nil); resp.StatusCode != want {
				t.Errorf("GET %s with the %s token: %d %s, want %d", p, tokenName(run.Tokens, tok), resp.StatusCode, truncateBody(b), want)
			}
		}
	}
}

func tokenName(t Tokens, tok string) string {
	switch tok {
	case t.SuperAdmin:
		return "super admin"
	case t.AppGroupAdmin:
		return "app+group admin"
	}
	return "read-only admin"
}
