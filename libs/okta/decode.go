package okta

import (
	"encoding/json"

	gojson "github.com/goccy/go-json"
)

// Page decoding. The pages of the lists (users, group members, app users,
// groups, apps) are decoded with github.com/goccy/go-json, which decodes
// as encoding/json does (decode_test.go checks it against encoding/json on
// these types and on the simulator's pages) in a fraction of the time:
// encoding/json was the largest part of what reading a large org cost
// besides the network. Decoded strings are copies, so a page's buffer may
// be reused (releaseBody) once decoded.

// decodeJSON decodes data into a V. A page go-json refuses is decoded
// again by encoding/json, into a fresh V, so that the result and the error
// of a page that is not what we expect are encoding/json's.
func decodeJSON[V any](data []byte) (V, error) {
	var v V
	if err := gojson.Unmarshal(data, &v); err == nil {
		return v, nil
	}
	var w V
	err := json.Unmarshal(data, &w)
	return w, err
}

// decodeWire decodes a page as []W and converts it.
func decodeWire[W, T any](body []byte, conv func(W) T) ([]T, error) {
	page, err := decodeJSON[[]W](body)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(page))
	for _, w := range page {
		out = append(out, conv(w))
	}
	return out, nil
}
