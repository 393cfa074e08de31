package okta

import (
	"context"
	"net/url"
	"strconv"
)

// Single-object reads, for targeted resyncs: each is one call, in the
// bucket FACTS.md names for its path. A missing object is ErrNotFound.

// maxUserGroupsPage is the page size of a user's groups (Okta's default;
// the endpoint takes no larger limit).
const maxUserGroupsPage = 200

// GetUser returns one user by id (GET /api/v1/users/{id}), whatever its
// status, DEPROVISIONED included.
func (c *Client) GetUser(ctx context.Context, id string) (User, error) {
	var w wireUser
	if err := getJSON(ctx, c, "get user "+id, "/api/v1/users/"+url.PathEscape(id), &w); err != nil {
		return User{}, err
	}
	return w.user(), nil
}

// GetGroup returns one group (GET /api/v1/groups/{id}), with its stats
// (UsersCount, AppsCount) when expandStats is set.
func (c *Client) GetGroup(ctx context.Context, id string, expandStats bool) (Group, error) {
	p := "/api/v1/groups/" + url.PathEscape(id)
	if expandStats {
		p += "?expand=stats"
	}
	var w wireGroup
	if err := getJSON(ctx, c, "get group "+id, p, &w); err != nil {
		return Group{}, err
	}
	return w.group(), nil
}

// GetApp returns one app (GET /api/v1/apps/{id}), active or not.
func (c *Client) GetApp(ctx context.Context, id string) (App, error) {
	var w wireApp
	if err := getJSON(ctx, c, "get app "+id, "/api/v1/apps/"+url.PathEscape(id), &w); err != nil {
		return App{}, err
	}
	return w.app(), nil
}

// GetAppUser returns one user's assignment to an app (GET
// /api/v1/apps/{appId}/users/{userId}): ErrNotFound when the user is not
// assigned.
func (c *Client) GetAppUser(ctx context.Context, appID, userID string) (AppUser, error) {
	var w wireAppUser
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/users/" + url.PathEscape(userID)
	if err := getJSON(ctx, c, "get assignment of user "+userID+" to app "+appID, p, &w); err != nil {
		return AppUser{}, err
	}
	return w.appUser(), nil
}

// GetAppGroup returns one group's assignment to an app (GET
// /api/v1/apps/{appId}/groups/{groupId}): ErrNotFound when the group is not
// assigned.
func (c *Client) GetAppGroup(ctx context.Context, appID, groupID string) (AppGroup, error) {
	var w wireAppGroup
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/groups/" + url.PathEscape(groupID)
	if err := getJSON(ctx, c, "get assignment of group "+groupID+" to app "+appID, p, &w); err != nil {
		return AppGroup{}, err
	}
	return w.appGroup(), nil
}

// ListUserGroupIDs pages through the ids of the groups a user is a member
// of (GET /api/v1/users/{id}/groups): one call confirms a membership
// without listing a whole group.
func (c *Client) ListUserGroupIDs(ctx context.Context, userID string, fn func([]string) error) error {
	p := "/api/v1/users/" + url.PathEscape(userID) + "/groups"
	q := url.Values{"limit": {strconv.Itoa(maxUserGroupsPage)}}
	return listIDsLinkPaged(ctx, c, "list groups of user "+userID, withQuery(p, q), fn)
}
