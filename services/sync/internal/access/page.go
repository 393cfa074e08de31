package access

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Page sizes of the List calls and of snapshot chunks.
const (
	// DefaultPageSize is a List page's size when the request names none.
	DefaultPageSize = 100
	// MaxPageSize is the largest page; a larger request is clamped to it.
	MaxPageSize = 1000
	// DefaultChunkSize is how many items one ExportSnapshot message carries
	// when the request names no page size.
	DefaultChunkSize = 500
)

// pageSize applies the default and the maximum to a requested size.
func pageSize(requested int32, def int) (int, error) {
	switch {
	case requested < 0:
		return 0, fmt.Errorf("%w: page_size %d is negative", ErrInvalidRequest, requested)
	case requested == 0:
		return def, nil
	case requested > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(requested), nil
}

// cursor is what a page token carries: where the previous page ended and a
// fingerprint of the query it belongs to, so that a token reused with
// another connector or filter is refused rather than answered wrongly.
//
// Tokens are positions in the API's order (kind and id, or grant key), not
// offsets: an item added or removed between two pages does not shift the
// pages that follow, so paging never repeats or skips an item that exists
// throughout.
type cursor struct {
	// Query is the fingerprint of the query.
	Query string `json:"q"`
	// Kind is the last resource's kind number (resource pages only).
	Kind int32 `json:"k,omitempty"`
	// After is the last item's id (resources) or grant key (grants).
	After string `json:"a"`
}

// fingerprint identifies a query by its parts.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of strings and an int always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a page token of the query with fingerprint query; an
// empty token is the first page (nil).
func decodeCursor(token, query string) (*cursor, error) {
	if token == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a token this server issued: pass the next_page_token of the previous page unchanged", ErrBadPageToken, token)
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.After == "" {
		return nil, fmt.Errorf("%w: %q is not a token this server issued: pass the next_page_token of the previous page unchanged", ErrBadPageToken, token)
	}
	if c.Query != query {
		return nil, fmt.Errorf("%w: the token belongs to another query: repeat the connector, filter and kind of the request that returned it", ErrBadPageToken)
	}
	return &c, nil
}
