package oktasim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// The IAM endpoints: custom roles and their permissions, resource sets with
// their resources and bindings, and the users holding admin roles.
//
// Unlike the rest of the API, /api/v1/iam lists page in the body (FACTS.md):
// {"roles":[...],"_links":{"next":{"href":...}}}, and the next link carries
// the same opaque cursor as the Link headers elsewhere. Lists whose spec
// operation has no limit parameter serve Okta's fixed 100 per page.
//
// Reads need a role that may read roles (SUPER_ADMIN, or a CUSTOM role with
// okta.iam.read); writes one that may write them.

// iamPageSize is the page size of the IAM lists, and the maximum limit of
// those that take one.
const iamPageSize = 100

func (s *Server) routesIAM() {
	const (
		role    = "/api/v1/iam/roles/{roleIdOrLabel}"
		rs      = "/api/v1/iam/resource-sets/{resourceSetIdOrLabel}"
		binding = rs + "/bindings/{roleIdOrLabel}"
	)
	s.handle("/api/v1/iam/roles", map[string]http.HandlerFunc{"GET": s.listCustomRoles, "POST": s.createCustomRole})
	s.handle(role, map[string]http.HandlerFunc{"GET": s.getCustomRole, "PUT": s.replaceCustomRole, "DELETE": s.deleteCustomRole})
	s.handle(role+"/permissions", map[string]http.HandlerFunc{"GET": s.listRolePermissions})
	s.handle(role+"/permissions/{permissionType}", map[string]http.HandlerFunc{
		"GET": s.getRolePermission, "POST": s.createRolePermission, "PUT": s.replaceRolePermission, "DELETE": s.deleteRolePermission,
	})
	s.handle("/api/v1/iam/resource-sets", map[string]http.HandlerFunc{"GET": s.listResourceSets, "POST": s.createResourceSet})
	s.handle(rs, map[string]http.HandlerFunc{"GET": s.getResourceSet, "PUT": s.replaceResourceSet, "DELETE": s.deleteResourceSet})
	s.handle(rs+"/resources", map[string]http.HandlerFunc{"GET": s.listResources, "POST": s.addResource, "PATCH": s.addResources})
	s.handle(rs+"/resources/{resourceId}", map[string]http.HandlerFunc{"GET": s.getResource, "PUT": s.replaceResource, "DELETE": s.deleteResource})
	s.handle(rs+"/bindings", map[string]http.HandlerFunc{"GET": s.listBindings, "POST": s.createBinding})
	s.handle(binding, map[string]http.HandlerFunc{"GET": s.getBinding, "DELETE": s.deleteBinding})
	s.handle(binding+"/members", map[string]http.HandlerFunc{"GET": s.listBindingMembers, "PATCH": s.addBindingMembers})
	s.handle(binding+"/members/{memberId}", map[string]http.HandlerFunc{"GET": s.getBindingMember, "DELETE": s.deleteBindingMember})
	s.handle("/api/v1/iam/assignees/users", map[string]http.HandlerFunc{"GET": s.listRoleAssignees})
}

// ---- custom roles

func (s *Server) listCustomRoles(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	after, ok := iamParseAfter(w, r)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	items, last, more := pageJSON(o.customRoles, after, iamPageSize, nil, func(cr *CustomRole) []byte { return render(o.customRoleView(cr)) })
	o.mu.RUnlock()
	iamBodyPage(w, "roles", items, s.iamNextLink(r, last, more))
}

func (s *Server) createCustomRole(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Label       string   `json:"label"`
		Description string   `json:"description"`
		Permissions []string `json:"permissions"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	actor := actorOf(r)
	cr, err := s.org.CreateCustomRole(&actor, body.Label, body.Description, body.Permissions)
	s.answerRole(w, cr, err)
}

func (s *Server) getCustomRole(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	cr, err := o.customRole(r.PathValue("roleIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, render(o.customRoleView(cr)))
}

func (s *Server) replaceCustomRole(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Label       string `json:"label"`
		Description string `json:"description"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	actor := actorOf(r)
	cr, err := s.org.UpdateCustomRole(&actor, r.PathValue("roleIdOrLabel"), body.Label, body.Description)
	s.answerRole(w, cr, err)
}

func (s *Server) deleteCustomRole(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.DeleteCustomRole(&actor, r.PathValue("roleIdOrLabel")))
}

