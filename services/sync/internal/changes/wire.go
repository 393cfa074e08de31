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
	proto.Message // *eventsv1.GrantAdded or *eventsv1.GrantRemoved
	context       []byte
	grant         *eventsv1.Grant
	changed       bool
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
	return grantWire{
		Message: &eventsv1.GrantAdded{Context: cc, Grant: g, AttributesChanged: changed},
		context: context, grant: g, changed: changed,
	}
}

func grantRemovedWire(context []byte, cc *eventsv1.ChangeContext, g *eventsv1.Grant) grantWire {
	return grantWire{Message: &eventsv1.GrantRemoved{Context: cc, Grant: g}, context: context, grant: g}
}

// AppendWire implements bus.WireAppender.
func (w grantWire) AppendWire(b []byte) ([]byte, error) {
	b = append(b, w.context...)
	if w.grant != nil {
		b = protowire.AppendTag(b, grantEventGrantField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(w.grant)))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, w.grant); err != nil {
			return nil, fmt.Errorf("encode grant %s: %w", w.grant.GetKey(), err)
		}
	}
	if w.changed {
		b = protowire.AppendTag(b, grantAddedChangedField, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b, nil
}
