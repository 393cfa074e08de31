package oktasim

import (
	"errors"
	"net/http"
	"strings"
)

// Standard role assignments of users and groups:
// /api/v1/users/{userId}/roles[/{roleAssignmentId}] and the group variant.
// Reading needs a token that may read roles (super admin, or a custom role
// with okta.iam.read), writing one that may write them.

func (s *Server) routesRoles() {
	for _, kind := range []roleKind{
		{principal: "USER", param: "userId", prefix: "/api/v1/users/"},
		{principal: "GROUP", param: "groupId", prefix: "/api/v1/groups/"},
	} {
		s.handle(kind.prefix+"{"+kind.param+"}/roles", map[string]http.HandlerFunc{
			http.MethodGet:  s.listRoles(kind),
			http.MethodPost: s.assignRole(kind),
		})
		s.handle(kind.prefix+"{"+kind.param+"}/roles/{roleAssignmentId}", map[string]http.HandlerFunc{
			http.MethodGet:    s.getRole(kind),
			http.MethodDelete: s.unassignRole(kind),
		})
	}
}

// roleKind is the principal side of the role endpoints: users or groups.
type roleKind struct {
	principal string // USER or GROUP
	param     string // the path parameter naming the principal
	prefix    string
}

// principalExists reports whether the principal of a request exists; o.mu
// is held.
func (k roleKind) principalExists(o *Org, id string) bool {
	if k.principal == "GROUP" {
		_, ok := o.groups.get(id)
		return ok
	}
	_, ok := o.users.get(id)
	return ok
}

func (k roleKind) notFound(w http.ResponseWriter, id string) {
	if k.principal == "GROUP" {
		groupNotFound(w, id)
		return
	}
	userNotFound(w, id)
}

func roleAssignmentNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, codeNotFound, "Not found: Resource not found: "+id+" (RoleAssignment)")
}

// listRoles is GET .../roles: every assignment of the principal, a plain
// array (not paged).
func (s *Server) listRoles(k roleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canReadRoles) {
			return
		}
		id := r.PathValue(k.param)
		o := s.org
		o.mu.RLock()
		if !k.principalExists(o, id) {
			o.mu.RUnlock()
			k.notFound(w, id)
			return
		}
		out := []any{}
		if set := o.roles[roleKey(k.principal, id)]; set != nil {
			set.each(func(_ string, ra *RoleAssignment) bool {
				out = append(out, o.roleAssignmentView(ra))
				return true
			})
		}
		o.mu.RUnlock()
		writeJSON(w, http.StatusOK, out)
	}
}

// getRole is GET .../roles/{roleAssignmentId}.
func (s *Server) getRole(k roleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canReadRoles) {
			return
		}
		id, raID := r.PathValue(k.param), r.PathValue("roleAssignmentId")
		o := s.org
		o.mu.RLock()
		exists := k.principalExists(o, id)
		var view any
		if set := o.roles[roleKey(k.principal, id)]; exists && set != nil {
			if ra, ok := set.get(raID); ok {
				view = o.roleAssignmentView(ra)
			}
		}
		o.mu.RUnlock()
		switch {
		case !exists:
			k.notFound(w, id)
		case view == nil:
			roleAssignmentNotFound(w, raID)
		default:
			writeJSON(w, http.StatusOK, view)
		}
	}
}

// roleRequest is the body of a role assignment: a standard role type, or
// CUSTOM with a custom role and a resource set.
type roleRequest struct {
	Type        string `json:"type"`
	Role        string `json:"role"`
	ResourceSet string `json:"resource-set"`
}

// assignRole is POST .../roles: 201 with the new assignment. A role the
// principal holds already is 409 E0000090 (Okta's duplicate role
// assignment); a group must be neither BUILT_IN (400 E0000211) nor larger
// than 5000 members (400 E0000193).
func (s *Server) assignRole(k roleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteRoles) {
			return
		}
		var body roleRequest
		if !decodeBody(w, r, &body) {
			return
		}
		if causes := body.check(); len(causes) > 0 {
			invalid(w, causes...)
			return
		}
		if body.Type != "CUSTOM" {
			body.Role, body.ResourceSet = "", ""
		}
		id := r.PathValue(k.param)
		actor := actorOf(r)
		o := s.org
		o.mu.Lock()
		status, code, summary, view := s.assignRoleLocked(k, id, body, &actor)
		o.mu.Unlock()
		switch {
		case status == http.StatusNotFound && code == "":
			k.notFound(w, id)
		case status != http.StatusCreated:
			writeError(w, status, code, summary)
		default:
			writeJSON(w, http.StatusCreated, view)
		}
	}
}

