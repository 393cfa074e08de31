package oktasim

import "net/http"

// perms is what a token may do, derived from the admin roles of the user
// who owns it (assigned directly or through a group), per FACTS.md.
type perms struct {
	readDirectory      bool // users, groups, apps, app assignments
	readLogs           bool
	writeMembership    bool
	writeAppAssignment bool
	writeUsers         bool // lifecycle
	readRoles          bool // standard role assignments, custom roles, resource sets
	writeRoles         bool
	manageHooks        bool
}

// permsOf computes a user's permissions; o.mu must be held.
func (o *Org) permsOf(u *User) perms {
	var p perms
	grant := func(ra *RoleAssignment) {
		switch ra.Type {
		case "SUPER_ADMIN":
			p = perms{true, true, true, true, true, true, true, true}
		case "ORG_ADMIN":
			p.readDirectory, p.readLogs, p.writeMembership, p.writeAppAssignment, p.writeUsers, p.manageHooks = true, true, true, true, true, true
		case "READ_ONLY_ADMIN":
			p.readDirectory, p.readLogs = true, true
		case "APP_ADMIN":
			p.readDirectory = true
			p.writeAppAssignment = true
		case "USER_ADMIN", "GROUP_MEMBERSHIP_ADMIN":
			p.readDirectory = true
			p.writeMembership = true
			if ra.Type == "USER_ADMIN" {
				p.writeUsers = true
			}
		case "HELP_DESK_ADMIN":
			p.readDirectory = true
		case "REPORT_ADMIN":
			p.readLogs = true
		case "CUSTOM":
			if cr, ok := o.customRoles.get(ra.CustomRoleID); ok {
				for _, perm := range cr.Permissions {
					switch perm {
					case "okta.iam.read":
						p.readRoles = true
					case "okta.iam.manage":
						p.readRoles, p.writeRoles = true, true
					case "okta.users.read", "okta.groups.read", "okta.apps.read":
						p.readDirectory = true
					case "okta.groups.members.manage", "okta.groups.manage":
						p.readDirectory, p.writeMembership = true, true
					case "okta.apps.assignment.manage", "okta.apps.manage":
						p.readDirectory, p.writeAppAssignment = true, true
					case "okta.users.lifecycle.manage", "okta.users.manage":
						p.readDirectory, p.writeUsers = true, true
					}
				}
			}
		}
	}
	if ras, ok := o.roles["user/"+u.ID]; ok {
		ras.each(func(_ string, ra *RoleAssignment) bool { grant(ra); return true })
	}
	for gid := range u.groups {
		if ras, ok := o.roles["group/"+gid]; ok {
			ras.each(func(_ string, ra *RoleAssignment) bool { grant(ra); return true })
		}
	}
	return p
}

// allow answers 403 E0000006 unless the caller has the permission.
func allow(w http.ResponseWriter, r *http.Request, ok func(perms) bool) bool {
	c := callerOf(r)
	if c == nil || !ok(c.perms) {
		forbidden(w)
		return false
	}
	return true
}

// Permission predicates for allow.
var (
	canReadDirectory      = func(p perms) bool { return p.readDirectory }
	canReadLogs           = func(p perms) bool { return p.readLogs }
	canWriteMembership    = func(p perms) bool { return p.writeMembership }
	canWriteAppAssignment = func(p perms) bool { return p.writeAppAssignment }
	canWriteUsers         = func(p perms) bool { return p.writeUsers }
	canReadRoles          = func(p perms) bool { return p.readRoles }
	canWriteRoles         = func(p perms) bool { return p.writeRoles }
	canManageHooks        = func(p perms) bool { return p.manageHooks }
)

// actorOf is the System Log actor of a request's caller.
func actorOf(r *http.Request) LogActor {
	c := callerOf(r)
	if c == nil {
		return LogActor{ID: "0oasimulator", Type: "PublicClientApp", AlternateID: "oktasim", DisplayName: "Okta simulator"}
	}
	u := c.user
	return LogActor{ID: u.ID, Type: "User", AlternateID: u.Profile.Login, DisplayName: u.Profile.FirstName + " " + u.Profile.LastName}
}
