package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/auth"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
)

// maxKeyNameLen bounds an API key's name.
const maxKeyNameLen = 100

func roleToProto(r auth.Role) catalogv1.Role {
	switch r {
	case auth.SuperAdmin:
		return catalogv1.Role_ROLE_SUPER_ADMIN
	case auth.ConnectorAdmin:
		return catalogv1.Role_ROLE_CONNECTOR_ADMIN
	}
	return catalogv1.Role_ROLE_UNSPECIFIED
}

func roleFromProto(r catalogv1.Role) (auth.Role, error) {
	switch r {
	case catalogv1.Role_ROLE_SUPER_ADMIN:
		return auth.SuperAdmin, nil
	case catalogv1.Role_ROLE_CONNECTOR_ADMIN:
		return auth.ConnectorAdmin, nil
	}
	return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("role %v: give ROLE_SUPER_ADMIN or ROLE_CONNECTOR_ADMIN (super_admin or connector_admin)", r))
}

func rolesToProto(rs []auth.Role) []catalogv1.Role {
	out := make([]catalogv1.Role, 0, len(rs))
	for _, r := range rs {
		if p := roleToProto(r); p != catalogv1.Role_ROLE_UNSPECIFIED {
			out = append(out, p)
		}
	}
	return out
}

// WhoAmI implements AdminServiceHandler.
func (a *API) WhoAmI(ctx context.Context, _ *connect.Request[catalogv1.WhoAmIRequest]) (*connect.Response[catalogv1.WhoAmIResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	idn, err := a.d.Discovery.Identity(ctx, c.Identity)
	if err != nil {
		return nil, internal("read your identity", err)
	}
	return connect.NewResponse(&catalogv1.WhoAmIResponse{
		IdentityId: c.Identity, Email: idn.GetEmail(), DisplayName: idn.GetDisplayName(), Roles: rolesToProto(c.Roles),
	}), nil
}

// AssignRole implements AdminServiceHandler.
func (a *API) AssignRole(ctx context.Context, req *connect.Request[catalogv1.AssignRoleRequest]) (*connect.Response[catalogv1.AssignRoleResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireSuper(c, "assigning roles"); err != nil {
		return nil, err
	}
	role, err := roleFromProto(req.Msg.GetRole())
	if err != nil {
		return nil, err
	}
	email, err := parseEmail(req.Msg.GetEmail())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("email: %w", err))
	}
	idn, err := a.d.Discovery.EnsureIdentity(ctx, email, "")
	if err != nil {
		return nil, internal("record the identity of "+email, err)
	}
	if err := a.d.Auth.Grant(ctx, idn.GetId(), role); err != nil {
		return nil, internal("grant "+string(role)+" to "+email, err)
	}
	roles, err := a.d.Auth.Roles(ctx, idn.GetId())
	if err != nil {
		return nil, internal("read the roles of "+email, err)
	}
	a.log.Info("platform role assigned", "identity", idn.GetId(), "role", string(role), "by", c.Identity)
	return connect.NewResponse(&catalogv1.AssignRoleResponse{IdentityId: idn.GetId(), Roles: rolesToProto(roles)}), nil
}

// RevokeRole implements AdminServiceHandler.
func (a *API) RevokeRole(ctx context.Context, req *connect.Request[catalogv1.RevokeRoleRequest]) (*connect.Response[catalogv1.RevokeRoleResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireSuper(c, "revoking roles"); err != nil {
		return nil, err
	}
	role, err := roleFromProto(req.Msg.GetRole())
	if err != nil {
		return nil, err
	}
	email, err := parseEmail(req.Msg.GetEmail())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("email: %w", err))
	}
	id := IdentityID(email)
	if id == c.Identity && role == auth.SuperAdmin {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			errors.New("you cannot revoke your own Super Administrator role (so that one always remains): ask another Super Administrator"))
	}
	if err := a.d.Auth.Revoke(ctx, id, role); err != nil {
		return nil, internal("revoke "+string(role)+" from "+email, err)
	}
	roles, err := a.d.Auth.Roles(ctx, id)
	if err != nil {
		return nil, internal("read the roles of "+email, err)
	}
	a.log.Info("platform role revoked", "identity", id, "role", string(role), "by", c.Identity)
	return connect.NewResponse(&catalogv1.RevokeRoleResponse{IdentityId: id, Roles: rolesToProto(roles)}), nil
}

// CreateAPIKey implements AdminServiceHandler.
func (a *API) CreateAPIKey(ctx context.Context, req *connect.Request[catalogv1.CreateAPIKeyRequest]) (*connect.Response[catalogv1.CreateAPIKeyResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.Msg.GetName())
	if len(name) > maxKeyNameLen || strings.ContainsAny(name, "\r\n\t") {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name: use at most %d characters on one line", maxKeyNameLen))
	}
	id := c.Identity
	if req.Msg.GetEmail() != "" {
		email, err := parseEmail(req.Msg.GetEmail())
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("email: %w", err))
		}
		if IdentityID(email) != c.Identity {
			if err := requireSuper(c, "creating an API key for someone else"); err != nil {
				return nil, err
			}
			idn, err := a.d.Discovery.EnsureIdentity(ctx, email, "")
			if err != nil {
				return nil, internal("record the identity of "+email, err)
			}
			id = idn.GetId()
		}
	}
	key, err := a.d.Auth.NewKey(ctx, id, name)
	if err != nil {
		return nil, internal("create an API key", err)
	}
	a.log.Info("API key created", "identity", id, "name", name, "by", c.Identity)
	return connect.NewResponse(&catalogv1.CreateAPIKeyResponse{ApiKey: key.Reveal(), IdentityId: id}), nil
}
