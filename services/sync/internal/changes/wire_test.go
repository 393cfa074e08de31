package changes

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

func wireTestGrants(t *testing.T, profileKeys ...string) []*eventsv1.Grant {
	t.Helper()
	fields := map[string]any{}
	for i, k := range profileKeys {
		fields[k] = float64(i)
	}
	profile, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	unknown := Membership("00g2", "00u2") // unknown fields: the generic encoder's
	unknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	return []*eventsv1.Grant{
		unknown,
		Membership("00g1", "00u1"),
		Membership("", ""),
		{Key: "group_membership/g/u", Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{}}},
		{Principal: &eventsv1.Principal{}, Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: "00g9"}}},
		{Principal: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP}, Entitlement: &eventsv1.Grant_GroupMembership{GroupMembership: &eventsv1.GroupMembership{GroupId: strings.Repeat("long", 40)}}},
		{
			Key:       "app_assignment/0oa1/user/00u2",
			Principal: &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u2"},
			Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{
				AppId: "0oa1", Scope: eventsv1.AppAssignment_SCOPE_GROUP, ViaGroupIds: []string{"00g1", "00g2"},
				Profile: profile, Status: "ACTIVE", Priority: 3, LastUpdated: timestamppb.New(time.Unix(1700000000, 5)),
			}},
		},
		{
			Key:         "role_assignment/group/00g3/group/CUSTOM/cr1/rs1",
			Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: "00g3"},
			Entitlement: &eventsv1.Grant_RoleAssignment{RoleAssignment: &eventsv1.RoleAssignment{AssignmentId: "ra1", RoleType: "CUSTOM", Label: "Helpdesk", CustomRoleId: "cr1"}},
		},
		{
			Key:         "resource_set_binding/rs1/cr1/user/00u4",
			Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: "00u4"},
			Entitlement: &eventsv1.Grant_ResourceSetBinding{ResourceSetBinding: &eventsv1.ResourceSetBinding{ResourceSetId: "rs1", RoleId: "cr1", MemberId: "m1"}},
		},
		{Key: "no principal, no entitlement"},
		nil,
	}
}

func wireTestContexts() []*eventsv1.ChangeContext {
	return []*eventsv1.ChangeContext{
		{ConnectorId: "c1", ObservedAt: timestamppb.New(time.Unix(1800000000, 123)), RunId: "run-1", Cause: eventsv1.ChangeCause_CHANGE_CAUSE_FULL_SYNC, Revision: 42},
		{ConnectorId: "c1", Cause: eventsv1.ChangeCause_CHANGE_CAUSE_TARGETED_SYNC, OktaEventUuids: []string{"u1", "u2"}, ProvisioningRequestId: "p1"},
		{},
		nil,
	}
}

// A grant event built from its parts encodes to the bytes proto.Marshal
// gives for the whole message.
func TestGrantWireIsProtoMarshal(t *testing.T) {
	for _, cc := range wireTestContexts() {
		ctxField, err := encodeContextField(cc)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range wireTestGrants(t, "only") { // one key: a Struct's map order cannot differ
			for _, changed := range []bool{false, true} {
				for _, w := range []grantWire{grantAddedWire(ctxField, cc, g, changed), grantRemovedWire(ctxField, cc, g)} {
					got, err := w.AppendWire([]byte("prefix"))
					if err != nil {
						t.Fatal(err)
					}
					want, err := proto.Marshal(w.grantEvent)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, append([]byte("prefix"), want...)) {
						t.Fatalf("%T of grant %q, context %v, changed %v:\n got %x\nwant prefix+%x", w.grantEvent, g.GetKey(), cc, changed, got, want)
					}
				}
			}
		}
	}
}

// With a profile of many keys (a map, encoded in any order) the bytes
// decode to the same event.
func TestGrantWireDecodesToTheEvent(t *testing.T) {
	cc := wireTestContexts()[0]
	ctxField, err := encodeContextField(cc)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range wireTestGrants(t, "a", "b", "c", "d") {
		w := grantAddedWire(ctxField, cc, g, true)
		b, err := w.AppendWire(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got eventsv1.GrantAdded
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, w.grantEvent) {
			t.Fatalf("decoded %v, want %v", &got, w.grantEvent)
		}
	}
}
