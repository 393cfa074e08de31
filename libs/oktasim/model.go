package oktasim

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the org's mutation methods, mapped by handlers to Okta's answers.
var (
	ErrNotFound    = errors.New("not found")
	ErrNotWritable = errors.New("not writable")
	ErrInvalid     = errors.New("invalid")
)

// The exported mutation methods below lock the org themselves. Their first
// argument is who makes the change: nil builds state without history (the
// generator); an actor appends the matching System Log events (and so
// delivers them to event hooks), as every change through the API or the
// simulator's admin endpoints must.

// AddToken lets token call the API as the given admin user.
func (o *Org) AddToken(userID, token string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.users.get(userID); !ok {
		return fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	o.tokens[token] = userID
	return nil
}

// CreateUser adds a user with the given status (ACTIVE, STAGED, ...).
//
// Like Okta, the org puts every new user in the BUILT_IN Everyone group
// (once that group exists).
func (o *Org) CreateUser(by *LogActor, p UserProfile, status string, created time.Time) (*User, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.createUser(by, p, status, created)
}

func (o *Org) createUser(by *LogActor, p UserProfile, status string, created time.Time) (*User, error) {
	if p.Login == "" {
		return nil, fmt.Errorf("login is required: %w", ErrInvalid)
	}
	if _, dup := o.usersByLogin[p.Login]; dup {
		return nil, fmt.Errorf("login %s already exists: %w", p.Login, ErrInvalid)
	}
	if created.IsZero() {
		created = o.clock.Now()
	}
	u := &User{
		ID: o.newID("00u"), Status: status, Created: created, StatusChanged: created,
		LastUpdated: created, Profile: p, groups: map[string]struct{}{},
	}
	if status == "ACTIVE" || status == "SUSPENDED" || status == "LOCKED_OUT" || status == "PASSWORD_EXPIRED" || status == "RECOVERY" {
		u.Activated = created
		u.PasswordChanged = created
	}
	u.raw = render(o.userView(u))
	o.users.put(u.ID, u)
	o.usersByLogin[p.Login] = u
	if by != nil {
		o.emit("user.lifecycle.create", "Create okta user", *by, userTarget(u))
	}
	if g := o.everyone(); g != nil {
		o.addMember(by, g, u)
	}
	return u, nil
}

// everyone is the org's BUILT_IN Everyone group, or nil before it exists;
// o.mu is held.
func (o *Org) everyone() *Group {
	g, _ := o.groups.get(o.everyoneID)
	return g
}

// CreateGroup adds a group of the given type; sourceAppID names the app that
// pushes an APP_GROUP.
func (o *Org) CreateGroup(by *LogActor, typ, name, description, sourceAppID string, created time.Time) (*Group, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch typ {
	case GroupOkta, GroupApp, GroupBuiltIn:
	default:
		return nil, fmt.Errorf("group type %q: %w", typ, ErrInvalid)
	}
	if created.IsZero() {
		created = o.clock.Now()
	}
	g := &Group{
		ID: o.newID("00g"), Type: typ, Name: name, Description: description, SourceAppID: sourceAppID,
		Created: created, LastUpdated: created, LastMembershipUpdated: created,
		members: newOrdered[*User](), apps: map[string]struct{}{},
	}
	g.raw = render(o.groupView(g))
	o.groups.put(g.ID, g)
	if typ == GroupBuiltIn && name == "Everyone" && o.everyoneID == "" {
		o.everyoneID = g.ID
	}
	if by != nil {
		o.emit("group.lifecycle.create", "Create Okta group", *by, groupTarget(g))
	}
	return g, nil
}

// AddMember adds a user to a group; it reports whether the user was not a
// member already. The group's lastMembershipUpdated moves, and the user
// becomes an app user (scope GROUP) of the apps the group is assigned to.
func (o *Org) AddMember(by *LogActor, groupID, userID string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	g, u, err := o.groupAndUser(groupID, userID)
	if err != nil {
		return false, err
	}
	return o.addMember(by, g, u), nil
}

func (o *Org) addMember(by *LogActor, g *Group, u *User) bool {
	if !g.members.put(u.ID, u) {
		return false
	}
	u.groups[g.ID] = struct{}{}
	g.LastMembershipUpdated = o.clock.Now()
	g.raw = render(o.groupView(g))
	if by != nil {
		o.emit("group.user_membership.add", "Add user to group membership", *by, userTarget(u), groupTarget(g))
	}
	// The app access the membership gives or takes follows it in the log.
	o.groupMembershipChanged(by, g, u, true)
	return true
}

// RemoveMember removes a user from a group; it reports whether the user was a member.
func (o *Org) RemoveMember(by *LogActor, groupID, userID string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	g, u, err := o.groupAndUser(groupID, userID)
	if err != nil {
		return false, err
	}
	return o.removeMember(by, g, u), nil
}

func (o *Org) removeMember(by *LogActor, g *Group, u *User) bool {
	if !g.members.del(u.ID) {
		return false
	}
	delete(u.groups, g.ID)
	g.LastMembershipUpdated = o.clock.Now()
	g.raw = render(o.groupView(g))
	if by != nil {
		o.emit("group.user_membership.remove", "Remove user from group membership", *by, userTarget(u), groupTarget(g))
	}
	// The app access the membership gives or takes follows it in the log.
	o.groupMembershipChanged(by, g, u, false)
	return true
}

func (o *Org) groupAndUser(groupID, userID string) (*Group, *User, error) {
	g, ok := o.groups.get(groupID)
	if !ok {
		return nil, nil, fmt.Errorf("group %s: %w", groupID, ErrNotFound)
	}
	u, ok := o.users.get(userID)
	if !ok {
		return nil, nil, fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	return g, u, nil
}

// roleLabels are the labels Okta gives standard role types.
var roleLabels = map[string]string{
	"SUPER_ADMIN":                 "Super Administrator",
	"ORG_ADMIN":                   "Organizational Administrator",
	"APP_ADMIN":                   "Application Administrator",
	"USER_ADMIN":                  "Group Administrator",
	"HELP_DESK_ADMIN":             "Help Desk Administrator",
	"READ_ONLY_ADMIN":             "Read Only Administrator",
	"GROUP_MEMBERSHIP_ADMIN":      "Group Membership Administrator",
	"API_ACCESS_MANAGEMENT_ADMIN": "API Access Management Administrator",
	"REPORT_ADMIN":                "Report Administrator",
	"ACCESS_CERTIFICATIONS_ADMIN": "Access Certifications Administrator",
	"ACCESS_REQUESTS_ADMIN":       "Access Requests Administrator",
	"WORKFLOWS_ADMIN":             "Workflows Administrator",
	"CUSTOM":                      "Custom",
}

// AssignRole assigns an admin role to a user or a group (principalType
// "USER" or "GROUP"). For CUSTOM, customRoleID and resourceSetID are required.
// Assigning a role the principal already holds returns the existing assignment.
func (o *Org) AssignRole(by *LogActor, principalType, principalID, roleType, customRoleID, resourceSetID string) (*RoleAssignment, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.assignRole(by, principalType, principalID, roleType, customRoleID, resourceSetID)
}

func (o *Org) assignRole(by *LogActor, principalType, principalID, roleType, customRoleID, resourceSetID string) (*RoleAssignment, error) {
	label, ok := roleLabels[roleType]
	if !ok {
		return nil, fmt.Errorf("role type %q: %w", roleType, ErrInvalid)
	}
	var target LogActor
	switch principalType {
	case "USER":
		u, ok := o.users.get(principalID)
		if !ok {
			return nil, fmt.Errorf("user %s: %w", principalID, ErrNotFound)
		}
		target = userTarget(u)
	case "GROUP":
		g, ok := o.groups.get(principalID)
		if !ok {
			return nil, fmt.Errorf("group %s: %w", principalID, ErrNotFound)
		}
		target = groupTarget(g)
	default:
		return nil, fmt.Errorf("assignment type %q: %w", principalType, ErrInvalid)
	}
	if roleType == "CUSTOM" {
		cr, ok := o.customRoles.get(customRoleID)
		if !ok {
			return nil, fmt.Errorf("custom role %q: %w", customRoleID, ErrNotFound)
		}
		if _, ok := o.resourceSets.get(resourceSetID); !ok {
			return nil, fmt.Errorf("resource set %q: %w", resourceSetID, ErrNotFound)
		}
		label = cr.Label
	}
	key := roleKey(principalType, principalID)
	set := o.roles[key]
	if set == nil {
		set = newOrdered[*RoleAssignment]()
		o.roles[key] = set
	}
	var existing *RoleAssignment
	set.each(func(_ string, ra *RoleAssignment) bool {
		if ra.Type == roleType && ra.CustomRoleID == customRoleID && ra.ResourceSetID == resourceSetID {
			existing = ra
			return false
		}
		return true
	})
	if existing != nil {
		return existing, nil
	}
	now := o.clock.Now()
	ra := &RoleAssignment{
		ID: o.newID("ra1"), Type: roleType, Label: label, Status: "ACTIVE", Created: now, LastUpdated: now,
		AssignmentType: principalType, PrincipalID: principalID, CustomRoleID: customRoleID, ResourceSetID: resourceSetID,
	}
	set.put(ra.ID, ra)
	// A CUSTOM assignment and its binding member are one thing in Okta.
	o.syncBindingMember(ra, true)
	if by != nil {
		ev := "user.account.privilege.grant"
		if principalType == "GROUP" {
			ev = "group.privilege.grant"
		}
		o.emit(ev, "Grant user privilege", *by, target)
	}
	return ra, nil
}

// UnassignRole removes a role assignment from a user or a group.
func (o *Org) UnassignRole(by *LogActor, principalType, principalID, assignmentID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.unassignRole(by, principalType, principalID, assignmentID)
	return err
}

// unassignRole removes a role assignment, keeps a CUSTOM one's binding in
// step and logs the revocation; o.mu is held for writing.
func (o *Org) unassignRole(by *LogActor, principalType, principalID, assignmentID string) (*RoleAssignment, error) {
	set := o.roles[roleKey(principalType, principalID)]
	if set == nil {
		return nil, fmt.Errorf("role assignment %s: %w", assignmentID, ErrNotFound)
	}
	ra, ok := set.get(assignmentID)
	if !ok || !set.del(assignmentID) {
		return nil, fmt.Errorf("role assignment %s: %w", assignmentID, ErrNotFound)
	}
	o.syncBindingMember(ra, false)
	o.emitRoleRevoke(by, principalType, principalID)
	return ra, nil
}

func roleKey(principalType, id string) string {
	if principalType == "GROUP" {
		return "group/" + id
	}
	return "user/" + id
}

// userView is the JSON shape of a user (spec: User).
type userView struct {
	ID              string         `json:"id"`
	Status          string         `json:"status"`
	Created         oktaTime       `json:"created"`
	Activated       oktaTime       `json:"activated"`
	StatusChanged   oktaTime       `json:"statusChanged"`
	LastLogin       oktaTime       `json:"lastLogin"`
	LastUpdated     oktaTime       `json:"lastUpdated"`
	PasswordChanged oktaTime       `json:"passwordChanged"`
	Type            map[string]any `json:"type"`
	Profile         UserProfile    `json:"profile"`
	Credentials     map[string]any `json:"credentials"`
	Links           map[string]any `json:"_links"`
}

func (o *Org) userView(u *User) userView {
	return userView{
		ID: u.ID, Status: u.Status, Created: oktaTime(u.Created), Activated: oktaTime(u.Activated),
		StatusChanged: oktaTime(u.StatusChanged), LastLogin: oktaTime(u.LastLogin), LastUpdated: oktaTime(u.LastUpdated),
		PasswordChanged: oktaTime(u.PasswordChanged),
		Type:            map[string]any{"id": "oty00000000000000001"},
		Profile:         u.Profile,
		Credentials: map[string]any{
			"provider": map[string]any{"type": "OKTA", "name": "OKTA"},
		},
		Links: map[string]any{"self": map[string]any{"href": o.href("/api/v1/users/" + u.ID)}},
	}
}

// groupView is the JSON shape of a group (spec: Group), without stats.
type groupView struct {
	ID                    string         `json:"id"`
	Created               oktaTime       `json:"created"`
	LastUpdated           oktaTime       `json:"lastUpdated"`
	LastMembershipUpdated oktaTime       `json:"lastMembershipUpdated"`
	ObjectClass           []string       `json:"objectClass"`
	Type                  string         `json:"type"`
	Profile               map[string]any `json:"profile"`
	Links                 map[string]any `json:"_links"`
}

func (o *Org) groupView(g *Group) groupView {
	class := "okta:user_group"
	if g.Type == GroupApp {
		class = "okta:windows_security_principal"
	}
	links := map[string]any{
		"logo":  []any{map[string]any{"name": "medium", "href": o.href("/img/logos/groups/okta-medium.png"), "type": "image/png"}},
		"users": map[string]any{"href": o.href("/api/v1/groups/" + g.ID + "/users")},
		"apps":  map[string]any{"href": o.href("/api/v1/groups/" + g.ID + "/apps")},
	}
	if g.SourceAppID != "" {
		links["source"] = map[string]any{"href": o.href("/api/v1/apps/" + g.SourceAppID)}
	}
	return groupView{
		ID: g.ID, Created: oktaTime(g.Created), LastUpdated: oktaTime(g.LastUpdated),
		LastMembershipUpdated: oktaTime(g.LastMembershipUpdated), ObjectClass: []string{class}, Type: g.Type,
		Profile: map[string]any{"name": g.Name, "description": g.Description},
		Links:   links,
	}
}
