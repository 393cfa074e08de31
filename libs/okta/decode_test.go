package okta

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/libs/oktasim"
	gojson "github.com/goccy/go-json"
)

// agree checks that decodeWire gives what encoding/json gives, value or
// error, and that go-json alone agrees with encoding/json on whether the
// page is JSON of the type: a page it refused would be decoded twice.
func agree[W, T any](t *testing.T, page string, conv func(W) T) {
	t.Helper()
	var wire []W
	wantErr := json.Unmarshal([]byte(page), &wire)
	var want []T
	if wantErr == nil {
		want = make([]T, 0, len(wire))
		for _, w := range wire {
			want = append(want, conv(w))
		}
	}
	got, err := decodeWire([]byte(page), conv)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Errorf("%s:\n error %v\n want  %v", page, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", page, got, want)
	}
	var direct []W
	if err := gojson.Unmarshal([]byte(page), &direct); (err == nil) != (wantErr == nil) {
		t.Errorf("%s: go-json error %v, encoding/json error %v", page, err, wantErr)
	} else if err == nil && !reflect.DeepEqual(direct, wire) {
		t.Errorf("%s:\n go-json       %+v\n encoding/json %+v", page, direct, wire)
	}
}

const fullUser = `{"id":"00u1","status":"ACTIVE","created":"2023-11-01T10:00:00.000Z","activated":"2023-11-01T10:00:00.000Z",` +
	`"statusChanged":"2024-01-01T00:00:00Z","lastLogin":null,"lastUpdated":"2025-06-01T12:30:45.123456789+02:00",` +
	`"passwordChanged":"2023-11-01T10:00:00.000Z","type":{"id":"oty1"},` +
	`"profile":{"login":"a@example.com","email":"a@example.com","firstName":"Ann","lastName":"Lee","displayName":"Ann Lee",` +
	`"department":"IT","title":"Admin","managerId":"00u9","employeeNumber":"100","userType":"Employee",` +
	`"mobilePhone":null,"costCenter":12.5e-3,"tags":["a",{"b":[true,false,null]}],"nested":{"login":"not this"}},` +
	`"credentials":{"provider":{"name":"OKTA","type":"OKTA"}},"_links":{"self":{"href":"https://x/api/v1/users/00u1"}}}`

// TestDecodeUsers: users pages decode as encoding/json decodes them:
// values, escapes, invalid UTF-8, duplicate and case-folded keys, nulls,
// numbers, and errors.
func TestDecodeUsers(t *testing.T) {
	pages := []string{
		`[]`,
		" [\n] ",
		`[` + fullUser + `]`,
		`[` + fullUser + `,` + strings.ReplaceAll(fullUser, "00u1", "00u2") + `]`,
		`[{"id":"00u3"}]`,
		`[{"id":null,"status":null,"created":null,"profile":null}]`,
		`[{"id":"00u4","profile":{}}]`,
		// escapes and non-ASCII values
		`[{"id":"00u5","profile":{"firstName":"Jos\u00e9","lastName":"O\"Brien","displayName":"a\/b\\c\n","title":"Café ☕"}}]`,
		"[{\"id\":\"00u6\",\"profile\":{\"firstName\":\"bad \xff utf8\"}}]",
		`[{"id":"00u7","status":"S\u0055SPENDED"}]`,
		// duplicate keys: the last wins, a second profile adds to the first
		`[{"id":"a","id":"b","profile":{"login":"x","email":"e"},"profile":{"login":"y"}}]`,
		// keys that only look like the ones read
		`[{"id":"00u8","ids":"x","i":"y","profileX":{"login":"z"},"lastLogins":5}]`,
		// keys of every kind inside what is passed over
		`[{"id":"00u10","extra":{"kéy":1,"k\u0065y":[{"\"":null}]},"profile":{"custom":{"Login":"x","ſ":"y"}}}]`,
		// numbers of every form
		`[{"id":"00u9","n":[0,-0,1.5,-2e10,3E+2,4e-2,123456789012345678901234567890]}]`,
	}
	pages = append(pages,
		`null`,
		`[{"ID":"00u1"}]`, // encoding/json matches keys case-insensitively
		`[{"id":"00u1","Profile":{"login":"x"}}]`,
		`[{"id":"00u1","profile":{"LOGIN":"x"}}]`,
		`[{"i\u0064":"00u1"}]`,                  // an escaped key
		`[{"id":"00u1","ſtatus":"ACTIVE"}]`,     // a key that folds to "status"
		`[{"id":"00u1","status":5}]`,            // a type error
		`[{"id":"00u1","created":"yesterday"}]`, // a bad time
		`[{"id":"00u1","created":5}]`,
		`[{"id":"00u1","profile":"x"}]`,
		`[{"id":"00u1"},null]`,
		`[{"id":"00u1",}]`,
		`[{"id":"00u1"}`,
		`[{"id":"00u1"}] x`,
		`[{"id":"00u1","x":01}]`,
		`[{"id":"00u1","x":1.}]`,
		`[{"id":"00u1","x":"\x"}]`,
		`[{"id":"00u1","x":tru}]`,
		"[{\"id\":\"00u1\",\"x\":\"tab\tinside\"}]",
		`[{"id":"00u1","x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}]`,
		`{}`,
		``,
	)
	for _, p := range pages {
		agree(t, p, wireUser.user)
		agree(t, p, wireID.id)
	}
}

