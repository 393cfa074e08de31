package oktasim

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// IAM model: custom roles, resource sets and their bindings.
//
// A binding member is an admin role assignment seen from the resource set:
// binding a user or group to a custom role on a resource set also creates
// the CUSTOM RoleAssignment that /users/{id}/roles shows and that permsOf
// reads, and removing the member removes that assignment. Objects are
// addressed by id or label, as Okta's {roleIdOrLabel} and
// {resourceSetIdOrLabel} path parameters are.

// maxResourcesPerSet is Okta's limit on the resources of one resource set.
const maxResourcesPerSet = 1000

// customRolePermissions are the permission names Okta accepts in a custom
// role (Okta's permissions catalog); any other name is refused as Okta does.
var customRolePermissions = map[string]bool{
	"okta.users.manage": true, "okta.users.create": true, "okta.users.read": true,
	"okta.users.credentials.manage": true, "okta.users.credentials.resetFactors": true,
	"okta.users.credentials.resetPassword": true, "okta.users.credentials.expirePassword": true,
	"okta.users.credentials.manageTemporaryAccessCode": true,
	"okta.users.userprofile.manage":                    true, "okta.users.lifecycle.manage": true,
	"okta.users.lifecycle.activate": true, "okta.users.lifecycle.deactivate": true,
	"okta.users.lifecycle.suspend": true, "okta.users.lifecycle.unsuspend": true,
	"okta.users.lifecycle.delete": true, "okta.users.lifecycle.unlock": true,
	"okta.users.lifecycle.clearSessions": true, "okta.users.groupMembership.manage": true,
	"okta.users.appAssignment.manage": true, "okta.users.apitokens.manage": true,
	"okta.users.apitokens.read": true, "okta.users.apitokens.clear": true, "okta.users.risk.manage": true,
	"okta.groups.manage": true, "okta.groups.create": true, "okta.groups.members.manage": true,
	"okta.groups.read": true, "okta.groups.appAssignment.manage": true,
	"okta.apps.read": true, "okta.apps.manage": true, "okta.apps.assignment.manage": true,
	"okta.apps.manageFirstPartyApps": true, "okta.profilesources.import.run": true,
	"okta.authzServers.read": true, "okta.authzServers.manage": true,
	"okta.customizations.read": true, "okta.customizations.manage": true,
	"okta.identityProviders.read": true, "okta.identityProviders.manage": true,
	"okta.workflows.read": true, "okta.workflows.invoke": true,
	"okta.governance.accessCertifications.manage": true, "okta.governance.accessRequests.manage": true,
	"okta.agents.manage": true, "okta.agents.register": true, "okta.agents.view": true,
	"okta.directories.manage": true, "okta.directories.read": true,
	"okta.devices.manage": true, "okta.devices.read": true, "okta.devices.lifecycle.manage": true,
	"okta.devices.lifecycle.activate": true, "okta.devices.lifecycle.deactivate": true,
	"okta.devices.lifecycle.suspend": true, "okta.devices.lifecycle.unsuspend": true,
	"okta.devices.lifecycle.delete": true,
	"okta.realms.read":              true, "okta.realms.manage": true,
	"okta.support.cases.manage": true,
	"okta.iam.read":             true,
	// okta.iam.manage is what perms.go grants role writes for.
	"okta.iam.manage": true,
}

// CreateCustomRole adds a custom admin role. The label must be unique, the
// description set, and every permission one Okta knows (at least one).
func (o *Org) CreateCustomRole(by *LogActor, label, description string, permissions []string) (*CustomRole, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkRoleFields(nil, label, description); err != nil {
		return nil, err
	}
	perms, err := checkPermissions(permissions)
	if err != nil {
		return nil, err
	}
	now := o.clock.Now()
	cr := &CustomRole{ID: o.newID("cr0"), Label: label, Description: description, Permissions: perms, Created: now, LastUpdated: now}
	o.customRoles.put(cr.ID, cr)
	if by != nil {
		o.emit("iam.role.create", "Create custom role", *by, roleTarget(cr))
	}
	return cr, nil
}

