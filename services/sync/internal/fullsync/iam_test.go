package fullsync_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"

	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
)

func customOpts() *fullsync.Options {
	o := fullsync.DefaultOptions()
	o.SyncCustomRoles = true
	return &o
}

// iamView is the org's custom roles, resource sets and binding members,
// read through the API.
type iamView struct {
	roles   map[string][]string // id -> permissions
	sets    []okta.ResourceSet
	members map[string][]string // "rs/role" -> member hrefs
}

func (e *env) iamView(t *testing.T) *iamView {
	t.Helper()
	ctx := context.Background()
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	v := &iamView{roles: map[string][]string{}, members: map[string][]string{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.ListCustomRoles(ctx, func(rs []okta.CustomRole) error {
		for _, r := range rs {
			must(c.ListCustomRolePermissions(ctx, r.ID, func(ps []okta.Permission) error {
				for _, p := range ps {
					v.roles[r.ID] = append(v.roles[r.ID], p.Label)
				}
				return nil
			}))
		}
		return nil
	}))
	must(c.ListResourceSets(ctx, func(p []okta.ResourceSet) error { v.sets = append(v.sets, p...); return nil }))
	for _, rs := range v.sets {
		must(c.ListBindings(ctx, rs.ID, func(bs []okta.Binding) error {
			for _, b := range bs {
				must(c.ListBindingMembers(ctx, rs.ID, b.RoleID, func(ms []okta.BindingMember) error {
					for _, m := range ms {
						v.members[rs.ID+"/"+b.RoleID] = append(v.members[rs.ID+"/"+b.RoleID], m.Href)
					}
					return nil
				}))
			}
			return nil
		}))
	}
	return v
}

func bindingKey(rsRole, href string) string {
	kind, id := "user", href[strings.LastIndexByte(href, '/')+1:]
	if strings.Contains(href, "/api/v1/groups/") {
		kind = "group"
	}
	return "grant.added resource_set_binding/" + rsRole + "/" + kind + "/" + id
}

// TestCustomRolesResourceSetsAndBindings: with the option on, a super
// admin's sync publishes every custom role with its permissions, every
// resource set and every binding member; later changes publish exactly
// their events.
func TestCustomRolesResourceSetsAndBindings(t *testing.T) {
	e := newEnv(t)
	rep := e.mustSync(t, syncOpts{opts: customOpts()})
	evs := e.newEvents(t)
	v := e.iamView(t)
	if len(v.roles) == 0 || len(v.sets) == 0 || len(v.members) == 0 {
		t.Fatalf("the small org has %d custom roles, %d resource sets, %d bindings", len(v.roles), len(v.sets), len(v.members))
	}
	for _, s := range rep.Skipped {
		t.Errorf("skipped %s: %s", s.GetPart(), s.GetMessage())
	}
	got := whats(evs)
	var want []string
	for id := range v.roles {
		want = append(want, "custom_role.upserted "+id)
	}
	for _, rs := range v.sets {
		want = append(want, "resource_set.upserted "+rs.ID)
	}
	for rsRole, hrefs := range v.members {
		for _, h := range hrefs {
			want = append(want, bindingKey(rsRole, h))
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %s", w)
		}
	}
	if n := countPrefix(evs, "custom_role.upserted ") + countPrefix(evs, "resource_set.upserted ") + countPrefix(evs, "grant.added resource_set_binding/"); n != len(want) {
		t.Errorf("%d IAM events, want %d", n, len(want))
	}
	if rep.Resources[eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE].Added != int64(len(v.roles)) {
		t.Errorf("report: custom roles %+v", rep.Resources[eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE])
	}
	if countPrefix(evs, "grant.added role_assignment/") == 0 {
		t.Error("no role assignment published")
	}

	// Permissions are part of the role.
	var roleID string
	for id := range v.roles {
		roleID = id
		break
	}
	perm := "okta.users.lifecycle.unlock"
	if slices.Contains(v.roles[roleID], perm) {
		perm = "okta.users.lifecycle.clearSessions"
	}
	if _, err := e.run.Org.AddRolePermission(e.actor(), roleID, perm); err != nil {
		t.Fatal(err)
	}
	// A binding member removed.
	var rsRole, href string
	for k, hs := range v.members {
		if len(hs) > 0 {
			rsRole, href = k, hs[0]
			break
		}
	}
	rsID, role, _ := strings.Cut(rsRole, "/")
	c, _ := e.client(t, e.run.Tokens.SuperAdmin, nil)
	var memberID string
	if err := c.ListBindingMembers(context.Background(), rsID, role, func(ms []okta.BindingMember) error {
		for _, m := range ms {
			if m.Href == href {
				memberID = m.ID
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.run.Org.RemoveBindingMember(e.actor(), rsID, role, memberID); err != nil {
		t.Fatal(err)
	}
	e.mustSync(t, syncOpts{opts: customOpts()})
	evs = e.newEvents(t)
	removed := "grant.removed " + strings.TrimPrefix(bindingKey(rsRole, href), "grant.added ")
	for _, w := range []string{"custom_role.upserted " + roleID, removed} {
		if !slices.Contains(whats(evs), w) {
			t.Fatalf("after the changes: %v, missing %s", whats(evs), w)
		}
	}
	for _, c := range evs {
		if !strings.HasPrefix(c.what, "custom_role.") && !strings.Contains(c.what, "resource_set") && !strings.Contains(c.what, "role_assignment/") {
			t.Errorf("unexpected %s", c.what)
		}
	}

	// A read-only token may not review roles: the parts are skipped by
	// name and nothing is removed.
	rep = e.mustSync(t, syncOpts{opts: customOpts(), token: e.run.Tokens.ReadOnlyAdmin})
	if evs := e.newEvents(t); len(evs) != 0 {
		t.Fatalf("read-only sync published %v", whats(evs))
	}
	var parts []string
	for _, s := range rep.Skipped {
		if s.GetReason() == eventsv1.SkippedPart_REASON_MISSING_CAPABILITY {
			parts = append(parts, s.GetPart())
		}
	}
	for _, p := range []string{"custom_role", "resource_set", "resource_set_binding"} {
		if !slices.Contains(parts, p) {
			t.Errorf("skipped %v, want %s", parts, p)
		}
	}
}

// failingPath answers 503 for every request whose path starts with prefix.
type failingPath struct {
	prefix string
	base   http.RoundTripper
}

func (f *failingPath) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, f.prefix) {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
			Body: http.NoBody, Request: r}, nil
	}
	return f.base.RoundTrip(r)
}

// TestCustomRolesUnreadableRemovesNothing: when resource sets cannot be
// read, custom roles, resource sets and bindings deleted in Okta are not
// removed; a healthy run removes them.
func TestCustomRolesUnreadableRemovesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustSync(t, syncOpts{opts: customOpts()})
	e.newEvents(t)
	v := e.iamView(t)
	rs := v.sets[0]
	var unbound []string
	for rsRole, hrefs := range v.members {
		if strings.HasPrefix(rsRole, rs.ID+"/") {
			_, role, _ := strings.Cut(rsRole, "/")
			if err := e.run.Org.UnbindResourceSet(e.actor(), rs.ID, role); err != nil {
				t.Fatal(err)
			}
			for _, h := range hrefs {
				unbound = append(unbound, "grant.removed "+strings.TrimPrefix(bindingKey(rsRole, h), "grant.added "))
			}
		}
	}
	if err := e.run.Org.DeleteResourceSet(e.actor(), rs.ID); err != nil {
		t.Fatal(err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	e.transports = append(e.transports, base)
	opts := customOpts()
	opts.RemovalThreshold = 1
	rep := e.mustSync(t, syncOpts{opts: opts, rt: &failingPath{prefix: "/api/v1/iam/resource-sets", base: base}})
	for _, c := range e.newEvents(t) {
		if strings.Contains(c.what, "resource_set") {
			t.Fatalf("with resource sets unreadable: %s", c.what)
		}
	}
	if !slices.ContainsFunc(rep.Skipped, func(s *eventsv1.SkippedPart) bool { return s.GetPart() == "resource_set" }) {
		t.Fatalf("skipped %v", rep.Skipped)
	}
	e.mustSync(t, syncOpts{opts: opts})
	evs := e.newEvents(t)
	want := append(unbound, "resource_set.deleted "+rs.ID)
	var got []string
	for _, c := range evs {
		if strings.Contains(c.what, "resource_set") {
			got = append(got, c.what)
		}
	}
	sameSet(t, "healthy", got, want)
}
