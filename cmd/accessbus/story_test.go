package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/auth"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/catalog"
	"github.com/accessbus/accessbus/services/notifier"
	"github.com/accessbus/accessbus/services/notifier/mailcapture"
)

// storyWait bounds each wait of TestStory: a failure deadline, not an
// expectation of speed.
const storyWait = 90 * time.Second

// person is someone calling the catalog's API with their own key.
type person struct {
	email string
	key   telemetry.Secret
	conns catalogv1connect.ConnectorServiceClient
	apps  catalogv1connect.CatalogServiceClient
	admin catalogv1connect.AdminServiceClient
}

func newPerson(server, email, key string) *person {
	opt := connect.WithInterceptors(auth.ClientKey(telemetry.NewSecret(key)))
	return &person{email: email, key: telemetry.NewSecret(key),
		conns: catalogv1connect.NewConnectorServiceClient(http.DefaultClient, server, opt),
		apps:  catalogv1connect.NewCatalogServiceClient(http.DefaultClient, server, opt),
		admin: catalogv1connect.NewAdminServiceClient(http.DefaultClient, server, opt)}
}

// eventually polls ok until it holds, failing after storyWait.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(storyWait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", storyWait, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStory plays issue 7's story over real HTTP, JetStream and SMTP, as
// accessbus dev runs it, against the Okta simulator's org: the first Super
// Administrator makes ann and bob Connector Administrators; ann adds an
// Okta connector for a new managed application with bob as another owner;
// bob, and not ann, gets one email with the set-up link; bob sets the
// simulator's domain and a token; the connector goes Not connected,
// Syncing, Connected; its log shows the run; every user of the org is a
// platform identity; the org's SCIM-provisioned apps are in the catalog,
// unmanaged, with their features and assignment counts. The token shows
// nowhere: not in an answer, an email, a log line or an event.
func TestStory(t *testing.T) {
	t.Setenv("ACCESSBUS_SMTP_ADDR", "") // dev's own mail capture
	// The notifier handles created and owners_assigned at once; the one
	// that finds bob's email claimed by the other looks again a second
	// later (rules.ClaimRecheck), and the story waits for that look.
	ctx := context.Background()
	d := startCatalogDev(t)
	sim, err := oktasim.Start(ctx, oktasim.Config{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close(context.Background()) })
	js := devJetStream(t, d.natsURL)
	connectorEvents := testkit.Record(t, js, subjects.StreamCatalog, "catalog.connector.>", true)

	// The first Super Administrator makes two Connector Administrators,
	// each with their own key.
	root := newPerson(d.server, catalog.DefaultAdminEmail, d.adminKey(t))
	people := map[string]*person{}
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if _, err := root.admin.AssignRole(ctx, connect.NewRequest(&catalogv1.AssignRoleRequest{Email: email, Role: catalogv1.Role_ROLE_CONNECTOR_ADMIN})); err != nil {
			t.Fatal(err)
		}
		k, err := root.admin.CreateAPIKey(ctx, connect.NewRequest(&catalogv1.CreateAPIKeyRequest{Email: email, Name: "story"}))
		if err != nil {
			t.Fatal(err)
		}
		people[email] = newPerson(d.server, email, k.Msg.GetApiKey())
	}
	ann, bob := people["ann@example.com"], people["bob@example.com"]

	// ann adds a connector for a new managed application, bob and herself
	// its owners.
	added, err := ann.conns.AddConnector(ctx, connect.NewRequest(&catalogv1.AddConnectorRequest{
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme Workforce"},
		OwnerEmails: []string{bob.email, ann.email}}))
	if err != nil {
		t.Fatal(err)
	}
	conn, app := added.Msg.GetConnector(), added.Msg.GetApplication()
	id := conn.GetId()
	if id != "acme-workforce" || !app.GetManaged() || app.GetName() != "Acme Workforce" || conn.GetApplicationId() != app.GetId() ||
		conn.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED || conn.GetOktaDomain() != "" || conn.GetTokenSet() {
		t.Fatalf("added %v\nto %v", conn, app)
	}

	// bob is asked, once, to set it up; ann, who made the change, is not.
	// Once the notifier has acknowledged every event that could mail about
	// the new connector (created, owners_assigned), the captured mail is
	// final for it.
	var lastSetupEvent uint64
	eventually(t, "the connector's created and owners_assigned events", func() bool {
		n := 0
		for _, m := range connectorEvents.Messages() {
			if m.Subject() == subjects.CatalogConnectorCreated || m.Subject() == subjects.CatalogConnectorOwnersAssigned {
				n++
				meta, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				lastSetupEvent = max(lastSetupEvent, meta.Sequence.Stream)
			}
		}
		return n == 2
	})
	eventually(t, "the notifier has handled them", func() bool {
		cons, err := js.Consumer(ctx, subjects.StreamCatalog, notifier.ConsumerConnectors)
		if err != nil {
			return false // not declared yet
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream >= lastSetupEvent && info.NumAckPending == 0
	})
	mails, err := mailcapture.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	captured, err := mails.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var toBob []mailcapture.Message
	for _, m := range captured {
		switch {
		case slices.Contains(m.To, bob.email):
			toBob = append(toBob, m)
		case slices.Contains(m.To, ann.email):
			t.Fatalf("ann, who added the connector, was mailed: %q", m.Subject)
		}
	}
	if len(toBob) != 1 {
		t.Fatalf("bob got %d emails, want 1: %v", len(toBob), toBob)
	}
	setup, err := mailcapture.Parse(toBob[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	link := "http://127.0.0.1:8080/connectors/" + id + "/setup"
	if !strings.Contains(setup.Subject, "set up the Okta connector "+id) || !strings.Contains(setup.Text, "Set up connector: "+link) || !strings.Contains(setup.HTML, link) {
		t.Fatalf("setup email %q:\n%s", setup.Subject, setup.Text)
	}

	// bob sets the org's domain and a token; Okta accepts it.
	token := sim.Tokens.SuperAdmin
	set, err := bob.conns.SetSettings(ctx, connect.NewRequest(&catalogv1.SetSettingsRequest{ConnectorId: id,
		OktaDomain: proto.String(sim.URL), ApiToken: proto.String(token), RateLimitShare: proto.Float64(1)}))
	if err != nil {
		t.Fatal(err)
	}
	if c := set.Msg.GetConnector(); c.GetOktaDomain() != sim.URL || !c.GetTokenSet() || !set.Msg.GetCheckedCapabilities().GetReviewAppAssignment() {
		t.Fatalf("after the settings %v, capabilities %v", c, set.Msg.GetCheckedCapabilities())
	}

	// Not connected (the token accepted), Syncing, Connected: each step
	// published as it happens.
	var statuses []string
	eventually(t, "the connector connected", func() bool {
		statuses = statuses[:0]
		for _, m := range connectorEvents.Messages() {
			if m.Subject() != subjects.CatalogConnectorStatusChanged {
				continue
			}
			ev := &eventsv1.ConnectorStatusChanged{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetConnector().GetId() == id {
				statuses = append(statuses, statusWords(ev.GetPreviousStatus())+" -> "+statusWords(ev.GetConnector().GetStatus()))
			}
		}
		return slices.Contains(statuses, "syncing -> connected")
	})
	if want := []string{"not connected -> not connected", "not connected -> syncing", "syncing -> connected"}; !slices.Equal(statuses, want) {
		t.Fatalf("status changes %q, want %q", statuses, want)
	}
	got, err := ann.conns.GetConnector(ctx, connect.NewRequest(&catalogv1.GetConnectorRequest{ConnectorId: id}))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Msg.GetConnector(); c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED || !c.GetCapabilities().GetReviewAppAssignment() {
		t.Fatalf("connected connector %v", c)
	}

	// Its log shows the run.
	logs := d.must(t, ann.key.Reveal(), "connectors", "logs", id)
	if !strings.Contains(logs, "completed") || !strings.Contains(logs, "log:") || !strings.Contains(logs, "full sync completed") {
		t.Fatalf("connectors logs:\n%s", logs)
	}

	// What the org holds, read from Okta as it is now.
	budget, err := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1})
	if err != nil {
		t.Fatal(err)
	}
	org, err := okta.New(ctx, okta.Config{OrgURL: sim.URL, Token: telemetry.NewSecret(sim.Tokens.ReadOnlyAdmin), Budget: budget})
	if err != nil {
		t.Fatal(err)
	}

	// Every user of the org is a platform identity, linked to the account.
	var users []okta.User
	if err := org.ListUsers(ctx, okta.ListUsersOptions{IncludeDeprovisioned: true}, func(us []okta.User) error {
		users = append(users, us...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	discovered, err := js.KeyValue(ctx, catalog.DiscoveryBucket)
	if err != nil {
		t.Fatal(err)
	}
	missing := func() []string {
		var out []string
		for _, u := range users {
			email := strings.ToLower(u.Email)
			e, err := discovered.Get(ctx, "identity."+catalog.IdentityID(email))
			if err != nil {
				out = append(out, email)
				continue
			}
			idn := &eventsv1.Identity{}
			if err := proto.Unmarshal(e.Value(), idn); err != nil {
				t.Fatal(err)
			}
			if idn.GetEmail() != email || !slices.ContainsFunc(idn.GetOktaUsers(), func(l *eventsv1.LinkedOktaUser) bool {
				return l.GetConnectorId() == id && l.GetOktaUserId() == u.ID
			}) {
				out = append(out, email)
			}
		}
		return out
	}
	if len(users) == 0 {
		t.Fatal("the simulator's org has no users")
	}
	eventually(t, "an identity for each of the org's users", func() bool { return len(missing()) == 0 })

	// The org's SCIM-provisioned apps are in the catalog, unmanaged, with
	// their features and their assignment counts.
	type want struct {
		app           okta.App
		users, groups int64
		viaGroupUsers int
	}
	scim := map[string]*want{}
	if err := org.ListApps(ctx, okta.ListAppsOptions{}, func(as []okta.App) error {
		for _, a := range as {
			if slices.ContainsFunc(a.Features, func(f string) bool { return f == "SCIM_PROVISIONING" || strings.HasPrefix(f, "PUSH_") }) {
				scim[a.ID] = &want{app: a}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(scim) == 0 {
		t.Fatal("the simulator's org has no SCIM-provisioned app")
	}
	for appID, w := range scim {
		if err := org.ListAppUsers(ctx, appID, func(us []okta.AppUser) error {
			for _, u := range us {
				w.users++
				if u.Scope == "GROUP" {
					w.viaGroupUsers++
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := org.ListAppGroups(ctx, appID, func(gs []okta.AppGroup) error { w.groups += int64(len(gs)); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.ContainsFunc(mapValues(scim), func(w *want) bool { return w.viaGroupUsers > 0 }) {
		t.Fatal("no SCIM app of the org has users assigned through a group: the counts would not show they are counted")
	}
	var listed []*eventsv1.Application
	mismatch := func() string {
		resp, err := ann.apps.ListApplications(ctx, connect.NewRequest(&catalogv1.ListApplicationsRequest{Unmanaged: true, ScimProvisioned: true}))
		if err != nil {
			t.Fatal(err)
		}
		listed = resp.Msg.GetApplications()
		seen := map[string]bool{}
		for _, a := range listed {
			if a.GetSourceConnectorId() != id {
				continue
			}
			w := scim[a.GetOktaAppId()]
			switch {
			case w == nil:
				return "listed " + a.GetName() + ", which Okta does not provision"
			case a.GetManaged() || !a.GetScimProvisioned() || a.GetName() != w.app.Label || !slices.Equal(a.GetFeatures(), w.app.Features) ||
				a.GetSignOnMode().String() != "SIGN_ON_MODE_"+w.app.SignOnMode:
				return "application " + a.GetName() + " differs from Okta's app: " + a.String()
			case a.GetUserAssignmentCount() != w.users || a.GetGroupAssignmentCount() != w.groups:
				return "application " + a.GetName() + " counts differ from Okta's: " + a.String()
			}
			seen[a.GetOktaAppId()] = true
		}
		if len(seen) != len(scim) {
			return fmt.Sprintf("listed %d of the org's %d SCIM apps", len(seen), len(scim))
		}
		return ""
	}
	var last string
	deadline := time.Now().Add(storyWait)
	for last = mismatch(); last != ""; last = mismatch() {
		if time.Now().After(deadline) {
			t.Fatalf("the org's SCIM apps are not listed, unmanaged, with their features and counts within %s: %s", storyWait, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if slices.ContainsFunc(listed, func(a *eventsv1.Application) bool { return a.GetId() == app.GetId() }) {
		t.Fatalf("the managed application %s is listed as unmanaged", app.GetId())
	}
	// As the CLI shows one of them.
	var one *eventsv1.Application
	for _, a := range listed {
		if a.GetSourceConnectorId() == id && a.GetGroupAssignmentCount() > 0 {
			one = a
			break
		}
	}
	if one == nil {
		t.Fatal("no SCIM app with an assigned group to show")
	}
	out := d.must(t, bob.key.Reveal(), "apps", "get", one.GetId())
	w := scim[one.GetOktaAppId()]
	for _, s := range []string{"managed       no", "scim          yes", "source        " + id + "/" + one.GetOktaAppId(),
		"features      " + strings.Join(w.app.Features, ", "),
		"assigned      " + itoa(w.users) + " users (directly or through groups), " + itoa(w.groups) + " groups"} {
		if !strings.Contains(out, s) {
			t.Fatalf("apps get lacks %q:\n%s", s, out)
		}
	}

	// The token is nowhere: the API's answers, the mail, the CLI's output,
	// dev's log, the bus.
	for _, m := range []proto.Message{added.Msg, set.Msg, got.Msg} {
		if b, err := protojson.Marshal(m); err != nil || strings.Contains(string(b), token) {
			t.Fatalf("a token appears in an API answer (%v)", err)
		}
	}
	for _, m := range captured {
		if strings.Contains(m.Raw, token) {
			t.Fatal("a token appears in an email")
		}
	}
	if strings.Contains(d.logs.String(), token) || strings.Contains(logs+out, token) {
		t.Fatal("a token appears in a log line or the CLI's output")
	}
	assertNoSecretOnTheBus(t, d.natsURL, token)
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
