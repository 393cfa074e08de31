package okta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Capabilities is what a token may do, as the capability table of
// shared/okta/FACTS.md names it.
type Capabilities struct {
	// UserID and Login name the token's owner.
	UserID string
	Login  string
	// ReviewGroupMembership: users, groups and group members can be read.
	ReviewGroupMembership bool
	// ProvisionGroupMembership: group members can also be added and removed.
	ProvisionGroupMembership bool
	// ReviewAppAssignment: users, groups, apps and their assignments can be read.
	ReviewAppAssignment bool
	// ProvisionAppAssignment: app assignments can also be made and removed.
	ProvisionAppAssignment bool
	// ReviewRoles: standard role assignments and custom roles can be read.
	ReviewRoles bool
	// ServerTime is Okta's clock at the start of the probe (the Date header
	// of its first answer, to whole seconds); zero when Okta sent none.
	ServerTime time.Time
	// RoleTypes are the owner's directly assigned role types, sorted; empty
	// when the token may not read roles (only role readers may).
	RoleTypes []string
}

// probeID names objects that cannot exist (Okta ids have no '-'), so a
// write probe can never change anything.
const probeID = "accessbus-capability-probe"

// ProbeCapabilities finds what the token may do without changing anything:
//
//   - review capabilities: a one-item read of users, groups and apps, and of
//     the members and app users of the first group and app found, each
//     allowed or 403;
//   - ReviewRoles and RoleTypes: the owner's roles (GET /users/{id}/roles)
//     and the custom roles list, both of which only role readers may read;
//   - provision capabilities: a token that may not read roles (all but super
//     admins and okta.iam.read custom roles) cannot learn its write rights
//     from them, so every token is asked the same way: a membership PUT and
//     an app assignment POST on objects that cannot exist. A 403 means not
//     allowed; a 400 or 404 means allowed (Okta checks the permission
//     first, as the simulator does), and nothing is written either way.
//     This also covers custom roles, whose rights roles alone do not tell.
//     A provision capability also needs the matching review capability.
//
// A 403 is a "no"; any other failure is returned as an error, never read as
// a "no".
func (c *Client) ProbeCapabilities(ctx context.Context) (Capabilities, error) {
	const op = "probe token capabilities"
	me, at, err := c.meAt(ctx)
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	caps := Capabilities{UserID: me.ID, Login: me.Login, ServerTime: at}

	readUsers, err := allowed(c.probeGet(ctx, "/api/v1/users?limit=1", nil))
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	var groups []struct {
		ID string `json:"id"`
	}
	readGroups, err := allowed(c.probeGet(ctx, "/api/v1/groups?limit=1", &groups))
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	readMembers := readGroups
	if readGroups && len(groups) > 0 {
		p := "/api/v1/groups/" + url.PathEscape(groups[0].ID) + "/users?limit=1"
		if readMembers, err = allowed(c.probeGet(ctx, p, nil)); err != nil {
			return Capabilities{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	var apps []struct {
		ID string `json:"id"`
	}
	readApps, err := allowed(c.probeGet(ctx, "/api/v1/apps?limit=1", &apps))
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	readAppUsers := readApps
	if readApps && len(apps) > 0 {
		p := "/api/v1/apps/" + url.PathEscape(apps[0].ID) + "/users?limit=1"
		if readAppUsers, err = allowed(c.probeGet(ctx, p, nil)); err != nil {
			return Capabilities{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	caps.ReviewGroupMembership = readUsers && readGroups && readMembers
	caps.ReviewAppAssignment = readUsers && readGroups && readApps && readAppUsers

	writeMembership, err := allowed(c.probeWrite(ctx, http.MethodPut,
		"/api/v1/groups/"+probeID+"/users/"+probeID, nil))
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	writeAssignment, err := allowed(c.probeWrite(ctx, http.MethodPost,
		"/api/v1/apps/"+probeID+"/users", map[string]any{}))
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	caps.ProvisionGroupMembership = caps.ReviewGroupMembership && writeMembership
	caps.ProvisionAppAssignment = caps.ReviewAppAssignment && writeAssignment

	roles, err := c.ListUserRoles(ctx, me.ID)
	readRoles, err := allowed(err)
	if err != nil {
		return Capabilities{}, fmt.Errorf("%s: %w", op, err)
	}
	if readRoles {
		for _, r := range roles {
			if !slices.Contains(caps.RoleTypes, r.Type) {
				caps.RoleTypes = append(caps.RoleTypes, r.Type)
			}
		}
		slices.Sort(caps.RoleTypes)
		readCustom, err := allowed(c.probeGet(ctx, "/api/v1/iam/roles", nil))
		if err != nil {
			return Capabilities{}, fmt.Errorf("%s: %w", op, err)
		}
		caps.ReviewRoles = readCustom
	}
	return caps, nil
}

// allowed reads a probe's outcome: nil is allowed, ErrPermissionDenied is
// not, anything else is an error.
func allowed(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrPermissionDenied):
		return false, nil
	default:
		return false, err
	}
}

func (c *Client) probeGet(ctx context.Context, p string, v any) error {
	return getJSON(ctx, c, "probe GET "+p, p, v)
}

// probeWrite sends a write to objects that cannot exist: 400 and 404 mean
// the permission check passed.
func (c *Client) probeWrite(ctx context.Context, method, p string, body any) error {
	err := doJSON(ctx, c, "probe "+method+" "+p, method, p, body, nil)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidInput) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("probe %s %s: succeeded on an object that cannot exist: %w", method, p, ErrInvalidInput)
	}
	return err
}
