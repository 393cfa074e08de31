package changes

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// Field numbers shared by GrantAdded and GrantRemoved (change.proto).
const (
	grantEventContextField = 1
	grantEventGrantField   = 2
	grantAddedChangedField = 3
)

// grantWire is a GrantAdded or GrantRemoved event that encodes itself
// (bus.WireAppender): the events of one container share their
// ChangeContext, which is encoded once for all of them (context), so an
// event costs the encoding of its grant only. The bytes are those
// proto.Marshal gives for the message (fields in number order, a false
// bool left out); TestGrantWireIsProtoMarshal holds them to it.
type grantWire struct {
	grantEvent
	context []byte
}

// grantEvent is *eventsv1.GrantAdded or *eventsv1.GrantRemoved.
type grantEvent interface {
	proto.Message
	GetGrant() *eventsv1.Grant
}

// encodeContextField encodes cc as field 1 of a grant event; nil for a
// nil cc, which proto.Marshal leaves out.
func encodeContextField(cc *eventsv1.ChangeContext) ([]byte, error) {
	if cc == nil {
		return nil, nil
	}
	b, err := proto.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("encode change context: %w", err)
	}
	out := protowire.AppendTag(make([]byte, 0, len(b)+4), grantEventContextField, protowire.BytesType)
	return protowire.AppendBytes(out, b), nil
}

func grantAddedWire(context []byte, cc *eventsv1.ChangeContext, g *eventsv1.Grant, changed bool) grantWire {
	return grantWire{&eventsv1.GrantAdded{Context: cc, Grant: g, AttributesChanged: changed}, context}
}

func grantRemovedWire(context []byte, cc *eventsv1.ChangeContext, g *eventsv1.Grant) grantWire {
	return grantWire{&eventsv1.GrantRemoved{Context: cc, Grant: g}, context}
}

// AppendWire implements bus.WireAppender.
func (w grantWire) AppendWire(b []byte) ([]byte, error) {
	b = append(b, w.context...)
	if g := w.GetGrant(); g != nil {
		b = protowire.AppendTag(b, grantEventGrantField, protowire.BytesType)
		if m, ok := membershipWire(g); ok {
			b = m.append(b)
		} else {
			b = protowire.AppendVarint(b, uint64(proto.Size(g)))
			var err error
			if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, g); err != nil {
				return nil, fmt.Errorf("encode grant %s: %w", g.GetKey(), err)
			}
		}
	}
	if a, ok := w.grantEvent.(*eventsv1.GrantAdded); ok && a.GetAttributesChanged() {
		b = protowire.AppendTag(b, grantAddedChangedField, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b, nil
}

// Field numbers of a group membership grant (grant.proto).
const (
	grantKeyField        = 1
	grantPrincipalField  = 2
	grantMembershipField = 3
	principalTypeField   = 1
	principalIDField     = 2
	membershipGroupField = 1
)

// membership is a group membership grant, which most grant events of an org
// carry, encoded without the generic encoder.
type membership struct {
	key, userID, groupID string
	principalType        uint64
	principal            bool // the grant has a principal
}

// membershipWire returns g's parts when g is a plain group membership
// grant (no unknown fields) that the direct encoding covers.
func membershipWire(g *eventsv1.Grant) (membership, bool) {
	gm := g.GetGroupMembership()
	if gm == nil || len(g.ProtoReflect().GetUnknown()) > 0 || len(gm.ProtoReflect().GetUnknown()) > 0 {
		return membership{}, false
	}
	m := membership{key: g.GetKey(), groupID: gm.GetGroupId()}
	if p := g.GetPrincipal(); p != nil {
		if len(p.ProtoReflect().GetUnknown()) > 0 {
			return membership{}, false
		}
		m.principal, m.userID, m.principalType = true, p.GetId(), uint64(p.GetType())
	}
	return m, true
}

// appendString appends a proto3 string field, left out when empty.
func appendString(b []byte, field protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// principalSize is the encoded size of the principal message.
func (m membership) principalSize() int {
	n := 0
	if m.principalType != 0 {
		n += protowire.SizeTag(principalTypeField) + protowire.SizeVarint(m.principalType)
	}
	if m.userID != "" {
		n += protowire.SizeTag(principalIDField) + protowire.SizeBytes(len(m.userID))
	}
	return n
}

// groupSize is the encoded size of the group membership message.
func (m membership) groupSize() int {
	if m.groupID == "" {
		return 0
	}
	return protowire.SizeTag(membershipGroupField) + protowire.SizeBytes(len(m.groupID))
}

// append appends the grant's length and encoding.
func (m membership) append(b []byte) []byte {
	ps, gs := m.principalSize(), m.groupSize()
	n := protowire.SizeTag(grantMembershipField) + protowire.SizeBytes(gs)
	if m.key != "" {
		n += protowire.SizeTag(grantKeyField) + protowire.SizeBytes(len(m.key))
	}
	if m.principal {
		n += protowire.SizeTag(grantPrincipalField) + protowire.SizeBytes(ps)
	}
	b = protowire.AppendVarint(b, uint64(n))
	b = appendString(b, grantKeyField, m.key)
	if m.principal {
		b = protowire.AppendTag(b, grantPrincipalField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(ps))
		if m.principalType != 0 {
			b = protowire.AppendTag(b, principalTypeField, protowire.VarintType)
			b = protowire.AppendVarint(b, m.principalType)
		}
		b = appendString(b, principalIDField, m.userID)
	}
	b = protowire.AppendTag(b, grantMembershipField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(gs))
	return appendString(b, membershipGroupField, m.groupID)
}
