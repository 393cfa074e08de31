package okta

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestIDsOf: idsOf agrees with encoding/json on the ids of every page, and
// fails on a page that is not JSON.
func TestIDsOf(t *testing.T) {
	pages := []string{
		`[]`,
		` [ ] `,
		`[{"id":"00u1"}]`,
		`[{"id":"00u1","profile":{"id":"nested","login":"a@b.c","tags":["x",{"id":"deep"}]},"n":12.5e3,"ok":true,"no":null},{"status":"ACTIVE","id":"00u2"}]`,
		"[\n  {\"_links\": {\"self\": {\"href\": \"https://x/api/v1/users/00u3\"}}, \"id\" : \"00u3\"}\n]",
		`[{"id":"00u4","s":"quote \" and brace } and bracket ]"}]`,
		`[{"id":"00u\u0035"}]`,       // escaped id: encoding/json decodes it
		`[{"i\u0064":"00u6"}]`,       // escaped key
		`[{"id":"a"},{"id":"b"},{}]`, // an object without id: encoding/json gives ""
		`[{"id":"a","id":"b"}]`,      // duplicate key: encoding/json keeps the last
	}
	for _, p := range pages {
		var want []wireID
		if err := json.Unmarshal([]byte(p), &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", p, err)
		}
		got, err := idsOf([]byte(p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ids := []string{}
		for _, w := range want {
			ids = append(ids, w.ID)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s: got %q, want %q", p, got, ids)
		}
	}
	for _, bad := range []string{``, `{}`, `[`, `[{"id":"a"}`, `[{"id":"a"]`, `[{"id":"a","x":[}]}]`, `[{"id":"a","x":tru}]`, `[{"id":"a"}] x`, `[{"id":"a",}]`} {
		if ids, err := idsOf([]byte(bad)); err == nil {
			t.Errorf("%q: got %q, want an error", bad, ids)
		}
	}
}