// UpdateCustomRole replaces the label and description of the custom role
// with id or label ref.
func (o *Org) UpdateCustomRole(by *LogActor, ref, label, description string) (*CustomRole, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cr, err := o.customRole(ref)
	if err != nil {
		return nil, err
	}
	if err := o.checkRoleFields(cr, label, description); err != nil {
		return nil, err
	}
	cr.Label, cr.Description, cr.LastUpdated = label, description, o.clock.Now()
	if by != nil {
		o.emit("iam.role.update", "Update custom role", *by, roleTarget(cr))
	}
	return cr, nil
}

// DeleteCustomRole deletes a custom role. Okta refuses to delete a role
// that is still assigned: its bindings must be removed first.
func (o *Org) DeleteCustomRole(by *LogActor, ref string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	cr, err := o.customRole(ref)
	if err != nil {
		return err
	}
	if o.customRoleInUse(cr.ID) {
		return fmt.Errorf("custom role %s is assigned to admins; delete its bindings first: %w", cr.Label, ErrInvalid)
	}
	o.customRoles.del(cr.ID)
	if by != nil {
		o.emit("iam.role.delete", "Delete custom role", *by, roleTarget(cr))
	}
	return nil
}

// AddRolePermission grants one more permission to a custom role; granting
// one it already has changes nothing.
func (o *Org) AddRolePermission(by *LogActor, ref, permission string) (*CustomRole, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cr, err := o.customRole(ref)
	if err != nil {
		return nil, err
	}
	if !customRolePermissions[permission] {
		return nil, fmt.Errorf("permission %q is not an Okta permission: %w", permission, ErrInvalid)
	}
	if slices.Contains(cr.Permissions, permission) {
		return cr, nil
	}
	cr.Permissions = append(cr.Permissions, permission)
	cr.LastUpdated = o.clock.Now()
	if by != nil {
		o.emit("iam.role.permissions.add", "Add permissions to custom role", *by, roleTarget(cr), permissionTarget(permission))
	}
	return cr, nil
}

// RemoveRolePermission takes a permission from a custom role. A custom role
// keeps at least one permission, as it must have one to be created.
func (o *Org) RemoveRolePermission(by *LogActor, ref, permission string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	cr, err := o.customRole(ref)
	if err != nil {
		return err
	}
	i := slices.Index(cr.Permissions, permission)
	if i < 0 {
		return fmt.Errorf("permission %s of custom role %s: %w", permission, cr.ID, ErrNotFound)
	}
	if len(cr.Permissions) == 1 {
		return fmt.Errorf("custom role %s must keep at least one permission: %w", cr.Label, ErrInvalid)
	}
	cr.Permissions = slices.Delete(cr.Permissions, i, i+1)
	cr.LastUpdated = o.clock.Now()
	if by != nil {
		o.emit("iam.role.permissions.delete", "Delete permissions from custom role", *by, roleTarget(cr), permissionTarget(permission))
	}
	return nil
}

// CreateResourceSet adds a resource set. Resources are ORNs
// (orn:okta:directory:<orgId>:groups:<id>, ...) or REST URLs
// (https://<org>/api/v1/groups/<id>, ...) of objects that exist.
func (o *Org) CreateResourceSet(by *LogActor, label, description string, resources []string) (*ResourceSet, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkResourceSetFields(nil, label, description); err != nil {
		return nil, err
	}
	refs, err := o.resolveResources(resources)
	if err != nil {
		return nil, err
	}
	if len(refs) > maxResourcesPerSet {
		return nil, fmt.Errorf("resources: a resource set holds at most %d resources: %w", maxResourcesPerSet, ErrInvalid)
	}
	now := o.clock.Now()
	rs := &ResourceSet{
		ID: o.newID("iam"), Label: label, Description: description, Created: now, LastUpdated: now,
		Resources: newOrdered[*Resource](), Bindings: newOrdered[*Binding](),
	}
	for _, ref := range refs {
		o.addResource(rs, ref, now)
	}
	o.resourceSets.put(rs.ID, rs)
	if by != nil {
		o.emit("iam.resourceset.create", "Create resource set", *by, resourceSetTarget(rs))
	}
	return rs, nil
}

// UpdateResourceSet replaces the label and description of a resource set.
func (o *Org) UpdateResourceSet(by *LogActor, ref, label, description string) (*ResourceSet, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, err := o.resourceSet(ref)
	if err != nil {
		return nil, err
	}
	if err := o.checkResourceSetFields(rs, label, description); err != nil {
		return nil, err
	}
	rs.Label, rs.Description, rs.LastUpdated = label, description, o.clock.Now()
	if by != nil {
		o.emit("iam.resourceset.update", "Update resource set", *by, resourceSetTarget(rs))
	}
	return rs, nil
}

