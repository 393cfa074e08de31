package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/bus"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	syncsvc "github.com/accessbus/accessbus/services/sync"
)

// accessServer serves the AccessService over HTTP on a small state that the
// test writes into the sync's state bucket in the sync's format (resource
// containers: Resource protobuf; grant containers: JSON, see
// services/sync/internal/changes/codec.go), plus one ACCESS event. The
// commands call it with the API key of an identity without a platform
// role (reading takes none), from ACCESSBUS_API_KEY.
func accessServer(t *testing.T) string {
	t.Helper()
	url, key := accessServerWithKey(t)
	t.Setenv(envAPIKey, key.Reveal())
	return url
}

// accessServerWithKey is accessServer, leaving ACCESSBUS_API_KEY alone and
// returning the key.
func accessServerWithKey(t *testing.T) (string, telemetry.Secret) {
	t.Helper()
	ctx := context.Background()
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "SYNC_STATE", Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, v []byte) {
		if _, err := kv.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	res := func(key string, r *eventsv1.Resource) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		put(key, b)
	}
	grants := func(key string, gs ...*eventsv1.Grant) {
		var v struct {
			G [][]byte `json:"g"`
		}
		for _, g := range gs {
			b, err := proto.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			v.G = append(v.G, b)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		put(key, b)
	}
	user := func(id string) *eventsv1.Principal {
		return &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_USER, Id: id}
	}
	res("c1.user.00uann", &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: &eventsv1.User{Id: "00uann", Login: "ann@example.com"}}})
	res("c1.user.00ubob", &eventsv1.Resource{Resource: &eventsv1.Resource_User{User: &eventsv1.User{Id: "00ubob", Login: "bob@example.com"}}})
	res("c1.group.00geng", &eventsv1.Resource{Resource: &eventsv1.Resource_Group{Group: &eventsv1.Group{Id: "00geng", Name: "Engineering"}}})
	res("c1.app.0oawd", &eventsv1.Resource{Resource: &eventsv1.Resource_App{App: &eventsv1.App{Id: "0oawd", Label: "Workday, Inc."}}})
	res("c1.standard_role.SUPER_ADMIN", &eventsv1.Resource{Resource: &eventsv1.Resource_StandardRole{StandardRole: &eventsv1.StandardRole{Type: "SUPER_ADMIN", Label: "Super Administrator"}}})
	put("c1.members.00geng", []byte(`{"u":["00uann","00ubob"]}`))
	grants("c1.appusers.0oawd",
		&eventsv1.Grant{Key: "app_assignment/0oawd/user/00uann", Principal: user("00uann"), Entitlement: &eventsv1.Grant_AppAssignment{
			AppAssignment: &eventsv1.AppAssignment{AppId: "0oawd", Scope: eventsv1.AppAssignment_SCOPE_USER, Status: "ACTIVE"}}},
		&eventsv1.Grant{Key: "app_assignment/0oawd/user/00ubob", Principal: user("00ubob"), Entitlement: &eventsv1.Grant_AppAssignment{
			AppAssignment: &eventsv1.AppAssignment{AppId: "0oawd", Scope: eventsv1.AppAssignment_SCOPE_GROUP, ViaGroupIds: []string{"00geng"}, Status: "ACTIVE"}}})
	grants("c1.appgroups.0oawd",
		&eventsv1.Grant{Key: "app_assignment/0oawd/group/00geng",
			Principal:   &eventsv1.Principal{Type: eventsv1.PrincipalType_PRINCIPAL_TYPE_GROUP, Id: "00geng"},
			Entitlement: &eventsv1.Grant_AppAssignment{AppAssignment: &eventsv1.AppAssignment{AppId: "0oawd"}}})
	grants("c1.roles.user.00uann",
		&eventsv1.Grant{Key: "role_assignment/user/00uann/user/SUPER_ADMIN", Principal: user("00uann"), Entitlement: &eventsv1.Grant_RoleAssignment{
			RoleAssignment: &eventsv1.RoleAssignment{RoleType: "SUPER_ADMIN", AssignmentType: eventsv1.RoleAssignment_ASSIGNMENT_TYPE_USER,
				Status: eventsv1.RoleAssignment_STATUS_ACTIVE}}})
	if _, err := js.Publish(ctx, "access.c1.resource.user.upserted", []byte{}); err != nil {
		t.Fatal(err)
	}

	keys, err := auth.Open(ctx, js, auth.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.NewKey(ctx, "idn-reader", "test")
	if err != nil {
		t.Fatal(err)
	}
	hold := func(context.Context, string) (func(), error) { return func() {}, nil }
	path, h, err := syncsvc.AccessHandler(ctx, js, syncsvc.AccessConfig{Auth: keys, Hold: hold, StateStorage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, key
}

// TestAccessNeedsAKey: without an API key the access commands are refused
// and say how to give one; the key in a data dir's admin-api-key file
// (--data-dir) works as well as ACCESSBUS_API_KEY.
func TestAccessNeedsAKey(t *testing.T) {
	srv, key := accessServerWithKey(t)
	t.Setenv(envAPIKey, "")
	empty := t.TempDir()
	for _, args := range [][]string{
		{"access", "list", "--connector", "c1"},
		{"access", "export", "--connector", "c1", "--format", "csv"},
	} {
		out, err := runCLI(t, append(args, "--server", srv, "--data-dir", empty)...)
		if err == nil || !strings.Contains(err.Error(), "unauthenticated") || !strings.Contains(err.Error(), envAPIKey) ||
			!strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), adminAPIKeyFile) {
			t.Errorf("%v without a key: %v\n%s", args, err, out)
		}
		if out != "" {
			t.Errorf("%v without a key printed:\n%s", args, out)
		}
	}
	withKey := t.TempDir()
	if err := os.WriteFile(filepath.Join(withKey, adminAPIKeyFile), []byte(key.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "access", "list", "--connector", "c1", "--user", "00uann", "--server", srv, "--data-dir", withKey); err != nil || !strings.Contains(out, "SUPER_ADMIN") {
		t.Fatalf("with the data dir's key: %v\n%s", err, out)
	}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := realMain(context.Background(), args, &out, &errOut)
	return out.String(), err
}

func TestAccessList(t *testing.T) {
	srv := accessServer(t)
	out, err := runCLI(t, "access", "list", "--connector", "c1", "--user", "00uann", "--server", srv)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "PRINCIPAL") {
		t.Fatalf("ann's access:\n%s", out)
	}
	for _, want := range []string{"user 00uann  app_assignment    app 0oawd", "group_membership  group 00geng",
		"role_assignment   standard_role SUPER_ADMIN  role=SUPER_ADMIN scope=user status=active"} {
		if !strings.Contains(out, want) {
			t.Errorf("ann's access lacks %q:\n%s", want, out)
		}
	}

	out, err = runCLI(t, "access", "list", "--connector", "c1", "--app", "0oawd", "--json", "--server", srv, "--page-size", "1")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var g struct {
			Kind  string `json:"kind"`
			Grant struct {
				Key string `json:"key"`
			} `json:"grant"`
		}
		if err := json.Unmarshal([]byte(l), &g); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		keys = append(keys, g.Grant.Key)
	}
	want := []string{"app_assignment/0oawd/group/00geng", "app_assignment/0oawd/user/00uann", "app_assignment/0oawd/user/00ubob"}
	if !slices.Equal(keys, want) {
		t.Fatalf("app's assignees %v, want %v", keys, want)
	}

	out, err = runCLI(t, "access", "list", "--connector", "c1", "--group", "00geng", "--kind", "group_membership", "--server", srv)
	if err != nil || strings.Count(out, "group_membership") != 2 || strings.Contains(out, "app_assignment") {
		t.Fatalf("group members: %v\n%s", err, out)
	}
	out, err = runCLI(t, "access", "list", "--connector", "c1", "--role", "NOBODY_ADMIN", "--server", srv)
	if err != nil || !strings.Contains(out, "(no grants)") {
		t.Fatalf("role without holders: %v\n%s", err, out)
	}
}

