package changes

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/services/sync/internal/state"
)

// GrantSet is the value of a grant container: the grants of one group's
// members, one app's user or group assignments, one principal's roles, or
// the binding members of one resource set.
type GrantSet struct {
	// Marker is remembered with the grants but never compared: for a
	// members container, the group's lastMembershipUpdated, which lets a
	// later run skip re-listing an unchanged group.
	Marker string
	// Grants by Grant.key.
	Grants map[string]*eventsv1.Grant
}

// NewGrantSet returns an empty set with marker.
func NewGrantSet(marker string) *GrantSet {
	return &GrantSet{Marker: marker, Grants: map[string]*eventsv1.Grant{}}
}

// NewGrantSetSize returns an empty set with marker and room for n grants,
// so that filling it never grows its map.
func NewGrantSetSize(marker string, n int) *GrantSet {
	return &GrantSet{Marker: marker, Grants: make(map[string]*eventsv1.Grant, n)}
}

// Add puts g in the set.
func (s *GrantSet) Add(g *eventsv1.Grant) { s.Grants[g.GetKey()] = g }

// sortedKeys returns the set's keys in order.
func (s *GrantSet) sortedKeys() []string {
	keys := make([]string, 0, len(s.Grants))
	for k := range s.Grants {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// membersValue is the compact encoding of a members container: the grants
// are rebuilt from the group id (in the key) and the sorted user ids.
type membersValue struct {
	Marker string   `json:"m,omitempty"`
	Users  []string `json:"u"`
}

// grantsValue encodes any other grant container: each grant's
// deterministic proto encoding, sorted by key.
type grantsValue struct {
	Marker string   `json:"m,omitempty"`
	Grants [][]byte `json:"g"`
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// EncodeGrants encodes the value of the grant container of kind (a state
// Kind* constant).
func EncodeGrants(kind string, s *GrantSet) ([]byte, error) {
	if kind == state.KindMembers {
		// Only the user ids are kept, sorted: the keys need no sorting.
		v := membersValue{Marker: s.Marker, Users: make([]string, 0, len(s.Grants))}
		for _, g := range s.Grants {
			v.Users = append(v.Users, g.GetPrincipal().GetId())
		}
		slices.Sort(v.Users)
		return json.Marshal(v)
	}
	keys := s.sortedKeys()
	v := grantsValue{Marker: s.Marker, Grants: make([][]byte, 0, len(keys))}
	for _, k := range keys {
		b, err := deterministic.Marshal(s.Grants[k])
		if err != nil {
			return nil, fmt.Errorf("encode grant %s: %w", k, err)
		}
		v.Grants = append(v.Grants, b)
	}
	return json.Marshal(v)
}

// DecodeGrants decodes a grant container of kind; id is the container's id
// (the group of a members container). Empty data is an empty set.
func DecodeGrants(kind, id string, data []byte) (*GrantSet, error) {
	if len(data) == 0 {
		return NewGrantSet(""), nil
	}
	if kind == state.KindMembers {
		var v membersValue
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("decode members of group %s: %w", id, err)
		}
		s := NewGrantSetSize(v.Marker, len(v.Users))
		for _, u := range v.Users {
			s.Add(Membership(id, u))
		}
		return s, nil
	}
	var v grantsValue
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", kind, id, err)
	}
	s := NewGrantSetSize(v.Marker, len(v.Grants))
	for _, b := range v.Grants {
		g := &eventsv1.Grant{}
		if err := proto.Unmarshal(b, g); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", kind, id, err)
		}
		s.Add(g)
	}
	return s, nil
}

// EncodeResource encodes a resource container.
func EncodeResource(r *eventsv1.Resource) ([]byte, error) {
	b, err := deterministic.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode resource: %w", err)
	}
	return b, nil
}

// DecodeResource decodes a resource container; empty data is nil.
func DecodeResource(data []byte) (*eventsv1.Resource, error) {
	if len(data) == 0 {
		return nil, nil
	}
	r := &eventsv1.Resource{}
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("decode resource: %w", err)
	}
	return r, nil
}

// Membership is the grant of user userID's membership of group groupID.
func Membership(groupID, userID string) *eventsv1.Grant {
	return &eventsv1.Grant{
		Key:         "group_membership/" + groupID + "/" + userID,
		Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: userID},
		Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: groupID}},
	}
}

// isResourceKind says whether a container kind holds a resource.
func isResourceKind(kind string) bool {
	switch kind {
	case state.KindUser, state.KindGroup, state.KindApp, state.KindStandardRole, state.KindCustomRole, state.KindResourceSet:
		return true
	}
	return false
}

// resourceKind maps a resource container kind to its ResourceKind.
func resourceKind(kind string) eventsv1.ResourceKind {
	switch kind {
	case state.KindUser:
		return eventsv1.ResourceKind_RESOURCE_KIND_USER
	case state.KindGroup:
		return eventsv1.ResourceKind_RESOURCE_KIND_GROUP
	case state.KindApp:
		return eventsv1.ResourceKind_RESOURCE_KIND_APP
	case state.KindStandardRole:
		return eventsv1.ResourceKind_RESOURCE_KIND_STANDARD_ROLE
	case state.KindCustomRole:
		return eventsv1.ResourceKind_RESOURCE_KIND_CUSTOM_ROLE
	case state.KindResourceSet:
		return eventsv1.ResourceKind_RESOURCE_KIND_RESOURCE_SET
	}
	return eventsv1.ResourceKind_RESOURCE_KIND_UNSPECIFIED
}

// grantKind is the kind of a grant, from its key's first segment.
func grantKind(g *eventsv1.Grant) eventsv1.GrantKind {
	first, _, _ := strings.Cut(g.GetKey(), "/")
	switch first {
	case "group_membership":
		return eventsv1.GrantKind_GRANT_KIND_GROUP_MEMBERSHIP
	case "app_assignment":
		return eventsv1.GrantKind_GRANT_KIND_APP_ASSIGNMENT
	case "role_assignment":
		return eventsv1.GrantKind_GRANT_KIND_ROLE_ASSIGNMENT
	case "resource_set_binding":
		return eventsv1.GrantKind_GRANT_KIND_RESOURCE_SET_BINDING
	}
	return eventsv1.GrantKind_GRANT_KIND_UNSPECIFIED
}

// IsResourceKind says whether a container kind (a state Kind* constant)
// holds a resource rather than a set of grants.
func IsResourceKind(kind string) bool { return isResourceKind(kind) }