// DeleteResourceSet deletes a resource set. Okta refuses to delete one
// that roles are still bound on: its bindings must be removed first.
func (o *Org) DeleteResourceSet(by *LogActor, ref string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, err := o.resourceSet(ref)
	if err != nil {
		return err
	}
	if rs.Bindings.len() > 0 || o.customAssignmentsOn("", rs.ID) {
		return fmt.Errorf("resource set %s has role bindings; delete them first: %w", rs.Label, ErrInvalid)
	}
	o.resourceSets.del(rs.ID)
	if by != nil {
		o.emit("iam.resourceset.delete", "Delete resource set", *by, resourceSetTarget(rs))
	}
	return nil
}

// AddResourceSetResources adds resources (ORNs or REST URLs) to a resource
// set; resources it holds already are skipped. It returns the added ones.
func (o *Org) AddResourceSetResources(by *LogActor, ref string, resources []string) ([]*Resource, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, err := o.resourceSet(ref)
	if err != nil {
		return nil, err
	}
	if len(resources) == 0 {
		return nil, fmt.Errorf("additions: at least one resource is required: %w", ErrInvalid)
	}
	refs, err := o.resolveResources(resources)
	if err != nil {
		return nil, err
	}
	var fresh []resourceRef
	for _, ref := range refs {
		if o.findResource(rs, ref.orn) == nil {
			fresh = append(fresh, ref)
		}
	}
	if rs.Resources.len()+len(fresh) > maxResourcesPerSet {
		return nil, fmt.Errorf("additions: a resource set holds at most %d resources: %w", maxResourcesPerSet, ErrInvalid)
	}
	now := o.clock.Now()
	added := make([]*Resource, 0, len(fresh))
	for _, ref := range fresh {
		added = append(added, o.addResource(rs, ref, now))
	}
	if len(added) > 0 {
		rs.LastUpdated = now
		if by != nil {
			o.emit("iam.resourceset.resources.add", "Add resources to resource set", *by, resourceSetTarget(rs))
		}
	}
	return added, nil
}

// RemoveResourceSetResource removes one resource, by its id, from a resource set.
func (o *Org) RemoveResourceSetResource(by *LogActor, ref, resourceID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, err := o.resourceSet(ref)
	if err != nil {
		return err
	}
	if !rs.Resources.del(resourceID) {
		return fmt.Errorf("resource %s of resource set %s: %w", resourceID, rs.ID, ErrNotFound)
	}
	rs.LastUpdated = o.clock.Now()
	if by != nil {
		o.emit("iam.resourceset.resources.delete", "Delete resources from resource set", *by, resourceSetTarget(rs))
	}
	return nil
}

// BindResourceSet binds a custom role on a resource set to members (hrefs
// of users or groups, .../api/v1/users/<id> or .../api/v1/groups/<id>):
// each member becomes an admin with that role over that set. It creates the
// binding or adds to it; members bound already are left as they are.
func (o *Org) BindResourceSet(by *LogActor, resourceSetID, roleID string, memberHrefs []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.bind(by, resourceSetID, roleID, memberHrefs, false)
	return err
}

// AddBindingMembers adds members to an existing binding; it is
// BindResourceSet for a binding that must exist already.
func (o *Org) AddBindingMembers(by *LogActor, resourceSetRef, roleRef string, memberHrefs []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.bind(by, resourceSetRef, roleRef, memberHrefs, true)
	return err
}

// UnbindResourceSet deletes the binding of a role on a resource set and so
// every admin assignment it made.
func (o *Org) UnbindResourceSet(by *LogActor, resourceSetRef, roleRef string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, cr, b, err := o.binding(resourceSetRef, roleRef)
	if err != nil {
		return err
	}
	var targets []LogActor
	b.Members.each(func(_ string, m *BindingMember) bool {
		if p, ok := o.memberPrincipal(m.Href); ok {
			targets = append(targets, p.target)
			o.unassignCustom(by, p, cr.ID, rs.ID)
		}
		return true
	})
	rs.Bindings.del(cr.ID)
	if by != nil {
		o.emit("iam.resourceset.bindings.delete", "Delete admin role assignment", *by, append([]LogActor{resourceSetTarget(rs), roleTarget(cr)}, targets...)...)
	}
	return nil
}