// check validates a role request as the spec's request schemas do.
func (b roleRequest) check() []string {
	if b.Type == "" {
		return []string{"type: The field cannot be left blank"}
	}
	if _, ok := roleLabels[b.Type]; !ok {
		return []string{"type: Does not match one of the role types: " + strings.Join(roleTypeNames(), ", ")}
	}
	var causes []string
	if b.Type == "CUSTOM" {
		if b.Role == "" {
			causes = append(causes, "role: The field cannot be left blank")
		}
		if b.ResourceSet == "" {
			causes = append(causes, "resource-set: The field cannot be left blank")
		}
	}
	return causes
}

// roleTypeNames lists the role types in the spec's order.
func roleTypeNames() []string {
	return []string{"ACCESS_CERTIFICATIONS_ADMIN", "ACCESS_REQUESTS_ADMIN", "API_ACCESS_MANAGEMENT_ADMIN", "APP_ADMIN",
		"CUSTOM", "GROUP_MEMBERSHIP_ADMIN", "HELP_DESK_ADMIN", "ORG_ADMIN", "READ_ONLY_ADMIN", "REPORT_ADMIN",
		"SUPER_ADMIN", "USER_ADMIN", "WORKFLOWS_ADMIN"}
}

// assignRoleLocked makes the assignment with o.mu held for writing, so the
// duplicate check and the assignment are one step. It answers the status
// and, for an error, its code and summary (an empty code with 404 means
// the principal was not found).
func (s *Server) assignRoleLocked(k roleKind, id string, body roleRequest, by *LogActor) (int, string, string, any) {
	o := s.org
	if !k.principalExists(o, id) {
		return http.StatusNotFound, "", "", nil
	}
	if k.principal == "GROUP" {
		g, _ := o.groups.get(id)
		if g.Type == GroupBuiltIn {
			return http.StatusBadRequest, codeRoleBuiltInGroup, "Roles cannot be granted to built-in groups: " + g.Name, nil
		}
		if g.members.len() > maxRoleGroupMembers {
			return http.StatusBadRequest, codeRoleGroupTooBig, "Roles can only be granted to groups with 5000 or less users.", nil
		}
	}
	if set := o.roles[roleKey(k.principal, id)]; set != nil {
		dup := false
		set.each(func(_ string, ra *RoleAssignment) bool {
			dup = ra.Type == body.Type && ra.CustomRoleID == body.Role && ra.ResourceSetID == body.ResourceSet
			return !dup
		})
		if dup {
			return http.StatusConflict, codeDuplicateRole, "The role specified is already assigned to the user.", nil
		}
	}
	ra, err := o.assignRole(by, k.principal, id, body.Type, body.Role, body.ResourceSet)
	switch {
	case errors.Is(err, ErrNotFound):
		// The principal exists, so what is missing is the custom role or
		// the resource set.
		what := body.Role + " (CustomRole)"
		if _, ok := o.customRoles.get(body.Role); ok {
			what = body.ResourceSet + " (ResourceSet)"
		}
		return http.StatusNotFound, codeNotFound, "Not found: Resource not found: " + what, nil
	case err != nil:
		return http.StatusBadRequest, codeValidation, "Api validation failed: " + err.Error(), nil
	}
	return http.StatusCreated, "", "", o.roleAssignmentView(ra)
}

// unassignRole is DELETE .../roles/{roleAssignmentId}: 204.
func (s *Server) unassignRole(k roleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, canWriteRoles) {
			return
		}
		id, raID := r.PathValue(k.param), r.PathValue("roleAssignmentId")
		actor := actorOf(r)
		o := s.org
		o.mu.Lock()
		exists := k.principalExists(o, id)
		var ra *RoleAssignment
		if exists {
			ra, _ = o.unassignRole(&actor, k.principal, id, raID)
		}
		o.mu.Unlock()
		switch {
		case !exists:
			k.notFound(w, id)
		case ra == nil:
			roleAssignmentNotFound(w, raID)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// emitRoleRevoke logs the revocation of a principal's admin role, as
// UnassignRole (model.go) does; o.mu is held for writing.
func (o *Org) emitRoleRevoke(by *LogActor, principalType, id string) {
	if by == nil {
		return
	}
	if principalType == "GROUP" {
		if g, ok := o.groups.get(id); ok {
			o.emit("group.privilege.revoke", "Revoke user privilege", *by, groupTarget(g))
		}
		return
	}
	if u, ok := o.users.get(id); ok {
		o.emit("user.account.privilege.revoke", "Revoke user privilege", *by, userTarget(u))
	}
}