// TestDecodeAppUsers: app users pages decode as encoding/json decodes
// them, profiles (map[string]any: float64 numbers, nested values, nil or
// empty, merged duplicates) and links included.
func TestDecodeAppUsers(t *testing.T) {
	base := `"id":"00u1","externalId":"0bd4","created":"2025-11-07T04:18:29.328Z","lastUpdated":"2025-11-08T04:18:29.328Z",` +
		`"scope":"GROUP","status":"PROVISIONED","statusChanged":"2025-11-07T04:18:29.328Z","passwordChanged":null,` +
		`"syncState":"SYNCHRONIZED","lastSync":"2025-11-07T04:18:29.328Z","credentials":{"userName":"a@example.com"}`
	links := `"_links":{"app":{"href":"https://x/api/v1/apps/0oa1"},"user":{"href":"https://x/api/v1/users/00u1"},"group":{"href":"https://x/api/v1/groups/00g7"}}`
	pages := []string{
		`[]`,
		`[{` + base + `,"profile":{},` + links + `}]`,
		`[{` + base + `,` + links + `}]`, // no profile: nil
		`[{` + base + `,"profile":null}]`,
		`[{` + base + `,"profile":{"role":"viewer","licenses":["a","b"],"quota":12,"ratio":0.5,"admin":true,"manager":null,"org":{"unit":"x","n":[1,{"y":"\u00e9"}]}}}]`,
		`[{` + base + `,"profile":{"userName":"a@example.com","email":"a@example.com","givenName":"Ann","familyName":"Lee"}}]`,
		`[{` + base + `,"profile":{"n":-0,"f":1.5e3,"g":-12,"t":true,"x":false,"z":null,"s":"","u":"Jos\u00e9","v":"Zoë","a":1,"a":2}}]`,
		"[{\"id\":\"00u1\",\"profile\":{\"bad\":\"\xff\",\"k\u00e9y\":1}}]",
		`[{` + base + `,"profile":{"a":1},"profile":{"b":2}}]`, // one map, both keys
		`[{` + base + `,"profile":{"a":1},"profile":{}}]`,
		`[{` + base + `,"profile":{"a":1},"profile":null}]`,
		`[{"id":"00u2","scope":"USER","_links":{"group":null}}]`,
		`[{"id":"00u2","_links":{"group":{}}}]`,
		`[{"id":"00u2","_links":{"group":{"href":"https://x/api/v1/groups/00g1"},"group":null}}]`,
		`[{"id":"00u2","_links":{"group":{"href":"https://x/api/v1/groups/00g1"},"group":{"name":"x"}}}]`,
		`[{"id":"00u2","_links":null}]`,
		`[{"id":"00u2","_links":{"group":{"href":"https://x/api/v1/groups/00g\u0031"}}}]`,
	}
	pages = append(pages,
		`[{"id":"00u2","_links":{"Group":{"href":"https://x/api/v1/groups/00g1"}}}]`,
		`[{"id":"00u2","_links":{"group":{"HREF":"https://x/api/v1/groups/00g1"}}}]`,
		`[{"id":"00u2","SCOPE":"USER"}]`,
		`[{"id":"00u2","profile":[]}]`,
		`[{"id":"00u2","profile":{"a":1e400}}]`, // out of range for a float64
		`[{"id":"00u2","profile":{"a":}}]`,
		`[{"id":"00u2","_links":{"group":"x"}}]`,
		`[{"id":"00u2","_links":[]}]`,
	)
	for _, p := range pages {
		agree(t, p, wireAppUser.appUser)
	}
}