// RemoveBindingMember removes one member, by its id, from a binding, and
// its admin assignment. A binding whose last member goes is gone too: a
// binding is nothing but its assignments.
func (o *Org) RemoveBindingMember(by *LogActor, resourceSetRef, roleRef, memberID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, cr, b, err := o.binding(resourceSetRef, roleRef)
	if err != nil {
		return err
	}
	m, ok := b.Members.get(memberID)
	if !ok {
		return fmt.Errorf("member %s of binding %s on %s: %w", memberID, cr.ID, rs.ID, ErrNotFound)
	}
	b.Members.del(memberID)
	targets := []LogActor{resourceSetTarget(rs), roleTarget(cr)}
	if p, ok := o.memberPrincipal(m.Href); ok {
		o.unassignCustom(by, p, cr.ID, rs.ID)
		targets = append(targets, p.target)
	}
	if b.Members.len() == 0 {
		rs.Bindings.del(cr.ID)
	}
	if by != nil {
		o.emit("iam.resourceset.bindings.delete", "Delete admin role assignment", *by, targets...)
	}
	return nil
}

// syncBindingMember keeps bindings in step with a CUSTOM role assignment
// made or removed elsewhere (POST /users/{id}/roles with type CUSTOM, ...),
// since in Okta both are the same assignment; o.mu must be held for
// writing. It is idempotent, so the binding paths here may run it too.
func (o *Org) syncBindingMember(ra *RoleAssignment, added bool) {
	if ra.Type != "CUSTOM" {
		return
	}
	rs, ok := o.resourceSets.get(ra.ResourceSetID)
	if !ok {
		return
	}
	href := o.href(principalPath(ra.AssignmentType, ra.PrincipalID))
	b, ok := rs.Bindings.get(ra.CustomRoleID)
	if added {
		if !ok {
			b = &Binding{RoleID: ra.CustomRoleID, Members: newOrdered[*BindingMember]()}
			rs.Bindings.put(b.RoleID, b)
		}
		if findMember(b, href) == nil {
			now := o.clock.Now()
			m := &BindingMember{ID: o.newID("irb"), Href: href, Created: now, LastUpdated: now}
			b.Members.put(m.ID, m)
		}
		return
	}
	if !ok {
		return
	}
	if m := findMember(b, href); m != nil {
		b.Members.del(m.ID)
	}
	if b.Members.len() == 0 {
		rs.Bindings.del(b.RoleID)
	}
}

// bind is BindResourceSet and AddBindingMembers; o.mu is held. Every member
// is checked before anything changes, so a bad one changes nothing.
func (o *Org) bind(by *LogActor, rsRef, roleRef string, hrefs []string, mustExist bool) (*Binding, error) {
	rs, err := o.resourceSet(rsRef)
	if err != nil {
		return nil, err
	}
	cr, err := o.customRole(roleRef)
	if err != nil {
		return nil, err
	}
	b, exists := rs.Bindings.get(cr.ID)
	if mustExist && !exists {
		return nil, fmt.Errorf("binding of role %s on resource set %s: %w", cr.ID, rs.ID, ErrNotFound)
	}
	if len(hrefs) == 0 {
		return nil, fmt.Errorf("members: at least one member is required: %w", ErrInvalid)
	}
	principals := make([]iamPrincipal, 0, len(hrefs))
	for _, h := range hrefs {
		p, err := o.parseMember(h)
		if err != nil {
			return nil, err
		}
		principals = append(principals, p)
	}
	if !exists {
		b = &Binding{RoleID: cr.ID, Members: newOrdered[*BindingMember]()}
		rs.Bindings.put(cr.ID, b)
	}
	now := o.clock.Now()
	var targets []LogActor
	for _, p := range principals {
		href := o.href(principalPath(p.typ, p.id))
		if findMember(b, href) != nil {
			continue
		}
		m := &BindingMember{ID: o.newID("irb"), Href: href, Created: now, LastUpdated: now}
		b.Members.put(m.ID, m)
		if _, err := o.assignRole(by, p.typ, p.id, "CUSTOM", cr.ID, rs.ID); err != nil {
			// Cannot happen: principal, role and set were all checked above.
			return nil, fmt.Errorf("assign %s to %s %s: %w", cr.ID, p.typ, p.id, err)
		}
		targets = append(targets, p.target)
	}
	if by != nil && len(targets) > 0 {
		o.emit("iam.resourceset.bindings.add", "Create admin role assignment", *by, append([]LogActor{resourceSetTarget(rs), roleTarget(cr)}, targets...)...)
	}
	return b, nil
}

