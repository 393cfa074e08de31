package okta

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Writes of group memberships and app assignments, for provisioning. Each
// is one call in its bucket; the transport retries 429s and transient
// failures, which is safe because each write is idempotent in Okta (adding
// a member twice, assigning an assigned user or group, deleting what is
// gone). A refusal is an *APIError: Code tells, for example, an inactive
// user (CodeInactiveUserForApps) from a missing permission.

// Okta error codes a provisioning caller tells apart.
const (
	// CodeInactiveUserForApps: an app cannot be assigned to a user who is
	// not active (403).
	CodeInactiveUserForApps = "E0000117"
	// CodePermissionDenied: the admin's roles do not allow the call (403).
	CodePermissionDenied = "E0000006"
)

// ErrorCode returns Okta's errorCode behind err; "" when err is not an
// answer of Okta's API or the answer had none.
func ErrorCode(err error) string {
	var api *APIError
	if errors.As(err, &api) {
		return api.Code
	}
	return ""
}

// AddGroupMember adds a user to an OKTA_GROUP (PUT
// /api/v1/groups/{groupId}/users/{userId}). Okta refuses APP_GROUP and
// BUILT_IN groups with 403.
func (c *Client) AddGroupMember(ctx context.Context, groupID, userID string) error {
	p := "/api/v1/groups/" + url.PathEscape(groupID) + "/users/" + url.PathEscape(userID)
	return doJSON(ctx, c, "add user "+userID+" to group "+groupID, http.MethodPut, p, nil, nil)
}

// RemoveGroupMember removes a user from an OKTA_GROUP (DELETE
// /api/v1/groups/{groupId}/users/{userId}).
func (c *Client) RemoveGroupMember(ctx context.Context, groupID, userID string) error {
	p := "/api/v1/groups/" + url.PathEscape(groupID) + "/users/" + url.PathEscape(userID)
	return doJSON(ctx, c, "remove user "+userID+" from group "+groupID, http.MethodDelete, p, nil, nil)
}

// AssignUserToApp assigns an app to a user directly, scope USER (POST
// /api/v1/apps/{appId}/users), with profile (nil: the app's defaults), and
// returns the assignment.
func (c *Client) AssignUserToApp(ctx context.Context, appID, userID string, profile map[string]any) (AppUser, error) {
	body := map[string]any{"id": userID, "scope": "USER"}
	if profile != nil {
		body["profile"] = profile
	}
	var w wireAppUser
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/users"
	if err := doJSON(ctx, c, "assign app "+appID+" to user "+userID, http.MethodPost, p, body, &w); err != nil {
		return AppUser{}, err
	}
	return w.appUser(), nil
}

// UnassignUserFromApp removes a user's assignment to an app (DELETE
// /api/v1/apps/{appId}/users/{userId}).
func (c *Client) UnassignUserFromApp(ctx context.Context, appID, userID string) error {
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/users/" + url.PathEscape(userID)
	return doJSON(ctx, c, "unassign app "+appID+" from user "+userID, http.MethodDelete, p, nil, nil)
}

// AssignGroupToApp assigns an app to a group (PUT
// /api/v1/apps/{appId}/groups/{groupId}) with profile (nil: the app's
// defaults), and returns the assignment.
func (c *Client) AssignGroupToApp(ctx context.Context, appID, groupID string, profile map[string]any) (AppGroup, error) {
	body := map[string]any{}
	if profile != nil {
		body["profile"] = profile
	}
	var w wireAppGroup
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/groups/" + url.PathEscape(groupID)
	if err := doJSON(ctx, c, "assign app "+appID+" to group "+groupID, http.MethodPut, p, body, &w); err != nil {
		return AppGroup{}, err
	}
	return w.appGroup(), nil
}

// UnassignGroupFromApp removes a group's assignment to an app (DELETE
// /api/v1/apps/{appId}/groups/{groupId}).
func (c *Client) UnassignGroupFromApp(ctx context.Context, appID, groupID string) error {
	p := "/api/v1/apps/" + url.PathEscape(appID) + "/groups/" + url.PathEscape(groupID)
	return doJSON(ctx, c, "unassign app "+appID+" from group "+groupID, http.MethodDelete, p, nil, nil)
}