func (s *Server) answerRole(w http.ResponseWriter, cr *CustomRole, err error) {
	if err != nil {
		iamModelError(w, err)
		return
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	writeRaw(w, http.StatusOK, render(s.org.customRoleView(cr)))
}

// ---- custom role permissions

func (s *Server) listRolePermissions(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	cr, err := o.customRole(r.PathValue("roleIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	perms := make([]permissionView, len(cr.Permissions))
	for i, p := range cr.Permissions {
		perms[i] = o.permissionView(cr, p)
	}
	writeRaw(w, http.StatusOK, render(map[string]any{"permissions": perms}))
}

func (s *Server) getRolePermission(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	s.answerRolePermission(w, r)
}

// createRolePermission grants a permission; Okta answers 204.
func (s *Server) createRolePermission(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	if !iamDecodeConditions(w, r) {
		return
	}
	actor := actorOf(r)
	_, err := s.org.AddRolePermission(&actor, r.PathValue("roleIdOrLabel"), r.PathValue("permissionType"))
	iamNoContent(w, err)
}

// replaceRolePermission replaces the conditions of a permission the role
// has. The simulator models no permission conditions, so only a request
// without any (or with empty ones) is carried out.
func (s *Server) replaceRolePermission(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	if !iamDecodeConditions(w, r) {
		return
	}
	s.answerRolePermission(w, r)
}

func (s *Server) deleteRolePermission(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.RemoveRolePermission(&actor, r.PathValue("roleIdOrLabel"), r.PathValue("permissionType")))
}

func (s *Server) answerRolePermission(w http.ResponseWriter, r *http.Request) {
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	cr, err := o.customRole(r.PathValue("roleIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	p := r.PathValue("permissionType")
	if !slices.Contains(cr.Permissions, p) {
		iamNotFound(w, "permission "+p+" of custom role "+cr.ID)
		return
	}
	writeRaw(w, http.StatusOK, render(o.permissionView(cr, p)))
}

// iamDecodeConditions reads an optional {"conditions":{...}} body and
// refuses conditions that are not empty: the simulator does not model them,
// and saying so beats storing and ignoring them.
func iamDecodeConditions(w http.ResponseWriter, r *http.Request) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		malformed(w, err)
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	var body struct {
		Conditions map[string]json.RawMessage `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		malformed(w, err)
		return false
	}
	for _, v := range body.Conditions {
		if s := strings.TrimSpace(string(v)); s != "null" && s != "{}" && s != "[]" {
			invalid(w, "conditions: permission and resource conditions are not supported by this org")
			return false
		}
	}
	return true
}

// ---- resource sets

func (s *Server) listResourceSets(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	after, ok := iamParseAfter(w, r)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	items, last, more := pageJSON(o.resourceSets, after, iamPageSize, nil, func(rs *ResourceSet) []byte { return render(o.resourceSetView(rs)) })
	o.mu.RUnlock()
	iamBodyPage(w, "resource-sets", items, s.iamNextLink(r, last, more))
}

func (s *Server) createResourceSet(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Label       string    `json:"label"`
		Description string    `json:"description"`
		Resources   *[]string `json:"resources"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Resources == nil {
		invalid(w, "resources: the field is required")
		return
	}
	actor := actorOf(r)
	rs, err := s.org.CreateResourceSet(&actor, body.Label, body.Description, *body.Resources)
	s.answerResourceSet(w, rs, err)
}

func (s *Server) getResourceSet(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, err := o.resourceSet(r.PathValue("resourceSetIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, render(o.resourceSetView(rs)))
}

func (s *Server) replaceResourceSet(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Label       string `json:"label"`
		Description string `json:"description"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	actor := actorOf(r)
	rs, err := s.org.UpdateResourceSet(&actor, r.PathValue("resourceSetIdOrLabel"), body.Label, body.Description)
	s.answerResourceSet(w, rs, err)
}

func (s *Server) deleteResourceSet(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.DeleteResourceSet(&actor, r.PathValue("resourceSetIdOrLabel")))
}

func (s *Server) answerResourceSet(w http.ResponseWriter, rs *ResourceSet, err error) {
	if err != nil {
		iamModelError(w, err)
		return
	}
	s.org.mu.RLock()
	defer s.org.mu.RUnlock()
	writeRaw(w, http.StatusOK, render(s.org.resourceSetView(rs)))
}

// ---- resource set resources

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	p, ok := parsePage(w, r, iamPageSize, iamPageSize)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	rs, err := o.resourceSet(r.PathValue("resourceSetIdOrLabel"))
	if err != nil {
		o.mu.RUnlock()
		iamModelError(w, err)
		return
	}
	items, last, more := pageJSON(rs.Resources, p.after, p.limit, nil, func(x *Resource) []byte { return render(o.resourceView(rs, x)) })
	links := s.iamNextLink(r, last, more)
	links["resource-set"] = o.href("/api/v1/iam/resource-sets/" + rs.ID)
	o.mu.RUnlock()
	iamBodyPage(w, "resources", items, links)
}

// addResources is PATCH {"additions":[...]}; Okta answers with the set.
func (s *Server) addResources(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Additions []string `json:"additions"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	actor := actorOf(r)
	ref := r.PathValue("resourceSetIdOrLabel")
	if _, err := s.org.AddResourceSetResources(&actor, ref, body.Additions); err != nil {
		iamModelError(w, err)
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, err := o.resourceSet(ref)
	if err != nil { // deleted in between
		iamModelError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, render(o.resourceSetView(rs)))
}

// addResource is POST {"resourceOrnOrUrl","conditions"}: one resource,
// answered with that resource. Conditions are not modelled (see
// iamDecodeConditions), so only empty ones are accepted.
func (s *Server) addResource(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Resource   string          `json:"resourceOrnOrUrl"`
		Conditions json.RawMessage `json:"conditions"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Resource == "" {
		invalid(w, "resourceOrnOrUrl: the field is required")
		return
	}
	if c := strings.TrimSpace(string(body.Conditions)); c != "" && c != "null" && c != "{}" {
		invalid(w, "conditions: permission and resource conditions are not supported by this org")
		return
	}
	actor := actorOf(r)
	ref := r.PathValue("resourceSetIdOrLabel")
	added, err := s.org.AddResourceSetResources(&actor, ref, []string{body.Resource})
	if err != nil {
		iamModelError(w, err)
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, err := o.resourceSet(ref)
	if err != nil {
		iamModelError(w, err)
		return
	}
	var res *Resource
	if len(added) == 1 {
		res = added[0]
	} else if want, err := o.resolveResource(body.Resource); err == nil {
		res = o.findResource(rs, want.orn) // it was in the set already
	}
	if res == nil {
		iamNotFound(w, "resource "+body.Resource)
		return
	}
	writeRaw(w, http.StatusOK, render(o.resourceView(rs, res)))
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	s.answerResource(w, r)
}

// replaceResource replaces a resource's conditions; only empty ones (see
// iamDecodeConditions), so the resource is answered unchanged.
func (s *Server) replaceResource(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	if !iamDecodeConditions(w, r) {
		return
	}
	s.answerResource(w, r)
}

func (s *Server) answerResource(w http.ResponseWriter, r *http.Request) {
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, err := o.resourceSet(r.PathValue("resourceSetIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	res, ok := rs.Resources.get(r.PathValue("resourceId"))
	if !ok {
		iamNotFound(w, "resource "+r.PathValue("resourceId")+" of resource set "+rs.ID)
		return
	}
	writeRaw(w, http.StatusOK, render(o.resourceView(rs, res)))
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.RemoveResourceSetResource(&actor, r.PathValue("resourceSetIdOrLabel"), r.PathValue("resourceId")))
}

// ---- bindings

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	after, ok := iamParseAfter(w, r)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	rs, err := o.resourceSet(r.PathValue("resourceSetIdOrLabel"))
	if err != nil {
		o.mu.RUnlock()
		iamModelError(w, err)
		return
	}
	items, last, more := pageJSON(rs.Bindings, after, iamPageSize, nil, func(b *Binding) []byte { return render(o.bindingRoleView(rs, b)) })
	links := s.iamNextLink(r, last, more)
	links["self"] = o.href("/api/v1/iam/resource-sets/" + rs.ID + "/bindings")
	links["resource-set"] = o.href("/api/v1/iam/resource-sets/" + rs.ID)
	o.mu.RUnlock()
	iamBodyPage(w, "roles", items, links)
}

// createBinding is POST {"role","members"}: a new binding, or more members
// for an existing one.
func (s *Server) createBinding(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Role    string   `json:"role"`
		Members []string `json:"members"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Role == "" {
		invalid(w, "role: the field is required")
		return
	}
	actor := actorOf(r)
	rsRef := r.PathValue("resourceSetIdOrLabel")
	err := s.org.BindResourceSet(&actor, rsRef, body.Role, body.Members)
	s.answerBindingEdit(w, rsRef, body.Role, err)
}

func (s *Server) getBinding(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, cr, _, err := o.binding(r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	base := "/api/v1/iam/resource-sets/" + rs.ID
	writeRaw(w, http.StatusOK, render(map[string]any{
		"id": cr.ID,
		"_links": map[string]any{
			"self":         iamHref(o.href(base + "/bindings/" + cr.ID)),
			"members":      iamHref(o.href(base + "/bindings/" + cr.ID + "/members")),
			"resource-set": iamHref(o.href(base)),
		},
	}))
}

func (s *Server) deleteBinding(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.UnbindResourceSet(&actor, r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel")))
}

func (s *Server) listBindingMembers(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	after, ok := iamParseAfter(w, r)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	rs, cr, b, err := o.binding(r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel"))
	if err != nil {
		o.mu.RUnlock()
		iamModelError(w, err)
		return
	}
	// A member whose user or group was deleted is no longer an admin.
	live := func(m *BindingMember) bool { _, ok := o.memberPrincipal(m.Href); return ok }
	items, last, more := pageJSON(b.Members, after, iamPageSize, live, func(m *BindingMember) []byte { return render(bindingMemberView(m)) })
	base := "/api/v1/iam/resource-sets/" + rs.ID + "/bindings/" + cr.ID
	links := s.iamNextLink(r, last, more)
	links["self"] = o.href(base + "/members")
	links["binding"] = o.href(base)
	o.mu.RUnlock()
	iamBodyPage(w, "members", items, links)
}

// addBindingMembers is PATCH {"additions":[...]} on an existing binding.
func (s *Server) addBindingMembers(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	var body struct {
		Additions []string `json:"additions"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	actor := actorOf(r)
	rsRef, roleRef := r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel")
	err := s.org.AddBindingMembers(&actor, rsRef, roleRef, body.Additions)
	s.answerBindingEdit(w, rsRef, roleRef, err)
}

// answerBindingEdit answers a binding change with Okta's links-only body.
func (s *Server) answerBindingEdit(w http.ResponseWriter, rsRef, roleRef string, err error) {
	if err != nil {
		iamModelError(w, err)
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs, err := o.resourceSet(rsRef)
	if err != nil {
		iamModelError(w, err)
		return
	}
	cr, err := o.customRole(roleRef)
	if err != nil {
		iamModelError(w, err)
		return
	}
	base := "/api/v1/iam/resource-sets/" + rs.ID
	writeRaw(w, http.StatusOK, render(map[string]any{"_links": map[string]any{
		"self":         iamHref(o.href(base + "/bindings/" + cr.ID)),
		"bindings":     iamHref(o.href(base + "/bindings")),
		"resource-set": iamHref(o.href(base)),
	}}))
}

func (s *Server) getBindingMember(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	o := s.org
	o.mu.RLock()
	defer o.mu.RUnlock()
	_, _, b, err := o.binding(r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel"))
	if err != nil {
		iamModelError(w, err)
		return
	}
	id := r.PathValue("memberId")
	m, ok := b.Members.get(id)
	if ok {
		_, ok = o.memberPrincipal(m.Href)
	}
	if !ok {
		iamNotFound(w, "member "+id+" of binding "+b.RoleID)
		return
	}
	writeRaw(w, http.StatusOK, render(bindingMemberView(m)))
}

func (s *Server) deleteBindingMember(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canWriteRoles) {
		return
	}
	actor := actorOf(r)
	iamNoContent(w, s.org.RemoveBindingMember(&actor, r.PathValue("resourceSetIdOrLabel"), r.PathValue("roleIdOrLabel"), r.PathValue("memberId")))
}

// ---- assignees

// listRoleAssignees lists, in user order, every user holding an admin role,
// assigned directly or through a group.
func (s *Server) listRoleAssignees(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, canReadRoles) {
		return
	}
	p, ok := parsePage(w, r, iamPageSize, iamPageSize)
	if !ok {
		return
	}
	o := s.org
	o.mu.RLock()
	// Page over the admins alone, in user order, with the users' own
	// sequence numbers as the cursor: no scan of the whole directory.
	var admins []*entry[*User]
	for id := range o.roleHolders() {
		if e, ok := o.users.byID[id]; ok && e.seq > p.after {
			admins = append(admins, e)
		}
	}
	slices.SortFunc(admins, func(a, b *entry[*User]) int { return cmp.Compare(a.seq, b.seq) })
	more := len(admins) > p.limit
	if more {
		admins = admins[:p.limit]
	}
	var last uint64
	items := make([][]byte, len(admins))
	for i, e := range admins {
		items[i] = render(o.assigneeView(e.v))
		last = e.seq
	}
	o.mu.RUnlock()
	iamBodyPage(w, "value", items, s.iamNextLink(r, last, more))
}

// roleHolders are the ids of users with any role assignment, their own or
// a group's; o.mu is held. Its cost follows the number of role
// assignments and the size of admin groups, not the size of the org.
func (o *Org) roleHolders() map[string]struct{} {
	out := map[string]struct{}{}
	for key, set := range o.roles {
		if set.len() == 0 {
			continue
		}
		if id, ok := strings.CutPrefix(key, "user/"); ok {
			out[id] = struct{}{}
		} else if id, ok := strings.CutPrefix(key, "group/"); ok {
			if g, ok := o.groups.get(id); ok {
				g.members.each(func(uid string, _ *User) bool { out[uid] = struct{}{}; return true })
			}
		}
	}
	return out
}

// ---- views (spec: IamRole, Permission, ResourceSet, ResourceSetResource,
// ResourceSetBindingRole, ResourceSetBindingMember, RoleAssignedUser)

type customRoleView struct {
	ID          string         `json:"id"`
	Label       string         `json:"label"`
	Description string         `json:"description"`
	Created     oktaTime       `json:"created"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

func (o *Org) customRoleView(cr *CustomRole) customRoleView {
	self := "/api/v1/iam/roles/" + cr.ID
	return customRoleView{
		ID: cr.ID, Label: cr.Label, Description: cr.Description,
		Created: oktaTime(cr.Created), LastUpdated: oktaTime(cr.LastUpdated),
		Links: map[string]any{"self": iamHref(o.href(self)), "permissions": iamHref(o.href(self + "/permissions"))},
	}
}

// permissionView is a permission of a custom role. The model keeps no
// times per permission, so they are the role's.
type permissionView struct {
	Label       string         `json:"label"`
	Created     oktaTime       `json:"created"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

func (o *Org) permissionView(cr *CustomRole, p string) permissionView {
	role := "/api/v1/iam/roles/" + cr.ID
	return permissionView{
		Label: p, Created: oktaTime(cr.Created), LastUpdated: oktaTime(cr.LastUpdated),
		Links: map[string]any{"self": iamHref(o.href(role + "/permissions/" + p)), "role": iamHref(o.href(role))},
	}
}

type resourceSetView struct {
	ID          string         `json:"id"`
	Label       string         `json:"label"`
	Description string         `json:"description"`
	Created     oktaTime       `json:"created"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

func (o *Org) resourceSetView(rs *ResourceSet) resourceSetView {
	self := "/api/v1/iam/resource-sets/" + rs.ID
	return resourceSetView{
		ID: rs.ID, Label: rs.Label, Description: rs.Description,
		Created: oktaTime(rs.Created), LastUpdated: oktaTime(rs.LastUpdated),
		Links: map[string]any{
			"self":      iamHref(o.href(self)),
			"resources": iamHref(o.href(self + "/resources")),
			"bindings":  iamHref(o.href(self + "/bindings")),
		},
	}
}

type resourceView struct {
	ID          string         `json:"id"`
	ORN         string         `json:"orn"`
	Created     oktaTime       `json:"created"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

// resourceView links self to the REST URL of what the resource names, as
// Okta does, plus users or groups for a whole collection.
func (o *Org) resourceView(rs *ResourceSet, x *Resource) resourceView {
	links := map[string]any{
		"self":     iamHref(x.Href),
		"resource": iamHref(o.href("/api/v1/iam/resource-sets/" + rs.ID + "/resources/" + x.ID)),
	}
	switch {
	case strings.HasSuffix(x.ORN, ":users") && strings.HasPrefix(x.ORN, "orn:okta:directory:"):
		links["users"] = iamHref(x.Href)
	case strings.HasSuffix(x.ORN, ":groups") && strings.HasPrefix(x.ORN, "orn:okta:directory:"):
		links["groups"] = iamHref(x.Href)
	}
	return resourceView{ID: x.ID, ORN: x.ORN, Created: oktaTime(x.Created), LastUpdated: oktaTime(x.Created), Links: links}
}

func (o *Org) bindingRoleView(rs *ResourceSet, b *Binding) map[string]any {
	return map[string]any{
		"id": b.RoleID,
		"_links": map[string]any{
			"self":    iamHref(o.href("/api/v1/iam/roles/" + b.RoleID)),
			"members": iamHref(o.href("/api/v1/iam/resource-sets/" + rs.ID + "/bindings/" + b.RoleID + "/members")),
		},
	}
}

type bindingMemberJSON struct {
	ID          string         `json:"id"`
	Created     oktaTime       `json:"created"`
	LastUpdated oktaTime       `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

func bindingMemberView(m *BindingMember) bindingMemberJSON {
	return bindingMemberJSON{
		ID: m.ID, Created: oktaTime(m.Created), LastUpdated: oktaTime(m.LastUpdated),
		Links: map[string]any{"self": iamHref(m.Href)},
	}
}

func (o *Org) assigneeView(u *User) map[string]any {
	return map[string]any{
		"id":  u.ID,
		"orn": "orn:okta:directory:" + OrgID + ":users:" + u.ID,
		"_links": map[string]any{
			"self":  iamHref(o.href("/api/v1/users/" + u.ID)),
			"roles": iamHref(o.href("/api/v1/users/" + u.ID + "/roles")),
		},
	}
}

// ---- helpers

func iamHref(href string) map[string]string { return map[string]string{"href": href} }

// iamParseAfter reads the opaque cursor of a list whose page size is fixed;
// a limit parameter, which the spec does not give these lists, is ignored.
func iamParseAfter(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	a := r.URL.Query().Get("after")
	if a == "" {
		return 0, true
	}
	seq, err := decodeCursor(a)
	if err != nil {
		invalid(w, "after: invalid cursor")
		return 0, false
	}
	return seq, true
}

// iamNextLink starts a body page's _links: the next page, when there is one,
// is this request with the cursor after the last item.
func (s *Server) iamNextLink(r *http.Request, last uint64, more bool) map[string]string {
	links := map[string]string{}
	if more {
		q := r.URL.Query()
		q.Set("after", encodeCursor(last))
		links["next"] = s.org.href(r.URL.Path + "?" + q.Encode())
	}
	return links
}

// iamBodyPage answers {"<key>":[items...],"_links":{...}} from
// pre-rendered items.
func iamBodyPage(w http.ResponseWriter, key string, items [][]byte, links map[string]string) {
	n := len(key) + 64
	for _, it := range items {
		n += len(it) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, `{"`...)
	buf = append(buf, key...)
	buf = append(buf, `":[`...)
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it...)
	}
	buf = append(buf, `],"_links":`...)
	l := make(map[string]any, len(links))
	for k, v := range links {
		l[k] = iamHref(v)
	}
	buf = append(buf, render(l)...)
	buf = append(buf, '}')
	writeRaw(w, http.StatusOK, buf)
}

// iamModelError answers a model error as Okta does: 404 E0000007 for a missing
// object, 400 E0000001 for a refused change.
func iamModelError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		iamNotFound(w, strings.TrimSuffix(err.Error(), ": "+ErrNotFound.Error()))
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotWritable):
		invalid(w, strings.TrimSuffix(strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error()), ": "+ErrNotWritable.Error()))
	default:
		writeError(w, http.StatusInternalServerError, codeInternal, "Internal Server Error", err.Error())
	}
}

// iamNotFound answers Okta's 404 E0000007 naming what was not found, as
// "custom role cr0...".
func iamNotFound(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+what)
}

// iamNoContent answers a change with Okta's 204, or its error.
func iamNoContent(w http.ResponseWriter, err error) {
	if err != nil {
		iamModelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
