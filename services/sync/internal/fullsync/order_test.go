package fullsync

import (
	"slices"
	"testing"

	"github.com/accessbus/accessbus/libs/okta"
)

// Members are read largest group first; groups whose count Okta did not
// give come last, in list order, and the list itself is left as it was.
func TestLargestFirst(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	groups := []okta.Group{{ID: "a", UsersCount: n(3)}, {ID: "b"}, {ID: "c", UsersCount: n(10)}, {ID: "d", UsersCount: n(3)}, {ID: "e"}, {ID: "f", UsersCount: n(0)}}
	var got []string
	for _, g := range largestFirst(groups) {
		got = append(got, g.ID)
	}
	if want := []string{"c", "a", "d", "f", "b", "e"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if groups[0].ID != "a" || groups[2].ID != "c" {
		t.Errorf("the groups list was reordered: %v", groups)
	}
}
