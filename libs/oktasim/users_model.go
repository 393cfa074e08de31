package oktasim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Users-area model: user lifecycle and profile, group profile and deletion,
// role assignment rendering, and the read-side view of Okta's eventually
// consistent group membership (Faults.MembershipLag).

// errUserAlreadyActive is activation of a user who is active already, which
// Okta answers with its own code (403 E0000016) rather than E0000001.
var errUserAlreadyActive = errors.New("activation failed because the user is already active")

// Lifecycle actions of /api/v1/users/{id}/lifecycle/{action}.
const (
	actActivate   = "activate"
	actReactivate = "reactivate"
	actDeactivate = "deactivate"
	actSuspend    = "suspend"
	actUnsuspend  = "unsuspend"
)

// statusMove is one status change with the System Log event that records it.
type statusMove struct {
	to      string
	event   string
	message string
}

// lifecycleMove decides what an API lifecycle action does to a user in its
// current status, by the rules of Okta's UserLifecycle operations: activate
// only STAGED or DEPROVISIONED users, reactivate only PROVISIONED or
// RECOVERY, suspend only ACTIVE, unsuspend only SUSPENDED, deactivate any
// user not DEPROVISIONED already.
func lifecycleMove(u *User, action string) (statusMove, error) {
	cur := u.Status
	switch action {
	case actActivate:
		switch cur {
		case "STAGED", "DEPROVISIONED":
			// A user without a password must finish the welcome flow first,
			// so Okta leaves them PROVISIONED ("pending user action").
			to := "PROVISIONED"
			if !u.PasswordChanged.IsZero() {
				to = "ACTIVE"
			}
			return statusMove{to, "user.lifecycle.activate", "Activate Okta user"}, nil
		case "ACTIVE":
			return statusMove{}, errUserAlreadyActive
		}
	case actReactivate:
		if cur == "PROVISIONED" || cur == "RECOVERY" {
			return statusMove{"PROVISIONED", "user.lifecycle.reactivate", "Reactivate Okta user"}, nil
		}
	case actDeactivate:
		if cur != "DEPROVISIONED" {
			return statusMove{"DEPROVISIONED", "user.lifecycle.deactivate", "Deactivate Okta user"}, nil
		}
	case actSuspend:
		if cur == "ACTIVE" {
			return statusMove{"SUSPENDED", "user.lifecycle.suspend", "Suspend Okta user"}, nil
		}
	case actUnsuspend:
		if cur == "SUSPENDED" {
			return statusMove{"ACTIVE", "user.lifecycle.unsuspend", "Unsuspend Okta user"}, nil
		}
	default:
		return statusMove{}, fmt.Errorf("lifecycle operation %q: %w", action, ErrNotFound)
	}
	return statusMove{}, fmt.Errorf("cannot %s a user whose status is %s: %w", action, cur, ErrInvalid)
}

// statusMoveTo decides how a user reaches a target status, for
// SetUserStatus: the API lifecycle operations, plus the changes that happen
// in Okta outside the API (a user finishing activation, locking themselves
// out, a password expiring or being reset), so the simulator's own
// endpoints can reproduce them with the events Okta would log.
func statusMoveTo(u *User, to string) (statusMove, error) {
	cur := u.Status
	invalid := fmt.Errorf("user status %s cannot change to %s: %w", cur, to, ErrInvalid)
	if cur == to {
		return statusMove{}, invalid
	}
	switch to {
	case "DEPROVISIONED":
		return lifecycleMove(u, actDeactivate)
	case "SUSPENDED":
		return lifecycleMove(u, actSuspend)
	case "ACTIVE":
		switch cur {
		case "SUSPENDED":
			return lifecycleMove(u, actUnsuspend)
		case "STAGED", "DEPROVISIONED", "PROVISIONED":
			return statusMove{"ACTIVE", "user.lifecycle.activate", "Activate Okta user"}, nil
		case "LOCKED_OUT":
			return statusMove{"ACTIVE", "user.account.unlock_by_admin", "User account unlock by admin"}, nil
		case "PASSWORD_EXPIRED", "RECOVERY":
			return statusMove{"ACTIVE", "user.account.update_password", "User update password for Okta"}, nil
		}
	case "PROVISIONED":
		switch cur {
		case "STAGED", "DEPROVISIONED":
			return statusMove{"PROVISIONED", "user.lifecycle.activate", "Activate Okta user"}, nil
		case "RECOVERY":
			return lifecycleMove(u, actReactivate)
		}
	case "LOCKED_OUT":
		if cur == "ACTIVE" {
			return statusMove{"LOCKED_OUT", "user.account.lock", "Max sign in attempts exceeded"}, nil
		}
	case "PASSWORD_EXPIRED":
		if cur == "ACTIVE" {
			return statusMove{"PASSWORD_EXPIRED", "user.account.expire_password", "Expire user password"}, nil
		}
	case "RECOVERY":
		switch cur {
		case "ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT":
			return statusMove{"RECOVERY", "user.account.reset_password", "Reset user password"}, nil
		}
	}
	return statusMove{}, invalid
}

