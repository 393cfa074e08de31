package subjects

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
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
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		_, _ = io.WriteString(h, p) // a hash.Hash never fails to write
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:MsgIDLen/2])
}