func TestAccessListErrors(t *testing.T) {
	srv := accessServer(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown connector", []string{"--connector", "c2", "--server", srv}, `connector "c2" has no synced state`},
		{"two filters", []string{"--connector", "c1", "--user", "u", "--group", "g", "--server", srv}, "none of the others can be"},
		{"no connector", []string{"--server", srv}, `"connector" not set`},
		{"bad kind", []string{"--connector", "c1", "--kind", "hat", "--server", srv}, `--kind "hat"`},
		{"no server", []string{"--connector", "c1", "--server", "http://127.0.0.1:1"}, "is accessbus dev running"},
	}
	for _, tc := range cases {
		_, err := runCLI(t, append([]string{"access", "list"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestAccessExport(t *testing.T) {
	srv := accessServer(t)
	dir := t.TempDir()

	jsonFile := filepath.Join(dir, "c1.json")
	if _, err := runCLI(t, "access", "export", "--connector", "c1", "--format", "json", "--out", jsonFile, "--server", srv); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Header struct {
			ConnectorID    string `json:"connectorId"`
			AccessSequence string `json:"accessSequence"`
			ResourceCount  string `json:"resourceCount"`
			GrantCount     string `json:"grantCount"`
		} `json:"header"`
		Resources []json.RawMessage `json:"resources"`
		Grants    []json.RawMessage `json:"grants"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("json export: %v\n%s", err, b)
	}
	if doc.Header.ConnectorID != "c1" || doc.Header.AccessSequence != "1" || len(doc.Resources) != 5 || len(doc.Grants) != 6 ||
		doc.Header.ResourceCount != "5" || doc.Header.GrantCount != "6" {
		t.Fatalf("json export header %+v, %d resources, %d grants", doc.Header, len(doc.Resources), len(doc.Grants))
	}

	out, err := runCLI(t, "access", "export", "--connector", "c1", "--format", "csv", "--server", srv)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv export: %v\n%s", err, out)
	}
	if len(rows) != 7 || !slices.Equal(rows[0], csvHeader) {
		t.Fatalf("csv export: %d rows, header %v", len(rows), rows[0])
	}
	want := []string{"c1", "1", "app_assignment/0oawd/user/00ubob", "app_assignment", "user", "00ubob", "bob@example.com",
		"app", "0oawd", "Workday, Inc.", "", "group", "00geng", "ACTIVE"}
	if !slices.ContainsFunc(rows, func(r []string) bool { return slices.Equal(r, want) }) {
		t.Fatalf("csv export lacks %v:\n%s", want, out)
	}

	// Failures leave no file behind.
	bad := filepath.Join(dir, "c2.csv")
	if _, err := runCLI(t, "access", "export", "--connector", "c2", "--format", "csv", "--out", bad, "--server", srv); err == nil ||
		!strings.Contains(err.Error(), `connector "c2"`) {
		t.Fatalf("export of an unknown connector: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files after a failed export: %v", entries)
	}
	if _, err := runCLI(t, "access", "export", "--connector", "c1", "--format", "xml", "--server", srv); err == nil || !strings.Contains(err.Error(), "want json or csv") {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := runCLI(t, "access", "export", "--connector", "c1", "--out", filepath.Join(dir, "missing", "x.json"), "--server", srv); err == nil ||
		!strings.Contains(err.Error(), "create") {
		t.Fatalf("unwritable --out: %v", err)
	}
}