// applyStatus moves a user to m.to and logs it; o.mu is held for writing.
func (o *Org) applyStatus(by *LogActor, u *User, m statusMove) {
	now := o.clock.Now()
	prev := u.Status
	u.Status = m.to
	if m.to != prev {
		// Reactivating a PROVISIONED user only renews its activation.
		u.StatusChanged = now
	}
	u.LastUpdated = now
	if m.to == "ACTIVE" {
		switch prev {
		case "STAGED", "PROVISIONED", "DEPROVISIONED":
			// activated is when the user last became ACTIVE from not being
			// a working account; finishing activation sets a password.
			u.Activated = now
			if u.PasswordChanged.IsZero() {
				u.PasswordChanged = now
			}
		}
	}
	u.raw = render(o.userView(u))
	if by != nil {
		o.emit(m.event, m.message, *by, userTarget(u))
	}
	// Okta takes every app away from a deactivated user, and gives back
	// those of its groups when the user comes back; direct assignments
	// are not restored.
	switch {
	case m.to == "DEPROVISIONED":
		o.unassignUserFromAllApps(by, u)
	case prev == "DEPROVISIONED":
		o.restoreGroupApps(by, u)
	}
}

// SetUserStatus moves a user to a status the way Okta gets there
// (deactivate, suspend, unsuspend, activate, reactivate, and the sign-in
// driven LOCKED_OUT, PASSWORD_EXPIRED and RECOVERY), with that change's
// System Log event. A change Okta has no way to make (back to STAGED, or
// suspending a user who is not ACTIVE) is ErrInvalid.
func (o *Org) SetUserStatus(by *LogActor, userID, status string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.users.get(userID)
	if !ok {
		return fmt.Errorf("set status of user %s: %w", userID, ErrNotFound)
	}
	m, err := statusMoveTo(u, status)
	if err != nil {
		return fmt.Errorf("set status of user %s: %w", userID, err)
	}
	o.applyStatus(by, u, m)
	return nil
}

// userLifecycle runs an API lifecycle operation; o.mu is held for writing.
func (o *Org) userLifecycle(by *LogActor, u *User, action string) error {
	m, err := lifecycleMove(u, action)
	if err != nil {
		return fmt.Errorf("%s user %s: %w", action, u.ID, err)
	}
	o.applyStatus(by, u, m)
	return nil
}

// UpdateUserProfile replaces a user's profile. Login must stay unique and
// login, email, firstName and lastName set (Okta's base profile requires
// them). A DEPROVISIONED user's profile is not writable, as in an org
// without "Edit deactivated user profiles" (Okta answers E0000038).
func (o *Org) UpdateUserProfile(by *LogActor, userID string, p UserProfile) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.users.get(userID)
	if !ok {
		return fmt.Errorf("update profile of user %s: %w", userID, ErrNotFound)
	}
	return o.updateUserProfile(by, u, p)
}

func (o *Org) updateUserProfile(by *LogActor, u *User, p UserProfile) error {
	if u.Status == "DEPROVISIONED" {
		return fmt.Errorf("update profile of deactivated user %s: %w", u.ID, ErrNotWritable)
	}
	if err := checkProfile(p); err != nil {
		return fmt.Errorf("update profile of user %s: %w", u.ID, err)
	}
	if p.Login != u.Profile.Login {
		if other, dup := o.usersByLogin[p.Login]; dup && other != u {
			return fmt.Errorf("login %s already exists: %w", p.Login, ErrInvalid)
		}
		delete(o.usersByLogin, u.Profile.Login)
		o.usersByLogin[p.Login] = u
	}
	if p == u.Profile {
		return nil
	}
	u.Profile = p
	u.LastUpdated = o.clock.Now()
	u.raw = render(o.userView(u))
	// App users show the user's login and names.
	o.appUserChanged(u)
	if by != nil {
		o.emit("user.account.update_profile", "Update user profile for Okta", *by, userTarget(u))
	}
	return nil
}

// profileError is an ErrInvalid naming the profile properties at fault, so
// a handler can list them as Okta's errorCauses.
type profileError struct{ causes []string }

