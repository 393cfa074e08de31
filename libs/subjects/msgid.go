package subjects

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// MsgIDLen is the length of the ids MsgID returns.
const MsgIDLen = 32

// MsgID returns a deterministic Nats-Msg-Id for a message identified by
// parts: the first 128 bits of the SHA-256 of the parts, each preceded by its
// length, in lowercase hex (MsgIDLen characters).
//
// The length prefixes make the id depend on where the parts split, so
// ("a.b", "c") and ("a", "b.c") get different ids, as do ("a") and ("a", "").
// docs/events.md says which parts each subject's id is made of: the source
// identity and the change (such as connector, grant key, verb and revision),
// never anything random or read from a clock, so that a retried publish gets
// the same id and the stream drops it.
func MsgID(parts ...string) string {
	// The hashed bytes built on the stack when they fit (a sync makes an id
	// per event): the same bytes, hence the same id, as writing each part
	// to a hash.
	var stack [256]byte
	in := stack[:0]
	for _, p := range parts {
		in = binary.AppendUvarint(in, uint64(len(p)))
		in = append(in, p...)
	}
	sum := sha256.Sum256(in)
	var out [MsgIDLen]byte
	hex.Encode(out[:], sum[:MsgIDLen/2])
	return string(out[:])
}