// unassignCustom removes the CUSTOM assignment of a role on a resource set
// from a principal, with its System Log event; o.mu is held.
func (o *Org) unassignCustom(by *LogActor, p iamPrincipal, roleID, rsID string) {
	set := o.roles[roleKey(p.typ, p.id)]
	if set == nil {
		return
	}
	var id string
	set.each(func(k string, ra *RoleAssignment) bool {
		if ra.Type == "CUSTOM" && ra.CustomRoleID == roleID && ra.ResourceSetID == rsID {
			id = k
			return false
		}
		return true
	})
	if id == "" || !set.del(id) {
		return
	}
	o.emitRoleRevoke(by, p.typ, p.id)
}

// customRole finds a custom role by id or label; o.mu is held.
func (o *Org) customRole(ref string) (*CustomRole, error) {
	if cr, ok := o.customRoles.get(ref); ok {
		return cr, nil
	}
	var found *CustomRole
	o.customRoles.each(func(_ string, cr *CustomRole) bool {
		if cr.Label == ref {
			found = cr
			return false
		}
		return true
	})
	if found == nil {
		return nil, fmt.Errorf("custom role %s: %w", ref, ErrNotFound)
	}
	return found, nil
}

// resourceSet finds a resource set by id or label; o.mu is held.
func (o *Org) resourceSet(ref string) (*ResourceSet, error) {
	if rs, ok := o.resourceSets.get(ref); ok {
		return rs, nil
	}
	var found *ResourceSet
	o.resourceSets.each(func(_ string, rs *ResourceSet) bool {
		if rs.Label == ref {
			found = rs
			return false
		}
		return true
	})
	if found == nil {
		return nil, fmt.Errorf("resource set %s: %w", ref, ErrNotFound)
	}
	return found, nil
}

// binding finds the binding of a role (id or label) on a resource set (id
// or label); o.mu is held.
func (o *Org) binding(rsRef, roleRef string) (*ResourceSet, *CustomRole, *Binding, error) {
	rs, err := o.resourceSet(rsRef)
	if err != nil {
		return nil, nil, nil, err
	}
	cr, err := o.customRole(roleRef)
	if err != nil {
		return nil, nil, nil, err
	}
	b, ok := rs.Bindings.get(cr.ID)
	if !ok {
		return nil, nil, nil, fmt.Errorf("binding of role %s on resource set %s: %w", cr.ID, rs.ID, ErrNotFound)
	}
	return rs, cr, b, nil
}

func (o *Org) checkRoleFields(self *CustomRole, label, description string) error {
	if strings.TrimSpace(label) == "" {
		return fmt.Errorf("label: the field cannot be left blank: %w", ErrInvalid)
	}
	if strings.TrimSpace(description) == "" {
		return fmt.Errorf("description: the field cannot be left blank: %w", ErrInvalid)
	}
	if cr, err := o.customRole(label); err == nil && cr != self {
		return fmt.Errorf("label: a custom role named %s already exists: %w", label, ErrInvalid)
	}
	return nil
}

func (o *Org) checkResourceSetFields(self *ResourceSet, label, description string) error {
	if strings.TrimSpace(label) == "" {
		return fmt.Errorf("label: the field cannot be left blank: %w", ErrInvalid)
	}
	if strings.TrimSpace(description) == "" {
		return fmt.Errorf("description: the field cannot be left blank: %w", ErrInvalid)
	}
	if rs, err := o.resourceSet(label); err == nil && rs != self {
		return fmt.Errorf("label: a resource set named %s already exists: %w", label, ErrInvalid)
	}
	return nil
}