func (e *profileError) Error() string {
	return fmt.Sprintf("invalid profile: %v", e.causes)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *profileError) Unwrap() error { return ErrInvalid }

// checkProfile requires what Okta's default user schema requires.
func checkProfile(p UserProfile) error {
	var causes []string
	for _, f := range []struct{ name, v string }{
		{"login", p.Login}, {"email", p.Email}, {"firstName", p.FirstName}, {"lastName", p.LastName},
	} {
		if f.v == "" {
			causes = append(causes, f.name+": The field cannot be left blank")
		}
	}
	if len(causes) > 0 {
		return &profileError{causes}
	}
	return nil
}

// DeleteUser deletes a user for good, as Okta's second DELETE does: a user
// not DEPROVISIONED yet is deactivated first (with its event), then the
// user's group memberships, direct app assignments, admin roles and API
// tokens go with it, and user.lifecycle.delete.initiated is logged.
func (o *Org) DeleteUser(by *LogActor, userID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.users.get(userID)
	if !ok {
		return fmt.Errorf("delete user %s: %w", userID, ErrNotFound)
	}
	if u.Status != "DEPROVISIONED" {
		if err := o.userLifecycle(by, u, actDeactivate); err != nil {
			return fmt.Errorf("delete user %s: %w", userID, err)
		}
	}
	o.purgeUser(by, u)
	return nil
}

// purgeUser removes a DEPROVISIONED user and everything that names it;
// o.mu is held for writing.
func (o *Org) purgeUser(by *LogActor, u *User) {
	// Okta logs the deletion, not each membership it takes along: the
	// membership removals are silent, but still keep app users in step.
	for _, gid := range o.sortedGroupIDs(u) {
		if g, ok := o.groups.get(gid); ok {
			o.removeMember(nil, g, u)
		}
	}
	// A deactivated user has no apps left; state built without history
	// may still hold some, and they cannot outlive the user.
	o.unassignUserFromAllApps(by, u)
	if set := o.roles[roleKey("USER", u.ID)]; set != nil {
		set.each(func(_ string, ra *RoleAssignment) bool {
			o.syncBindingMember(ra, false)
			return true
		})
		delete(o.roles, roleKey("USER", u.ID))
	}
	for tok, uid := range o.tokens {
		if uid == u.ID {
			delete(o.tokens, tok)
		}
	}
	target := userTarget(u)
	o.users.del(u.ID)
	if o.usersByLogin[u.Profile.Login] == u {
		delete(o.usersByLogin, u.Profile.Login)
	}
	if by != nil {
		o.emit("user.lifecycle.delete.initiated", "Delete Okta user initiated", *by, target)
	}
}

// UpdateGroup replaces the profile (name and description) of an OKTA_GROUP;
// APP_GROUP profiles come from their app's imports and BUILT_IN ones are
// Okta's, so neither is writable (ErrNotWritable).
func (o *Org) UpdateGroup(by *LogActor, groupID, name, description string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	g, ok := o.groups.get(groupID)
	if !ok {
		return fmt.Errorf("update group %s: %w", groupID, ErrNotFound)
	}
	return o.updateGroup(by, g, name, description)
}

func (o *Org) updateGroup(by *LogActor, g *Group, name, description string) error {
	if g.Type != GroupOkta {
		return fmt.Errorf("update %s %s: %w", g.Type, g.ID, ErrNotWritable)
	}
	if name == "" {
		return fmt.Errorf("update group %s: name: %w", g.ID, &profileError{[]string{"name: The field cannot be left blank"}})
	}
	if g.Name == name && g.Description == description {
		return nil
	}
	g.Name, g.Description = name, description
	g.LastUpdated = o.clock.Now()
	g.raw = render(o.groupView(g))
	if by != nil {
		o.emit("group.profile.update", "Update Okta group profile", *by, groupTarget(g))
	}
	return nil
}

// DeleteGroup deletes an OKTA_GROUP or APP_GROUP (BUILT_IN groups are
// Okta's own: ErrNotWritable) with its app assignments, memberships and
// admin role assignments, and logs group.lifecycle.delete.
func (o *Org) DeleteGroup(by *LogActor, groupID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	g, ok := o.groups.get(groupID)
	if !ok {
		return fmt.Errorf("delete group %s: %w", groupID, ErrNotFound)
	}
	if g.Type == GroupBuiltIn {
		return fmt.Errorf("delete %s group %s: %w", g.Type, g.ID, ErrNotWritable)
	}
	// App assignments go first, while the members still say who loses
	// what (each with its events, as Okta logs them).
	o.unassignGroupFromAllApps(by, g)
	// Okta logs the deletion, not each membership it takes along. The app
	// access is gone already, so the members only forget the group: one
	// pass, not a removal (and a re-render) per member.
	g.members.each(func(_ string, u *User) bool {
		delete(u.groups, g.ID)
		return true
	})
	g.members = newOrdered[*User]()
	if set := o.roles[roleKey("GROUP", g.ID)]; set != nil {
		set.each(func(_ string, ra *RoleAssignment) bool {
			o.syncBindingMember(ra, false)
			return true
		})
		delete(o.roles, roleKey("GROUP", g.ID))
	}
	o.groups.del(g.ID)
	if by != nil {
		o.emit("group.lifecycle.delete", "Delete Okta group", *by, groupTarget(g))
	}
	return nil
}

