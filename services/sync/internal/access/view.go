package access

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"slices"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/subjects"

	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// view is a connector's state decoded: every resource and grant with the
// revision of the container it was read from, in the API's order.
type view struct {
	// resources are ordered by kind (its enum number), then id.
	resources []*accessv1.AccessResource
	// grants are ordered by key.
	grants []*accessv1.AccessGrant
	// containers counts the live containers read; 0 means the connector has
	// no state at all.
	containers int
}

// grantContainerKinds are the state kinds known to hold grant sets. A kind
// that is neither these nor a resource kind (one a newer sync version adds)
// is read as a grant set when it decodes as one.
var grantContainerKinds = map[string]bool{
	state.KindMembers: true, state.KindAppUsers: true, state.KindAppGroups: true,
	state.KindRolesUser: true, state.KindRolesGroup: true,
}

// buildView decodes every live container of snap. Journal entries are not
// read: they are changes not yet committed.
func buildView(connector string, snap *state.Snapshot, log *slog.Logger) (*view, error) {
	v := &view{}
	byKey := map[string]*accessv1.AccessGrant{}
	for key, ent := range snap.Containers {
		if !ent.Exists() {
			continue
		}
		kind, id, ok := state.SplitKey(connector, key)
		if !ok {
			continue
		}
		if rk, err := subjects.KindFromToken(kind); err == nil {
			res, err := changes.DecodeResource(ent.Value)
			if err != nil {
				return nil, fmt.Errorf("read state %s: %w", key, err)
			}
			if res == nil {
				continue
			}
			v.containers++
			v.resources = append(v.resources, &accessv1.AccessResource{Kind: rk, Id: id, Revision: ent.Revision, Resource: res})
			continue
		}
		if !grantContainerKinds[kind] && !looksLikeGrantSet(ent.Value) {
			log.Debug("access: state key of an unknown kind skipped", "key", key)
			continue
		}
		set, err := changes.DecodeGrants(kind, id, ent.Value)
		if err != nil {
			if !grantContainerKinds[kind] {
				log.Warn("access: state key of an unknown kind skipped", "key", key, "error", err)
				continue
			}
			return nil, fmt.Errorf("read state %s: %w", key, err)
		}
		v.containers++
		for k, g := range set.Grants {
			// A key lives in one container; should two ever hold it, the
			// later write wins, as it would for a consumer of the stream.
			if was, dup := byKey[k]; dup && was.GetRevision() >= ent.Revision {
				continue
			}
			byKey[k] = &accessv1.AccessGrant{Kind: grantKind(g), Revision: ent.Revision, Grant: g}
		}
	}
	v.grants = make([]*accessv1.AccessGrant, 0, len(byKey))
	for _, g := range byKey {
		v.grants = append(v.grants, g)
	}
	slices.SortFunc(v.resources, compareResources)
	slices.SortFunc(v.grants, func(a, b *accessv1.AccessGrant) int {
		return cmp.Compare(a.GetGrant().GetKey(), b.GetGrant().GetKey())
	})
	return v, nil
}

// looksLikeGrantSet says whether a value is JSON (how grant sets are
// stored) rather than protobuf (how resources are).
func looksLikeGrantSet(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(b), []byte("{"))
}

func compareResources(a, b *accessv1.AccessResource) int {
	return cmp.Or(cmp.Compare(a.GetKind(), b.GetKind()), cmp.Compare(a.GetId(), b.GetId()))
}

// grantKind is the kind of g's entitlement.
func grantKind(g *eventsv1.Grant) eventsv1.GrantKind {
	switch g.GetEntitlement().(type) {
	case *eventsv1.Grant_GroupMembership:
		return eventsv1.GrantKind_GRANT_KIND_GROUP_MEMBERSHIP
	case *eventsv1.Grant_AppAssignment:
		return eventsv1.GrantKind_GRANT_KIND_APP_ASSIGNMENT
	case *eventsv1.Grant_RoleAssignment:
		return eventsv1.GrantKind_GRANT_KIND_ROLE_ASSIGNMENT
	case *eventsv1.Grant_ResourceSetBinding:
		return eventsv1.GrantKind_GRANT_KIND_RESOURCE_SET_BINDING
	}
	return eventsv1.GrantKind_GRANT_KIND_UNSPECIFIED
}

// grantFilter is a ListGrants filter; the zero value matches every grant.
type grantFilter struct {
	userID, groupID, appID, role string
	kind                         eventsv1.GrantKind
}

func (f grantFilter) match(ag *accessv1.AccessGrant) bool {
	if f.kind != eventsv1.GrantKind_GRANT_KIND_UNSPECIFIED && ag.GetKind() != f.kind {
		return false
	}
	g := ag.GetGrant()
	p := g.GetPrincipal()
	switch {
	case f.userID != "":
		return p.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_USER && p.GetId() == f.userID
	case f.groupID != "":
		if p.GetType() == eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP && p.GetId() == f.groupID {
			return true
		}
		return g.GetGroupMembership().GetGroupId() == f.groupID
	case f.appID != "":
		return g.GetAppAssignment().GetAppId() == f.appID
	case f.role != "":
		if ra := g.GetRoleAssignment(); ra != nil {
			return ra.GetRoleType() == f.role || ra.GetCustomRoleId() == f.role
		}
		return g.GetResourceSetBinding().GetRoleId() == f.role
	}
	return true
}

// String is the filter as the page token's query fingerprint and error
// messages show it.
func (f grantFilter) String() string {
	return fmt.Sprintf("user=%s group=%s app=%s role=%s kind=%s", f.userID, f.groupID, f.appID, f.role, f.kind)
}