// checkPermissions validates a new role's permissions, without duplicates.
func checkPermissions(permissions []string) ([]string, error) {
	if len(permissions) == 0 {
		return nil, fmt.Errorf("permissions: a custom role needs at least one permission: %w", ErrInvalid)
	}
	out := make([]string, 0, len(permissions))
	for _, p := range permissions {
		if !customRolePermissions[p] {
			return nil, fmt.Errorf("permissions: %q is not an Okta permission: %w", p, ErrInvalid)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// customRoleInUse reports whether a custom role is bound or assigned anywhere.
func (o *Org) customRoleInUse(roleID string) bool {
	used := false
	o.resourceSets.each(func(_ string, rs *ResourceSet) bool {
		_, used = rs.Bindings.get(roleID)
		return !used
	})
	return used || o.customAssignmentsOn(roleID, "")
}

// customAssignmentsOn reports whether any CUSTOM assignment names the role
// (when roleID is set) or the resource set (when rsID is set).
func (o *Org) customAssignmentsOn(roleID, rsID string) bool {
	for _, set := range o.roles {
		found := false
		set.each(func(_ string, ra *RoleAssignment) bool {
			found = ra.Type == "CUSTOM" && (roleID == "" || ra.CustomRoleID == roleID) && (rsID == "" || ra.ResourceSetID == rsID)
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// resourceRef is one resource of a resource set in both of Okta's forms.
type resourceRef struct {
	orn  string
	path string // REST path under the org URL, "/api/v1/groups/00g..."
	// kind is users, groups or apps for a whole collection, else empty.
	kind string
}

// resolveResources turns ORNs and REST URLs into resources, refusing any
// Okta would not accept (unknown form, other org, missing object), without
// duplicates; o.mu is held.
func (o *Org) resolveResources(in []string) ([]resourceRef, error) {
	out := make([]resourceRef, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		ref, err := o.resolveResource(s)
		if err != nil {
			return nil, err
		}
		if !seen[ref.orn] {
			seen[ref.orn] = true
			out = append(out, ref)
		}
	}
	return out, nil
}

// resolveResource supports the directory and app resources governance uses:
// all users, a user, all groups, a group, a group's users, all apps, an app.
func (o *Org) resolveResource(s string) (resourceRef, error) {
	bad := func(why string) (resourceRef, error) {
		return resourceRef{}, fmt.Errorf("resources: %q %s: %w", s, why, ErrInvalid)
	}
	var parts []string // e.g. ["groups", "00g1", "users"]
	if strings.HasPrefix(s, "orn:") {
		f := strings.Split(s, ":")
		if len(f) < 5 || f[1] != "okta" || (f[2] != "directory" && f[2] != "idp") {
			return bad("is not a supported Okta Resource Name")
		}
		if f[3] != OrgID {
			return bad("names another org")
		}
		switch {
		case f[2] == "directory" && len(f) == 5 && (f[4] == "users" || f[4] == "groups"):
			parts = []string{f[4]}
		case f[2] == "directory" && len(f) == 6 && (f[4] == "users" || f[4] == "groups"):
			parts = []string{f[4], f[5]}
		case f[2] == "directory" && len(f) == 7 && f[4] == "groups" && f[6] == "contained_resources":
			parts = []string{"groups", f[5], "users"}
		case f[2] == "idp" && len(f) == 5 && f[4] == "apps":
			parts = []string{"apps"}
		case f[2] == "idp" && len(f) == 7 && f[4] == "apps":
			parts = []string{"apps", f[6]}
		default:
			return bad("is not a supported Okta Resource Name")
		}
	} else {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return bad("is neither an ORN nor a REST URL")
		}
		rest, ok := strings.CutPrefix(strings.TrimSuffix(u.Path, "/"), "/api/v1/")
		if !ok || rest == "" {
			return bad("is not an Okta API URL")
		}
		parts = strings.Split(rest, "/")
	}
	dir := "orn:okta:directory:" + OrgID + ":"
	switch {
	case len(parts) == 1 && (parts[0] == "users" || parts[0] == "groups"):
		return resourceRef{orn: dir + parts[0], path: "/api/v1/" + parts[0], kind: parts[0]}, nil
	case len(parts) == 1 && parts[0] == "apps":
		return resourceRef{orn: "orn:okta:idp:" + OrgID + ":apps", path: "/api/v1/apps", kind: "apps"}, nil
	case len(parts) == 2 && parts[0] == "users":
		if _, ok := o.users.get(parts[1]); !ok {
			return bad("names no user of this org")
		}
		return resourceRef{orn: dir + "users:" + parts[1], path: "/api/v1/users/" + parts[1]}, nil
	case len(parts) == 2 && parts[0] == "groups":
		if _, ok := o.groups.get(parts[1]); !ok {
			return bad("names no group of this org")
		}
		return resourceRef{orn: dir + "groups:" + parts[1], path: "/api/v1/groups/" + parts[1]}, nil
	case len(parts) == 3 && parts[0] == "groups" && parts[2] == "users":
		if _, ok := o.groups.get(parts[1]); !ok {
			return bad("names no group of this org")
		}
		return resourceRef{orn: dir + "groups:" + parts[1] + ":contained_resources", path: "/api/v1/groups/" + parts[1] + "/users"}, nil
	case len(parts) == 2 && parts[0] == "apps":
		a, ok := o.apps.get(parts[1])
		if !ok {
			return bad("names no app of this org")
		}
		return resourceRef{orn: "orn:okta:idp:" + OrgID + ":apps:" + a.Name + ":" + a.ID, path: "/api/v1/apps/" + a.ID}, nil
	}
	return bad("is not a supported resource")
}

func (o *Org) addResource(rs *ResourceSet, ref resourceRef, now time.Time) *Resource {
	r := &Resource{ID: o.newID("ire"), ORN: ref.orn, Href: o.href(ref.path), Created: now}
	rs.Resources.put(r.ID, r)
	return r
}

func (o *Org) findResource(rs *ResourceSet, orn string) *Resource {
	var found *Resource
	rs.Resources.each(func(_ string, r *Resource) bool {
		if r.ORN == orn {
			found = r
		}
		return found == nil
	})
	return found
}

func findMember(b *Binding, href string) *BindingMember {
	var found *BindingMember
	b.Members.each(func(_ string, m *BindingMember) bool {
		if m.Href == href {
			found = m
		}
		return found == nil
	})
	return found
}

// iamPrincipal is a binding member resolved to a user or group.
type iamPrincipal struct {
	typ    string // USER or GROUP
	id     string
	target LogActor
}

// parseMember resolves a member href of an existing user or group; any
// host is accepted, since clients send their own org URL.
func (o *Org) parseMember(href string) (iamPrincipal, error) {
	u, err := url.Parse(href)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return iamPrincipal{}, fmt.Errorf("members: %q is not the URL of a user or group: %w", href, ErrInvalid)
	}
	p, ok := o.principalAt(u.Path)
	if !ok {
		return iamPrincipal{}, fmt.Errorf("members: %q is not the URL of a user or group of this org: %w", href, ErrInvalid)
	}
	return p, nil
}

// memberPrincipal resolves a stored member href; false once its user or
// group is gone.
func (o *Org) memberPrincipal(href string) (iamPrincipal, bool) {
	return o.principalAt(strings.TrimPrefix(href, o.base))
}

func (o *Org) principalAt(path string) (iamPrincipal, bool) {
	if id, ok := strings.CutPrefix(path, "/api/v1/users/"); ok {
		if u, ok := o.users.get(id); ok {
			return iamPrincipal{typ: "USER", id: id, target: userTarget(u)}, true
		}
	}
	if id, ok := strings.CutPrefix(path, "/api/v1/groups/"); ok {
		if g, ok := o.groups.get(id); ok {
			return iamPrincipal{typ: "GROUP", id: id, target: groupTarget(g)}, true
		}
	}
	return iamPrincipal{}, false
}

func principalPath(typ, id string) string {
	if typ == "GROUP" {
		return "/api/v1/groups/" + id
	}
	return "/api/v1/users/" + id
}

// Targets of IAM System Log events.
func roleTarget(cr *CustomRole) LogActor {
	return LogActor{ID: cr.ID, Type: "CUSTOM_ROLE", AlternateID: cr.Label, DisplayName: cr.Label}
}

func resourceSetTarget(rs *ResourceSet) LogActor {
	return LogActor{ID: rs.ID, Type: "RESOURCE_SET", AlternateID: rs.Label, DisplayName: rs.Label}
}

func permissionTarget(p string) LogActor {
	return LogActor{ID: p, Type: "PERMISSION", AlternateID: p, DisplayName: p}
}