// setMembership adds (or removes) a user to (from) a group as the API does,
// logging the membership event and then the app assignments it gives or
// takes (application.user_membership.add/remove), as Okta does; it reports
// whether anything changed. o.mu is held for writing.
func (o *Org) setMembership(by *LogActor, g *Group, u *User, add bool) bool {
	if add {
		return o.addMember(by, g, u)
	}
	return o.removeMember(by, g, u)
}

// sortedGroupIDs lists the groups of a user in the org's group order, since
// u.groups is a set; o.mu is held.
func (o *Org) sortedGroupIDs(u *User) []string {
	ids := make([]string, 0, len(u.groups))
	for gid := range u.groups {
		ids = append(ids, gid)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmpSeq(o.groups.byID[a], o.groups.byID[b])
	})
	return ids
}

func cmpSeq[T any](a, b *entry[T]) int {
	switch {
	case a == nil || b == nil:
		return 0
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// roleAssignmentView is the JSON shape of a role assignment (spec:
// StandardRole, or CustomRole for CUSTOM and the IAM-based standard roles);
// o.mu is held.
func (o *Org) roleAssignmentView(ra *RoleAssignment) any {
	assignee := o.href(principalPath(ra.AssignmentType, ra.PrincipalID))
	v := roleAssignmentJSON{
		ID: ra.ID, Label: ra.Label, Type: ra.Type, Status: ra.Status,
		Created: oktaTime(ra.Created), LastUpdated: oktaTime(ra.LastUpdated),
		AssignmentType: ra.AssignmentType,
		Links:          map[string]any{"assignee": map[string]any{"href": assignee}},
	}
	switch {
	case ra.Type == "CUSTOM":
		v.Role, v.ResourceSet = ra.CustomRoleID, ra.ResourceSetID
		v.Links["role"] = map[string]any{"href": o.href("/api/v1/iam/roles/" + ra.CustomRoleID)}
		v.Links["permissions"] = map[string]any{"href": o.href("/api/v1/iam/roles/" + ra.CustomRoleID + "/permissions")}
		v.Links["resource-set"] = map[string]any{"href": o.href("/api/v1/iam/resource-sets/" + ra.ResourceSetID)}
		if rs, ok := o.resourceSets.get(ra.ResourceSetID); ok && rs.Bindings != nil {
			if b, ok := rs.Bindings.get(ra.CustomRoleID); ok && b.Members != nil {
				b.Members.each(func(id string, m *BindingMember) bool {
					if m.Href != assignee {
						return true
					}
					v.Links["member"] = map[string]any{"href": o.href("/api/v1/iam/resource-sets/" + rs.ID + "/bindings/" + ra.CustomRoleID + "/members/" + id)}
					return false
				})
			}
		}
	case iamBasedStandardRoles[ra.Type]:
		// IAM-based standard roles are answered in the custom role shape,
		// their role named by type (spec example IAMStandardRoleResponseUser).
		v.Role = ra.Type
		v.Links["role"] = map[string]any{"href": o.href("/api/v1/iam/roles/" + ra.Type)}
		v.Links["permissions"] = map[string]any{"href": o.href("/api/v1/iam/roles/" + ra.Type + "/permissions")}
	}
	return v
}

// iamBasedStandardRoles are the standard roles Okta implements as IAM roles.
var iamBasedStandardRoles = map[string]bool{
	"WORKFLOWS_ADMIN": true, "ACCESS_CERTIFICATIONS_ADMIN": true, "ACCESS_REQUESTS_ADMIN": true,
}

type roleAssignmentJSON struct {
	ID             string         `json:"id"`
	Label          string         `json:"label"`
	Type           string         `json:"type"`
	Status         string         `json:"status"`
	Created        oktaTime       `json:"created"`
	LastUpdated    oktaTime       `json:"lastUpdated"`
	AssignmentType string         `json:"assignmentType"`
	Role           string         `json:"role,omitempty"`
	ResourceSet    string         `json:"resource-set,omitempty"`
	Links          map[string]any `json:"_links"`
}

// membershipEcho is what a membership read must still pretend within the
// MembershipLag window: members added too recently to be seen yet, and
// members removed too recently to be gone yet.
type membershipEcho struct {
	hidden map[string]bool // "userID/groupID" of members not yet visible
	ghosts []memberGhost   // removed memberships still visible, oldest first
}

// memberGhost is a recently removed membership, identified by the System
// Log sequence of its removal.
type memberGhost struct {
	userID, groupID string
	seq             uint64
}

func pairKey(userID, groupID string) string { return userID + "/" + groupID }

// recentMembership reads the membership changes of the last lag from the
// System Log, which records each change made by an actor (the generator's
// history-less state is old by definition). For every (user, group) pair
// changed in the window, the oldest change tells what readers still see:
// an add means the user was not a member before it, a remove that the user
// was. want selects the pairs of interest. o.mu is held.
func (o *Org) recentMembership(lag time.Duration, want func(userID, groupID string) bool) membershipEcho {
	echo := membershipEcho{hidden: map[string]bool{}}
	if lag <= 0 {
		return echo
	}
	// Okta orders its log by storage time and published may step back a
	// little, so look a minute past the window before stopping.
	cutoff := o.clock.Now().Add(-lag)
	stop := cutoff.Add(-time.Minute)
	type oldest struct {
		added bool
		seq   uint64
	}
	pairs := map[string]*oldest{}
	var order []memberGhost
	for i := len(o.logs) - 1; i >= 0; i-- {
		ev := o.logs[i]
		if ev.Published.Before(stop) {
			break
		}
		var added bool
		switch ev.EventType {
		case "group.user_membership.add":
			added = true
		case "group.user_membership.remove":
		default:
			continue
		}
		if !ev.Published.After(cutoff) {
			continue
		}
		var uid, gid string
		for _, t := range ev.Targets {
			switch t.Type {
			case "User":
				uid = t.ID
			case "UserGroup":
				gid = t.ID
			}
		}
		if uid == "" || gid == "" || !want(uid, gid) {
			continue
		}
		k := pairKey(uid, gid)
		if p, ok := pairs[k]; ok {
			p.added, p.seq = added, ev.seq
			continue
		}
		pairs[k] = &oldest{added: added, seq: ev.seq}
		order = append(order, memberGhost{userID: uid, groupID: gid})
	}
	for _, pg := range order {
		p := pairs[pairKey(pg.userID, pg.groupID)]
		g, gok := o.groups.get(pg.groupID)
		u, uok := o.users.get(pg.userID)
		if !gok || !uok {
			continue
		}
		_, member := g.members.get(u.ID)
		switch {
		case p.added && member:
			echo.hidden[pairKey(u.ID, g.ID)] = true
		case !p.added && !member:
			echo.ghosts = append(echo.ghosts, memberGhost{userID: u.ID, groupID: g.ID, seq: p.seq})
		}
	}
	slices.SortFunc(echo.ghosts, func(a, b memberGhost) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return echo
}

// groupExpanded splices Okta's _embedded.stats (and, for expand=app, the
// source app of an APP_GROUP) into a group's cached JSON without
// re-marshalling it; o.mu is held.
func (o *Org) groupExpanded(g *Group, stats, app bool) []byte {
	if !stats && !app {
		return g.raw
	}
	raw := g.raw
	out := make([]byte, 0, len(raw)+160)
	out = append(out, raw[:len(raw)-1]...)
	out = append(out, `,"_embedded":{`...)
	if stats {
		admin := false
		if set := o.roles[roleKey("GROUP", g.ID)]; set != nil && set.len() > 0 {
			admin = true
		}
		// hasAdminPrivilege is how Okta spells it on the wire; the spec's
		// "hasAdminPrivlege" is a typo of the document, not of the API.
		out = fmt.Appendf(out, `"stats":{"usersCount":%d,"appsCount":%d,"groupPushMappingsCount":0,"hasAdminPrivilege":%t}`,
			g.members.len(), len(g.apps), admin)
	}
	if app {
		if a, ok := o.apps.get(g.SourceAppID); ok && g.SourceAppID != "" {
			if stats {
				out = append(out, ',')
			}
			out = append(out, `"app":`...)
			out = append(out, render(map[string]string{"id": a.ID, "name": a.Name, "label": a.Label, "signOnMode": a.SignOnMode})...)
		} else if !stats {
			// Nothing to embed: answer the plain group.
			return raw
		}
	}
	out = append(out, '}', '}')
	return out
}
