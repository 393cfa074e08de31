package fullsync

import (
	"context"
	"slices"
	"strings"
	"sync"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"golang.org/x/sync/errgroup"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// iamData is what was read of custom roles, resource sets and bindings.
// A map holds an entry only for what was read in full.
type iamData struct {
	roles     []okta.CustomRole
	perms     map[string][]string // custom role id -> permissions
	sets      []okta.ResourceSet
	resources map[string][]string                        // resource set id -> resources
	bindings  map[string]map[string][]okta.BindingMember // resource set id -> role id -> members
	// complete: every list of the IAM part succeeded, so what is not in it
	// is gone from the org.
	complete bool
}

// readIAM reads custom roles with their permissions and resource sets with
// their resources and bindings. A list that fails is skipped by name and
// leaves its containers as they were; removals need complete.
func (r *runner) readIAM(ctx context.Context) error {
	d := &iamData{perms: map[string][]string{}, resources: map[string][]string{}, bindings: map[string]map[string][]okta.BindingMember{}, complete: true}
	r.iam = d
	var mu sync.Mutex
	// failed records a part that could not be read; a fatal error stops the run.
	failed := func(part string, err error) error {
		reason, ok := partError(err)
		if !ok {
			return err
		}
		r.skip(part, reason, "could not be read: "+err.Error())
		mu.Lock()
		d.complete = false
		mu.Unlock()
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(roleReaders)
	var roles []okta.CustomRole
	if err := r.d.Okta.ListCustomRoles(ctx, func(p []okta.CustomRole) error { roles = append(roles, p...); return nil }); err != nil {
		if err := failed("custom_role", err); err != nil {
			return err
		}
	}
	d.roles = roles
	for _, cr := range roles {
		g.Go(func() error {
			var ps []string
			err := r.d.Okta.ListCustomRolePermissions(ctx, cr.ID, func(p []okta.Permission) error {
				for _, x := range p {
					ps = append(ps, x.Label)
				}
				return nil
			})
			if err != nil {
				return failed("custom_role/"+cr.ID+"/permissions", err)
			}
			slices.Sort(ps)
			mu.Lock()
			d.perms[cr.ID] = ps
			mu.Unlock()
			return nil
		})
	}
	var sets []okta.ResourceSet
	if err := r.d.Okta.ListResourceSets(ctx, func(p []okta.ResourceSet) error { sets = append(sets, p...); return nil }); err != nil {
		if err := failed("resource_set", err); err != nil {
			return err
		}
	}
	d.sets = sets
	for _, rs := range sets {
		g.Go(func() error {
			var res []string
			err := r.d.Okta.ListResourceSetResources(ctx, rs.ID, func(p []okta.Resource) error {
				for _, x := range p {
					if x.ORN != "" {
						res = append(res, x.ORN)
					} else {
						res = append(res, x.Href)
					}
				}
				return nil
			})
			if err != nil {
				return failed("resource_set/"+rs.ID+"/resources", err)
			}
			slices.Sort(res)
			mu.Lock()
			d.resources[rs.ID] = res
			mu.Unlock()
			return nil
		})
		g.Go(func() error {
			var bs []okta.Binding
			if err := r.d.Okta.ListBindings(ctx, rs.ID, func(p []okta.Binding) error { bs = append(bs, p...); return nil }); err != nil {
				return failed("resource_set/"+rs.ID+"/bindings", err)
			}
			members := map[string][]okta.BindingMember{}
			for _, b := range bs {
				var ms []okta.BindingMember
				err := r.d.Okta.ListBindingMembers(ctx, rs.ID, b.RoleID, func(p []okta.BindingMember) error { ms = append(ms, p...); return nil })
				if err != nil {
					return failed("resource_set/"+rs.ID+"/bindings/"+b.RoleID+"/members", err)
				}
				members[b.RoleID] = ms
			}
			mu.Lock()
			d.bindings[rs.ID] = members
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// bindingPrincipal reads a binding member's href: the user or group it names.
func bindingPrincipal(m okta.BindingMember) (principal, id string, ok bool) {
	h := m.Href
	for _, p := range []struct{ seg, principal string }{{"/api/v1/users/", "user"}, {"/api/v1/groups/", "group"}} {
		if i := strings.Index(h, p.seg); i >= 0 {
			id := strings.TrimSuffix(h[i+len(p.seg):], "/")
			if id != "" && !strings.Contains(id, "/") {
				return p.principal, id, true
			}
		}
	}
	return "", "", false
}

// bindingGrant is a principal's membership of the binding of custom role
// roleID on resource set rsID.
func bindingGrant(rsID, roleID, principal, id string, m okta.BindingMember) *eventsv1.Grant {
	pt := eventsv1.PrincipalType_PRINCIPAL_TYPE_USER
	if principal == "group" {
		pt = eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP
	}
	return &eventsv1.Grant{
		Key:       "resource_set_binding/" + rsID + "/" + roleID + "/" + principal + "/" + id,
		Principal: &eventsv1.Principal{Type: pt, Id: id},
		Entitlement: &eventsv1.Grant_ResourceSetBinding{ResourceSetBinding: &eventsv1.ResourceSetBinding{
			ResourceSetId: rsID, RoleId: roleID, MemberId: m.ID, MemberHref: m.Href,
		}},
	}
}

// buildIAM adds the IAM containers read to todo through add.
func (r *runner) buildIAM(sc scope, add func(kind, id string, encode func() ([]byte, error)) error) error {
	d := r.iam
	if d == nil {
		return nil
	}
	var nRoles, nSets, nBindings int
	for _, cr := range d.roles {
		ps, ok := d.perms[cr.ID]
		if !ok {
			continue
		}
		nRoles++
		res := customRoleResource(cr, ps)
		if err := add(state.KindCustomRole, cr.ID, func() ([]byte, error) { return changes.EncodeResource(res) }); err != nil {
			return err
		}
	}
	for _, rs := range d.sets {
		if res, ok := d.resources[rs.ID]; ok {
			nSets++
			v := resourceSetResource(rs, res)
			if err := add(state.KindResourceSet, rs.ID, func() ([]byte, error) { return changes.EncodeResource(v) }); err != nil {
				return err
			}
		}
		bs, ok := d.bindings[rs.ID]
		if !ok {
			continue
		}
		set := changes.NewGrantSet("")
		for roleID, ms := range bs {
			for _, m := range ms {
				principal, id, ok := bindingPrincipal(m)
				if !ok || (principal == "user" && !sc.users[id]) || (principal == "group" && !sc.groups[id]) {
					continue
				}
				set.Add(bindingGrant(rs.ID, roleID, principal, id, m))
			}
		}
		nBindings += len(set.Grants)
		if err := add(state.KindBindings, rs.ID, func() ([]byte, error) { return changes.EncodeGrants(state.KindBindings, set) }); err != nil {
			return err
		}
	}
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE, nRoles)
	r.com.SeenResources(eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET, nSets)
	r.com.SeenGrants(eventsv1.GrantKind_GRANT_KIND_RESOURCE_SET_BINDING, nBindings)
	return nil
}