// TestDecodeSimulatorPages decodes the simulator's pages of every list
// decoded by decodeWire and idsOf both ways.
func TestDecodeSimulatorPages(t *testing.T) {
	run := startSim(t, oktasim.Config{RateLimits: oktasim.NoLimits})
	c := newClient(t, run, run.Tokens.SuperAdmin, nil)
	ctx := context.Background()
	pages := 0
	check := func(path string, decode func(string)) {
		t.Helper()
		err := linkPaged(ctx, c, "list "+path, path, func(body []byte) ([]struct{}, error) {
			pages++
			decode(string(body))
			return nil, nil
		}, func([]struct{}) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	users := func(p string) {
		agree(t, p, wireUser.user)
		agree(t, p, wireID.id)
	}
	check("/api/v1/users?limit=50", users)
	check("/api/v1/groups?limit=50&expand=stats", func(p string) { agree(t, p, wireGroup.group) })
	check("/api/v1/apps?limit=50", func(p string) { agree(t, p, wireApp.app) })
	groups := collect(t, func(f func([]Group) error) error { return c.ListGroups(ctx, ListGroupsOptions{}, f) })
	check("/api/v1/groups/"+groups[0].ID+"/users?limit=1000", users)
	apps := collect(t, func(f func([]App) error) error { return c.ListApps(ctx, ListAppsOptions{IncludeInactive: true}, f) })
	for _, a := range apps {
		check("/api/v1/apps/"+a.ID+"/users?limit=500", func(p string) { agree(t, p, wireAppUser.appUser) })
		check("/api/v1/apps/"+a.ID+"/groups?limit=200", func(p string) { agree(t, p, wireAppGroup.appGroup) })
	}
	if pages < 5 {
		t.Errorf("only %d pages read", pages)
	}
}

// benchPage is a page of n copies of obj.
func benchPage(obj string, n int) []byte {
	return []byte("[" + strings.TrimSuffix(strings.Repeat(obj+",", n), ",") + "]")
}

func BenchmarkDecodeUsers(b *testing.B) {
	page := benchPage(fullUser, 200)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeWire(page, wireUser.user); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUsersEncodingJSON(b *testing.B) {
	page := benchPage(fullUser, 200)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		var wire []wireUser
		if err := json.Unmarshal(page, &wire); err != nil {
			b.Fatal(err)
		}
		out := make([]User, 0, len(wire))
		for _, w := range wire {
			out = append(out, w.user())
		}
	}
}

func BenchmarkMemberIDs(b *testing.B) {
	page := benchPage(fullUser, 1000)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := idsOf(page); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemberIDsEncodingJSON(b *testing.B) {
	page := benchPage(fullUser, 1000)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		var wire []wireID
		if err := json.Unmarshal(page, &wire); err != nil {
			b.Fatal(err)
		}
	}
}
