package okta

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Maximum page sizes (shared/okta/FACTS.md, "Pagination").
const (
	maxUsersPage      = 200
	maxGroupsPage     = 10000
	maxGroupUsersPage = 1000
	maxAppsPage       = 200
	maxAppUsersPage   = 500
	maxAppGroupsPage  = 200
)

// oktaTime is the timestamp form Okta's filters take.
func oktaTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func withQuery(p string, q url.Values) string {
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// ListUsersOptions select the users ListUsers returns.
type ListUsersOptions struct {
	// IncludeDeprovisioned includes DEPROVISIONED users, which Okta's
	// default list omits.
	IncludeDeprovisioned bool
	// LastUpdatedAfter, when set, keeps users updated after it.
	LastUpdatedAfter time.Time
}

// ListUsers pages through the org's users, calling fn with each page.
func (c *Client) ListUsers(ctx context.Context, opts ListUsersOptions, fn func([]User) error) error {
	q := url.Values{"limit": {strconv.Itoa(maxUsersPage)}}
	filtered := false
	switch {
	case !opts.LastUpdatedAfter.IsZero():
		// Any filter includes DEPROVISIONED users, so they are dropped
		// here when not asked for.
		q.Set("filter", `lastUpdated gt "`+oktaTime(opts.LastUpdatedAfter)+`"`)
		filtered = true
	case opts.IncludeDeprovisioned:
		q.Set("search", "status pr")
	}
	dropDeprovisioned := filtered && !opts.IncludeDeprovisioned
	return listLinkPaged(ctx, c, "list users", withQuery("/api/v1/users", q), wireUser.user, func(us []User) error {
		if dropDeprovisioned {
			kept := us[:0]
			for _, u := range us {
				if u.Status != "DEPROVISIONED" {
					kept = append(kept, u)
				}
			}
			us = kept
		}
		return fn(us)
	})
}

// ListGroupsOptions select the groups ListGroups returns.
type ListGroupsOptions struct {
	// ExpandStats fills Group.UsersCount and AppsCount.
	ExpandStats bool
	// LastUpdatedAfter and LastMembershipUpdatedAfter, when set, keep the
	// groups changed after them; with both set, a group matching either.
	LastUpdatedAfter           time.Time
	LastMembershipUpdatedAfter time.Time
}

// ListGroups pages through the org's groups, calling fn with each page.
func (c *Client) ListGroups(ctx context.Context, opts ListGroupsOptions, fn func([]Group) error) error {
	q := url.Values{"limit": {strconv.Itoa(maxGroupsPage)}}
	if opts.ExpandStats {
		q.Set("expand", "stats")
	}
	var filters []string
	if !opts.LastUpdatedAfter.IsZero() {
		filters = append(filters, `lastUpdated gt "`+oktaTime(opts.LastUpdatedAfter)+`"`)
	}
	if !opts.LastMembershipUpdatedAfter.IsZero() {
		filters = append(filters, `lastMembershipUpdated gt "`+oktaTime(opts.LastMembershipUpdatedAfter)+`"`)
	}
	if len(filters) > 0 {
		q.Set("filter", strings.Join(filters, " or "))
	}
	return listLinkPaged(ctx, c, "list groups", withQuery("/api/v1/groups", q), wireGroup.group, fn)
}

// ListGroupMembers pages through the members of a group.
func (c *Client) ListGroupMembers(ctx context.Context, groupID string, fn func([]User) error) error {
	p := "/api/v1/groups/" + url.PathEscape(groupID) + "/users"
	q := url.Values{"limit": {strconv.Itoa(maxGroupUsersPage)}}
	return listLinkPaged(ctx, c, "list members of group "+groupID, withQuery(p, q), wireUser.user, fn)
}

// ListGroupMemberIDs pages through the ids of a group's members, like
// ListGroupMembers but decoding nothing else of each user (idsOf): a sync
// keeps only the ids, and decoding every member's full profile was most of
// the CPU a large org's first sync spent reading.
func (c *Client) ListGroupMemberIDs(ctx context.Context, groupID string, fn func([]string) error) error {
	p := "/api/v1/groups/" + url.PathEscape(groupID) + "/users"
	q := url.Values{"limit": {strconv.Itoa(maxGroupUsersPage)}}
	return listIDsLinkPaged(ctx, c, "list members of group "+groupID, withQuery(p, q), fn)
}

// ListAppsOptions select the apps ListApps returns.
type ListAppsOptions struct {
	// IncludeInactive includes INACTIVE apps.
	IncludeInactive bool
}

// ListApps pages through the org's apps.
func (c *Client) ListApps(ctx context.Context, opts ListAppsOptions, fn func([]App) error) error {
	q := url.Values{"limit": {strconv.Itoa(maxAppsPage)}}
	if !opts.IncludeInactive {
		q.Set("filter", `status eq "ACTIVE"`)
	}
	return listLinkPaged(ctx, c, "list apps", withQuery("/api/v1/apps", q), wireApp.app, fn)
}

// ListAppUsers pages through the users assigned to an app, directly (scope
// USER) or through a group (scope GROUP).
func (c *Client) ListAppUsers(ctx context.Context, appID string, fn func([]AppUser) error) error {
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/users"
	q := url.Values{"limit": {strconv.Itoa(maxAppUsersPage)}}
	return listLinkPaged(ctx, c, "list users of app "+appID, withQuery(p, q), wireAppUser.appUser, fn)
}

// ListAppGroups pages through the groups assigned to an app.
func (c *Client) ListAppGroups(ctx context.Context, appID string, fn func([]AppGroup) error) error {
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/groups"
	q := url.Values{"limit": {strconv.Itoa(maxAppGroupsPage)}}
	return listLinkPaged(ctx, c, "list groups of app "+appID, withQuery(p, q), wireAppGroup.appGroup, fn)
}

// ListUserRoles returns the admin roles assigned to a user directly (not
// paged by Okta). It needs a token that may read roles: others get
// ErrPermissionDenied.
func (c *Client) ListUserRoles(ctx context.Context, userID string) ([]RoleAssignment, error) {
	return c.listRoles(ctx, "list roles of user "+userID, "/api/v1/users/"+url.PathEscape(userID)+"/roles")
}

// ListGroupRoles returns the admin roles assigned to a group.
func (c *Client) ListGroupRoles(ctx context.Context, groupID string) ([]RoleAssignment, error) {
	return c.listRoles(ctx, "list roles of group "+groupID, "/api/v1/groups/"+url.PathEscape(groupID)+"/roles")
}

func (c *Client) listRoles(ctx context.Context, op, p string) ([]RoleAssignment, error) {
	var out []RoleAssignment
	err := listLinkPaged(ctx, c, op, p, wireRole.role, func(rs []RoleAssignment) error {
		out = append(out, rs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Me returns the user who owns the token.
func (c *Client) Me(ctx context.Context) (User, error) {
	var w wireUser
	if err := getJSON(ctx, c, "get token owner", "/api/v1/users/me", &w); err != nil {
		return User{}, err
	}
	return w.user(), nil
}

// ListCustomRoles pages through the org's custom admin roles.
func (c *Client) ListCustomRoles(ctx context.Context, fn func([]CustomRole) error) error {
	return listBodyPaged(ctx, c, "list custom roles", "/api/v1/iam/roles", "roles", wireCustomRole.customRole, fn)
}

// ListCustomRolePermissions pages through the permissions of a custom role.
func (c *Client) ListCustomRolePermissions(ctx context.Context, roleID string, fn func([]Permission) error) error {
	p := "/api/v1/iam/roles/" + url.PathEscape(roleID) + "/permissions"
	return listBodyPaged(ctx, c, "list permissions of custom role "+roleID, p, "permissions", wirePermission.permission, fn)
}

// ListResourceSets pages through the org's resource sets.
func (c *Client) ListResourceSets(ctx context.Context, fn func([]ResourceSet) error) error {
	return listBodyPaged(ctx, c, "list resource sets", "/api/v1/iam/resource-sets", "resource-sets", wireResourceSet.resourceSet, fn)
}

// ListResourceSetResources pages through the resources of a resource set.
func (c *Client) ListResourceSetResources(ctx context.Context, resourceSetID string, fn func([]Resource) error) error {
	p := "/api/v1/iam/resource-sets/" + url.PathEscape(resourceSetID) + "/resources"
	return listBodyPaged(ctx, c, "list resources of resource set "+resourceSetID, p, "resources", wireResource.resource, fn)
}

// ListBindings pages through the role bindings of a resource set.
func (c *Client) ListBindings(ctx context.Context, resourceSetID string, fn func([]Binding) error) error {
	p := "/api/v1/iam/resource-sets/" + url.PathEscape(resourceSetID) + "/bindings"
	return listBodyPaged(ctx, c, "list bindings of resource set "+resourceSetID, p, "roles", wireBinding.binding, fn)
}

// ListBindingMembers pages through the members of a binding.
func (c *Client) ListBindingMembers(ctx context.Context, resourceSetID, roleID string, fn func([]BindingMember) error) error {
	p := "/api/v1/iam/resource-sets/" + url.PathEscape(resourceSetID) + "/bindings/" + url.PathEscape(roleID) + "/members"
	return listBodyPaged(ctx, c, "list members of binding "+resourceSetID+"/"+roleID, p, "members", wireBindingMember.member, fn)
}

// ListRoleAssignees pages through the ids of the users who hold an admin
// role, directly or through a group (/api/v1/iam/assignees/users). It lets a
// sync read role assignments only of those users instead of every user.
func (c *Client) ListRoleAssignees(ctx context.Context, fn func([]string) error) error {
	return listBodyPaged(ctx, c, "list role assignees", "/api/v1/iam/assignees/users?limit=100", "value", wireID.id, fn)
}

// wireID is any object of which only the id is needed (an entry of
// /iam/assignees/users, a group member): encoding/json skips the other
// fields without building them.
type wireID struct {
	ID string `json:"id"`
}

func (w wireID) id() string { return w.ID }
