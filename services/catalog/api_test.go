package catalog_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/connectors"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
	"github.com/accessbus/accessbus/services/catalog"
)

// missingDomain is a domain the tests' resolver says does not exist.
const missingDomain = "nowhere.example.invalid"

// apiEnv is the catalog's API served over real HTTP, on an embedded NATS
// with the discovery consumer running.
type apiEnv struct {
	*env
	disc   *catalog.Discovery
	auth   *auth.Store
	srv    *httptest.Server
	logs   *testkit.Buffer
	events *testkit.Recorder
	// seen collects every API answer and error text, to search for secrets.
	mu   sync.Mutex
	seen []string
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	a := &apiEnv{env: e, disc: e.discovery(t), logs: &testkit.Buffer{}}
	var err error
	if a.auth, err = auth.Open(ctx, e.js, auth.Options{Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	a.events = testkit.Record(t, e.js, subjects.StreamCatalog, "catalog.>", true)
	api, err := catalog.NewAPI(catalog.APIDeps{
		Bus: e.bus, Connectors: e.store, Discovery: a.disc, Auth: a.auth,
		Log: telemetry.NewLogger(a.logs, slog.LevelDebug),
		LookupHost: func(ctx context.Context, host string) ([]string, error) {
			if host == missingDomain {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			return net.DefaultResolver.LookupHost(ctx, host)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Mount(mux)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// client is one person calling the API with their key.
type client struct {
	identity string
	email    string
	conns    catalogv1connect.ConnectorServiceClient
	apps     catalogv1connect.CatalogServiceClient
	admin    catalogv1connect.AdminServiceClient
}

// recorder is a client interceptor that keeps every answer and error as
// text, so the test can search them for secrets.
type recorder struct{ a *apiEnv }

func (r recorder) keep(s string) {
	r.a.mu.Lock()
	r.a.seen = append(r.a.seen, s)
	r.a.mu.Unlock()
}

func (r recorder) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			r.keep(err.Error())
		} else if m, ok := resp.Any().(proto.Message); ok {
			b, _ := protojson.Marshal(m)
			r.keep(string(b))
		}
		return resp, err
	}
}

func (r recorder) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (r recorder) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (a *apiEnv) clientWithKey(key telemetry.Secret) *client {
	opt := connect.WithInterceptors(recorder{a}, auth.ClientKey(key))
	return &client{
		conns: catalogv1connect.NewConnectorServiceClient(a.srv.Client(), a.srv.URL, opt),
		apps:  catalogv1connect.NewCatalogServiceClient(a.srv.Client(), a.srv.URL, opt),
		admin: catalogv1connect.NewAdminServiceClient(a.srv.Client(), a.srv.URL, opt),
	}
}

// person makes a platform identity for email with roles and a key.
func (a *apiEnv) person(t *testing.T, email string, roles ...auth.Role) *client {
	t.Helper()
	ctx := context.Background()
	idn, err := a.disc.EnsureIdentity(ctx, email, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if err := a.auth.Grant(ctx, idn.GetId(), r); err != nil {
			t.Fatal(err)
		}
	}
	key, err := a.auth.NewKey(ctx, idn.GetId(), "test")
	if err != nil {
		t.Fatal(err)
	}
	c := a.clientWithKey(key)
	c.identity, c.email = idn.GetId(), email
	return c
}

// sim starts the Okta simulator with a small org.
func startSim(t *testing.T) *oktasim.Running {
	t.Helper()
	sim, err := oktasim.Start(context.Background(), oktasim.Config{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close(context.Background()) })
	return sim
}

func wantCode(t *testing.T, err error, code connect.Code, contains ...string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("want %v, got %v", code, err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// eventsOn returns the recorded events on subject, decoded into new(T).
func eventsOn[T proto.Message](t *testing.T, a *apiEnv, subject string, newT func() T) []T {
	t.Helper()
	var out []T
	for _, m := range a.events.Messages() {
		if m.Subject() != subject {
			continue
		}
		v := newT()
		if err := proto.Unmarshal(m.Data(), v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestAPIWithoutKey: a call without an API key, or with one the platform
// does not know, is refused with 401 Unauthenticated before any handler.
func TestAPIWithoutKey(t *testing.T) {
	a := newAPIEnv(t)
	for _, key := range []string{"", "abk_not-a-known-key"} {
		r, err := http.NewRequest(http.MethodPost, a.srv.URL+"/accessbus.catalog.v1.ConnectorService/ListConnectors", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "unauthenticated") {
			t.Fatalf("key %q: %d %s", key, resp.StatusCode, body)
		}
	}
	anon := a.clientWithKey(telemetry.Secret{})
	_, err := anon.conns.AddConnector(context.Background(), req(&catalogv1.AddConnectorRequest{
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}}))
	wantCode(t, err, connect.CodeUnauthenticated, "no API key")
	_, err = anon.admin.WhoAmI(context.Background(), req(&catalogv1.WhoAmIRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = anon.apps.ListApplications(context.Background(), req(&catalogv1.ListApplicationsRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestAddConnectorNeedsRole: a caller without Connector Administrator or
// Super Administrator cannot add a connector or create an application.
func TestAddConnectorNeedsRole(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	nobody := a.person(t, "nobody@example.com")
	_, err := nobody.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}}))
	wantCode(t, err, connect.CodePermissionDenied, "Connector Administrator or Super Administrator", "accessbus admin roles assign")
	_, err = nobody.apps.CreateApplication(ctx, req(&catalogv1.CreateApplicationRequest{Name: "Acme"}))
	wantCode(t, err, connect.CodePermissionDenied)
	list, err := nobody.conns.ListConnectors(ctx, req(&catalogv1.ListConnectorsRequest{}))
	if err != nil || len(list.Msg.GetConnectors()) != 0 {
		t.Fatalf("connectors after refusals: %v %v", list, err)
	}
	apps, err := nobody.apps.ListApplications(ctx, req(&catalogv1.ListApplicationsRequest{}))
	if err != nil || len(apps.Msg.GetApplications()) != 0 {
		t.Fatalf("applications after refusals: %v %v", apps, err)
	}
}

// TestOwnersNeedRole: every owner must be a platform identity holding
// Connector Administrator or Super Administrator; the refusal names each
// email that does not qualify and why.
func TestOwnersNeedRole(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	ann := a.person(t, "ann@example.com", auth.ConnectorAdmin)
	// bob is a user of a synced org, without a role.
	a.publishUser(t, "idp", &eventsv1.User{Id: "00ubob", Email: "Bob@Example.com", Status: eventsv1.User_STATUS_ACTIVE}, 1)
	waitUntil(t, "bob's identity", func() bool {
		idn, _ := a.disc.Identity(ctx, catalog.IdentityID("bob@example.com"))
		return idn != nil
	})

	newApp := &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}
	_, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: newApp,
		OwnerEmails: []string{"ann@example.com", "bob@example.com", "carl@example.com"}}))
	wantCode(t, err, connect.CodeFailedPrecondition,
		"bob@example.com does not hold the Connector Administrator or Super Administrator role",
		"carl@example.com: no platform identity has this email")
	if strings.Contains(err.Error(), "ann@example.com") {
		t.Fatalf("the refusal names ann, who qualifies: %v", err)
	}
	_, err = ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: newApp, OwnerEmails: []string{"not an email"}}))
	wantCode(t, err, connect.CodeInvalidArgument, "owner_emails", "not an email")
	if l, _ := ann.conns.ListConnectors(ctx, req(&catalogv1.ListConnectorsRequest{})); len(l.Msg.GetConnectors()) != 0 {
		t.Fatalf("a refused add created %v", l.Msg.GetConnectors())
	}

	// Without owners the caller owns it; SetOwners refuses bob the same way.
	added, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: newApp}))
	if err != nil {
		t.Fatal(err)
	}
	id := added.Msg.GetConnector().GetId()
	if id != "acme" || len(added.Msg.GetConnector().GetOwners()) != 1 || added.Msg.GetConnector().GetOwners()[0].GetEmail() != "ann@example.com" {
		t.Fatalf("added %v", added.Msg.GetConnector())
	}
	_, err = ann.conns.SetOwners(ctx, req(&catalogv1.SetOwnersRequest{ConnectorId: id, OwnerEmails: []string{"bob@example.com"}}))
	wantCode(t, err, connect.CodeFailedPrecondition, "bob@example.com does not hold")
	_, err = ann.conns.SetOwners(ctx, req(&catalogv1.SetOwnersRequest{ConnectorId: id}))
	wantCode(t, err, connect.CodeInvalidArgument, "at least one owner")

	// Once bob holds the role he can own it: owners_assigned names him alone.
	if err := a.auth.Grant(ctx, catalog.IdentityID("bob@example.com"), auth.ConnectorAdmin); err != nil {
		t.Fatal(err)
	}
	set, err := ann.conns.SetOwners(ctx, req(&catalogv1.SetOwnersRequest{ConnectorId: id, OwnerEmails: []string{"ann@example.com", "BOB@example.com"}}))
	if err != nil || len(set.Msg.GetConnector().GetOwners()) != 2 {
		t.Fatalf("set owners: %v %v", set, err)
	}
	a.events.WaitFor(t, 1, wait)
	waitUntil(t, "two owners_assigned events", func() bool {
		return len(eventsOn(t, a, subjects.CatalogConnectorOwnersAssigned, func() *eventsv1.ConnectorOwnersAssigned { return &eventsv1.ConnectorOwnersAssigned{} })) == 2
	})
	assigned := eventsOn(t, a, subjects.CatalogConnectorOwnersAssigned, func() *eventsv1.ConnectorOwnersAssigned { return &eventsv1.ConnectorOwnersAssigned{} })
	last := assigned[1]
	if len(last.GetNewOwners()) != 1 || last.GetNewOwners()[0].GetEmail() != "bob@example.com" || last.GetAssignedBy() != ann.identity {
		t.Fatalf("owners_assigned %v", last)
	}

	// Removing an owner is an update; setting the same owners again is nothing.
	for range 2 {
		if _, err := ann.conns.SetOwners(ctx, req(&catalogv1.SetOwnersRequest{ConnectorId: id, OwnerEmails: []string{"ann@example.com"}})); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the update", func() bool {
		return len(eventsOn(t, a, subjects.CatalogConnectorUpdated, func() *eventsv1.ConnectorUpdated { return &eventsv1.ConnectorUpdated{} })) > 0
	})
	time.Sleep(200 * time.Millisecond) // room for a wrong second event to arrive
	updated := eventsOn(t, a, subjects.CatalogConnectorUpdated, func() *eventsv1.ConnectorUpdated { return &eventsv1.ConnectorUpdated{} })
	if len(updated) != 1 || strings.Join(updated[0].GetChangedFields(), ",") != "owners" || len(updated[0].GetConnector().GetOwners()) != 1 {
		t.Fatalf("updated %v", updated)
	}
	if n := len(eventsOn(t, a, subjects.CatalogConnectorOwnersAssigned, func() *eventsv1.ConnectorOwnersAssigned { return &eventsv1.ConnectorOwnersAssigned{} })); n != 2 {
		t.Fatalf("%d owners_assigned events", n)
	}
}

// TestConnectorSetup plays an administrator's setup through the API
// against the Okta simulator: add a connector for a new managed
// application with another owner, set domain and token (checked against
// Okta), read it back; only owners and Super Administrators may change
// it; the token never shows in an answer, an error, an event or a log line.
func TestConnectorSetup(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	sim := startSim(t)
	ann := a.person(t, "ann@example.com", auth.ConnectorAdmin)
	bob := a.person(t, "bob@example.com", auth.ConnectorAdmin)
	carl := a.person(t, "carl@example.com", auth.ConnectorAdmin)
	root := a.person(t, "root@example.com", auth.SuperAdmin)

	added, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{ConnectorId: "acme",
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme Okta"},
		OwnerEmails: []string{"bob@example.com"}}))
	if err != nil {
		t.Fatal(err)
	}
	conn, app := added.Msg.GetConnector(), added.Msg.GetApplication()
	if conn.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED || conn.GetOktaDomain() != "" || conn.GetTokenSet() ||
		conn.GetApplicationId() != app.GetId() || !app.GetManaged() || app.GetName() != "Acme Okta" || conn.GetCreatedBy() != ann.identity {
		t.Fatalf("added %v / %v", conn, app)
	}
	// No domain yet, and the reason says what to set and how; the events
	// show the record as it is.
	if r := conn.GetStatusReason(); !strings.Contains(r, "the Okta domain and API token are not set") || !strings.Contains(r, "set-settings acme --domain") {
		t.Fatalf("status reason of a new connector: %q", r)
	}
	var created []*eventsv1.ConnectorCreated
	waitUntil(t, "the created event", func() bool {
		created = eventsOn(t, a, subjects.CatalogConnectorCreated, func() *eventsv1.ConnectorCreated { return &eventsv1.ConnectorCreated{} })
		return len(created) == 1
	})
	if c := created[0].GetConnector(); c.GetOktaDomain() != "" || c.GetStatusReason() != conn.GetStatusReason() {
		t.Fatalf("created event %v", c)
	}
	if _, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{ConnectorId: "acme2",
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "acme okta"}})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("a second application with the same name: %v", err)
	}
	if _, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{ConnectorId: "acme",
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Other"}})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("a second connector acme: %v", err)
	}

	// Only owners (bob) and Super Administrators may change it: not the
	// connector administrator carl, and not ann, who added it for bob.
	for _, who := range []*client{carl, ann} {
		_, err := who.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", SyncCustomRoles: proto.Bool(true)}))
		wantCode(t, err, connect.CodePermissionDenied, "only an owner of connector acme", "bob@example.com")
		_, err = who.conns.SetOwners(ctx, req(&catalogv1.SetOwnersRequest{ConnectorId: "acme", OwnerEmails: []string{who.email}}))
		wantCode(t, err, connect.CodePermissionDenied)
	}
	if _, err := root.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", SyncInterval: durationpb.New(2 * time.Hour)})); err != nil {
		t.Fatalf("a Super Administrator changes it: %v", err)
	}

	// The owner sets domain and token: Okta is asked, the token stored.
	token := sim.Tokens.AppGroupAdmin
	set, err := bob.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme",
		OktaDomain: proto.String(sim.URL), ApiToken: proto.String(token), SyncCustomRoles: proto.Bool(true), RateLimitShare: proto.Float64(0.25)}))
	if err != nil {
		t.Fatal(err)
	}
	got, caps := set.Msg.GetConnector(), set.Msg.GetCheckedCapabilities()
	if !got.GetTokenSet() || got.GetOktaDomain() != sim.URL || got.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED ||
		!strings.Contains(got.GetStatusReason(), "accepted") || !got.GetOptions().GetSyncCustomRoles() || got.GetOptions().GetRateLimitShare() != 0.25 ||
		got.GetOptions().GetSyncInterval().AsDuration() != 2*time.Hour {
		t.Fatalf("after settings %v", got)
	}
	// The capability table of okta/FACTS.md for a read-only + app admin + group admin token.
	if !caps.GetReviewGroupMembership() || !caps.GetProvisionGroupMembership() || !caps.GetReviewAppAssignment() || !caps.GetProvisionAppAssignment() || caps.GetReviewRoles() {
		t.Fatalf("capabilities %v", caps)
	}
	if want := []string{"okta_domain", "options.rate_limit_share", "options.sync_custom_roles", "secret_version"}; strings.Join(set.Msg.GetChangedFields(), ",") != strings.Join(want, ",") {
		t.Fatalf("changed %v", set.Msg.GetChangedFields())
	}
	stored, _, err := a.store.Token(ctx, "acme")
	if err != nil || stored.Reveal() != token {
		t.Fatalf("stored token: %v", err)
	}
	// Reading takes any key and never returns the token.
	get, err := carl.conns.GetConnector(ctx, req(&catalogv1.GetConnectorRequest{ConnectorId: "acme"}))
	if err != nil || !get.Msg.GetConnector().GetTokenSet() || get.Msg.GetApplication().GetId() != app.GetId() {
		t.Fatalf("get %v %v", get, err)
	}
	if _, err := carl.conns.GetConnector(ctx, req(&catalogv1.GetConnectorRequest{ConnectorId: "nope"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("get unknown: %v", err)
	}

	// Lists: mine and status filters.
	count := func(c *client, r *catalogv1.ListConnectorsRequest) int {
		t.Helper()
		l, err := c.conns.ListConnectors(ctx, req(r))
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Msg.GetConnectors())
	}
	notConnected := eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED
	if count(bob, &catalogv1.ListConnectorsRequest{Mine: true, Status: notConnected}) != 1 || count(carl, &catalogv1.ListConnectorsRequest{Mine: true}) != 0 ||
		count(carl, &catalogv1.ListConnectorsRequest{}) != 1 || count(bob, &catalogv1.ListConnectorsRequest{Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED}) != 0 {
		t.Fatal("list filters")
	}

	// The events: created, owners_assigned (bob, by ann), updated.
	waitUntil(t, "the connector events", func() bool {
		return len(eventsOn(t, a, subjects.CatalogConnectorUpdated, func() *eventsv1.ConnectorUpdated { return &eventsv1.ConnectorUpdated{} })) == 2
	})
	created = eventsOn(t, a, subjects.CatalogConnectorCreated, func() *eventsv1.ConnectorCreated { return &eventsv1.ConnectorCreated{} })
	assigned := eventsOn(t, a, subjects.CatalogConnectorOwnersAssigned, func() *eventsv1.ConnectorOwnersAssigned { return &eventsv1.ConnectorOwnersAssigned{} })
	updated := eventsOn(t, a, subjects.CatalogConnectorUpdated, func() *eventsv1.ConnectorUpdated { return &eventsv1.ConnectorUpdated{} })
	if len(created) != 1 || len(assigned) != 1 || assigned[0].GetNewOwners()[0].GetEmail() != "bob@example.com" || assigned[0].GetAssignedBy() != ann.identity ||
		updated[1].GetUpdatedBy() != bob.identity || !updated[1].GetConnector().GetTokenSet() || updated[1].GetConnector().GetSecretVersion() != 1 {
		t.Fatalf("events: created %v assigned %v updated %v", created, assigned, updated)
	}
	appUps := eventsOn(t, a, subjects.CatalogAppUpserted, func() *eventsv1.ApplicationUpserted { return &eventsv1.ApplicationUpserted{} })
	if len(appUps) != 1 || !appUps[0].GetApplication().GetManaged() {
		t.Fatalf("app events %v", appUps)
	}

	// A read-only token: review capabilities only, as the table says.
	set, err = root.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", ApiToken: proto.String(sim.Tokens.ReadOnlyAdmin)}))
	if err != nil {
		t.Fatal(err)
	}
	if caps := set.Msg.GetCheckedCapabilities(); !caps.GetReviewGroupMembership() || caps.GetProvisionGroupMembership() || caps.GetProvisionAppAssignment() || caps.GetReviewRoles() {
		t.Fatalf("read-only capabilities %v", caps)
	}
	a.assertNoSecrets(t, sim.Tokens.AppGroupAdmin, sim.Tokens.ReadOnlyAdmin)
}

// assertNoSecrets searches every API answer and error, every catalog event
// and the log for each secret.
func (a *apiEnv) assertNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	a.mu.Lock()
	answers := strings.Join(a.seen, "\n")
	a.mu.Unlock()
	var events strings.Builder
	for _, m := range a.events.Messages() {
		events.Write(m.Data())
		for k, v := range m.Headers() {
			events.WriteString(k + strings.Join(v, ","))
		}
	}
	logs := a.logs.String()
	if answers == "" || events.Len() == 0 || logs == "" {
		t.Fatalf("nothing captured to search: answers %d, events %d, logs %d", len(answers), events.Len(), len(logs))
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"an API answer or error": answers, "an event": events.String(), "a log line": logs} {
			if strings.Contains(text, s) {
				t.Errorf("the token %.6s... appears in %s", s, what)
			}
		}
	}
}

// TestSetSettingsRefusals: a bad domain, a domain that does not exist, a
// server that is not Okta and a token Okta rejects are refused with the
// reason; nothing is stored, and (except for a malformed domain, which
// nobody tried) the connector's status becomes ERROR with that reason. A
// token Okta accepts afterwards clears it.
func TestSetSettingsRefusals(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	sim := startSim(t)
	ann := a.person(t, "ann@example.com", auth.ConnectorAdmin)
	if _, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{ConnectorId: "acme",
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}})); err != nil {
		t.Fatal(err)
	}
	notOkta := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notOkta.Close)
	const bogus = "00bogus-token-that-okta-refuses"

	status := func() *eventsv1.Connector {
		t.Helper()
		c, err := a.store.Get(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	set := func(domain, token string) error {
		r := &catalogv1.SetSettingsRequest{ConnectorId: "acme"}
		if domain != "" {
			r.OktaDomain = proto.String(domain)
		}
		if token != "" {
			r.ApiToken = proto.String(token)
		}
		_, err := ann.conns.SetSettings(ctx, req(r))
		return err
	}

	// Malformed input: refused before anything is tried; status unchanged.
	wantCode(t, set("acme-admin.okta.com", ""), connect.CodeInvalidArgument, "okta_domain", "admin console")
	wantCode(t, set("", "two words"), connect.CodeInvalidArgument, "spaces")
	wantCode(t, set("", sim.Tokens.SuperAdmin), connect.CodeFailedPrecondition, "the Okta domain of connector acme is not set", "--domain")
	_, err := ann.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", OktaDomain: proto.String(" ")}))
	wantCode(t, err, connect.CodeInvalidArgument, "okta_domain is empty")
	if c := status(); c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED {
		t.Fatalf("status after malformed input: %v", c)
	}

	for _, tc := range []struct {
		name, domain, token, says string
	}{
		{"no DNS record", missingDomain, sim.Tokens.SuperAdmin, "does not exist (no DNS record)"},
		{"not Okta", notOkta.URL, sim.Tokens.SuperAdmin, "does not answer as an Okta org"},
		{"rejected token", sim.URL, bogus, "rejected the API token (E0000011)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, set(tc.domain, tc.token), connect.CodeInvalidArgument, tc.says, "nothing was stored")
			c := status()
			if c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR || !strings.Contains(c.GetStatusReason(), tc.says) || c.GetTokenSet() {
				t.Fatalf("after refusal: %v", c)
			}
			if got, err := ann.conns.GetConnector(ctx, req(&catalogv1.GetConnectorRequest{ConnectorId: "acme"})); err != nil || got.Msg.GetConnector().GetOktaDomain() != "" {
				t.Fatalf("a refused domain was stored: %v %v", got, err)
			}
			if _, _, err := a.store.Token(ctx, "acme"); !errors.Is(err, connectors.ErrNoToken) {
				t.Fatalf("a refused token was stored: %v", err)
			}
		})
	}
	changes := eventsOn(t, a, subjects.CatalogConnectorStatusChanged, func() *eventsv1.ConnectorStatusChanged { return &eventsv1.ConnectorStatusChanged{} })
	waitUntil(t, "the status changes", func() bool {
		changes = eventsOn(t, a, subjects.CatalogConnectorStatusChanged, func() *eventsv1.ConnectorStatusChanged { return &eventsv1.ConnectorStatusChanged{} })
		return len(changes) == 3
	})
	if changes[0].GetPreviousStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED ||
		changes[2].GetConnector().GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR || changes[2].GetConnector().GetOktaDomain() != "" {
		t.Fatalf("status changes %v", changes)
	}

	// The right token: stored, and the refusal is gone.
	if err := set(sim.URL, sim.Tokens.SuperAdmin); err != nil {
		t.Fatal(err)
	}
	if c := status(); c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED || !c.GetTokenSet() || c.GetOktaDomain() != sim.URL {
		t.Fatalf("after the right token: %v", c)
	}
	// A new domain is checked with the stored token: the simulator's token
	// means nothing to a server that is not Okta.
	wantCode(t, set(notOkta.URL, ""), connect.CodeInvalidArgument, "does not answer as an Okta org")
	if c := status(); c.GetOktaDomain() != sim.URL || c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_ERROR {
		t.Fatalf("after a refused domain change: %v", c)
	}
	// Options are validated too.
	_, err = ann.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", RateLimitShare: proto.Float64(1.5)}))
	wantCode(t, err, connect.CodeInvalidArgument, "rate_limit_share")
	_, err = ann.conns.SetSettings(ctx, req(&catalogv1.SetSettingsRequest{ConnectorId: "acme", SyncInterval: durationpb.New(time.Second)}))
	wantCode(t, err, connect.CodeInvalidArgument, "sync_interval")
	a.assertNoSecrets(t, sim.Tokens.SuperAdmin, bogus)
}

// TestApplications: discovered applications are listed unmanaged with
// their SCIM flag; a connector added to one makes it managed; an
// application takes one connector; filters combine.
func TestApplications(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	ann := a.person(t, "ann@example.com", auth.ConnectorAdmin)
	reader := a.person(t, "reader@example.com")
	for i, app := range []*eventsv1.App{
		{Id: "0oascim", Label: "Slack", Features: []string{"PUSH_NEW_USERS"}, Status: eventsv1.App_STATUS_ACTIVE},
		{Id: "0oaplain", Label: "Wiki", Status: eventsv1.App_STATUS_ACTIVE},
	} {
		ev := &eventsv1.ResourceUpserted{Kind: eventsv1.ResourceKind_RESOURCE_KIND_APP, Id: app.GetId(),
			Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_App{App: app}}}
		if _, err := a.bus.Publish(ctx, "access.idp.resource.app.upserted", subjects.MsgID("t", app.GetId(), string(rune('a'+i))), ev); err != nil {
			t.Fatal(err)
		}
	}
	list := func(r *catalogv1.ListApplicationsRequest) []string {
		t.Helper()
		l, err := reader.apps.ListApplications(ctx, req(r))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, app := range l.Msg.GetApplications() {
			names = append(names, app.GetName())
		}
		return names
	}
	waitUntil(t, "the discovered apps", func() bool { return len(list(&catalogv1.ListApplicationsRequest{})) == 2 })
	if got := list(&catalogv1.ListApplicationsRequest{Unmanaged: true, ScimProvisioned: true}); strings.Join(got, ",") != "Slack" {
		t.Fatalf("unmanaged SCIM %v", got)
	}
	if _, err := reader.apps.ListApplications(ctx, req(&catalogv1.ListApplicationsRequest{Managed: true, Unmanaged: true})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("managed and unmanaged: %v", err)
	}

	slack := catalog.ApplicationID("idp", "0oascim")
	added, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: &catalogv1.AddConnectorRequest_ApplicationId{ApplicationId: slack}}))
	if err != nil {
		t.Fatal(err)
	}
	if added.Msg.GetConnector().GetId() != "slack" || !added.Msg.GetApplication().GetManaged() {
		t.Fatalf("added %v", added.Msg)
	}
	_, err = ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{ConnectorId: "slack2", Application: &catalogv1.AddConnectorRequest_ApplicationId{ApplicationId: slack}}))
	wantCode(t, err, connect.CodeAlreadyExists, "already has connector slack")
	_, err = ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: &catalogv1.AddConnectorRequest_ApplicationId{ApplicationId: "app-nope"}}))
	wantCode(t, err, connect.CodeNotFound, "accessbus apps list")
	_, err = ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{}))
	wantCode(t, err, connect.CodeInvalidArgument, "--app-new")

	// A discovered update keeps the application managed.
	ev := &eventsv1.ResourceUpserted{Kind: eventsv1.ResourceKind_RESOURCE_KIND_APP, Id: "0oascim", Resource: &eventsv1.Resource{Resource: &eventsv1.Resource_App{
		App: &eventsv1.App{Id: "0oascim", Label: "Slack Enterprise", Features: []string{"PUSH_NEW_USERS"}, Status: eventsv1.App_STATUS_ACTIVE}}}}
	if _, err := a.bus.Publish(ctx, "access.idp.resource.app.upserted", subjects.MsgID("t", "0oascim", "rename"), ev); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rename", func() bool {
		return strings.Join(list(&catalogv1.ListApplicationsRequest{Managed: true}), ",") == "Slack Enterprise"
	})

	created, err := ann.apps.CreateApplication(ctx, req(&catalogv1.CreateApplicationRequest{Name: "Payroll"}))
	if err != nil || !created.Msg.GetApplication().GetManaged() || created.Msg.GetApplication().GetId() != catalog.ManagedApplicationID("payroll") {
		t.Fatalf("create %v %v", created, err)
	}
	_, err = ann.apps.CreateApplication(ctx, req(&catalogv1.CreateApplicationRequest{Name: " PAYROLL "}))
	wantCode(t, err, connect.CodeAlreadyExists)
	_, err = ann.apps.CreateApplication(ctx, req(&catalogv1.CreateApplicationRequest{Name: "  "}))
	wantCode(t, err, connect.CodeInvalidArgument)
	wiki := catalog.ApplicationID("idp", "0oaplain")
	_, err = reader.apps.MarkManaged(ctx, req(&catalogv1.MarkManagedRequest{ApplicationId: wiki}))
	wantCode(t, err, connect.CodePermissionDenied)
	marked, err := ann.apps.MarkManaged(ctx, req(&catalogv1.MarkManagedRequest{ApplicationId: wiki}))
	if err != nil || !marked.Msg.GetApplication().GetManaged() {
		t.Fatalf("mark %v %v", marked, err)
	}
	_, err = ann.apps.MarkManaged(ctx, req(&catalogv1.MarkManagedRequest{ApplicationId: "app-nope"}))
	wantCode(t, err, connect.CodeNotFound)
	if got := list(&catalogv1.ListApplicationsRequest{Unmanaged: true}); len(got) != 0 {
		t.Fatalf("unmanaged left %v", got)
	}
	one, err := reader.apps.GetApplication(ctx, req(&catalogv1.GetApplicationRequest{ApplicationId: wiki}))
	if err != nil || one.Msg.GetApplication().GetName() != "Wiki" {
		t.Fatalf("get %v %v", one, err)
	}
}

// TestAdmin: whoami; only Super Administrators assign and revoke roles
// and create keys for others; nobody revokes their own Super
// Administrator role; a new key works and is shown once.
func TestAdmin(t *testing.T) {
	a := newAPIEnv(t)
	ctx := context.Background()
	root := a.person(t, "root@example.com", auth.SuperAdmin)
	ann := a.person(t, "ann@example.com", auth.ConnectorAdmin)

	who, err := ann.admin.WhoAmI(ctx, req(&catalogv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetEmail() != "ann@example.com" || who.Msg.GetIdentityId() != ann.identity ||
		len(who.Msg.GetRoles()) != 1 || who.Msg.GetRoles()[0] != catalogv1.Role_ROLE_CONNECTOR_ADMIN {
		t.Fatalf("whoami %v %v", who, err)
	}
	_, err = ann.admin.AssignRole(ctx, req(&catalogv1.AssignRoleRequest{Email: "dora@example.com", Role: catalogv1.Role_ROLE_CONNECTOR_ADMIN}))
	wantCode(t, err, connect.CodePermissionDenied, "Super Administrator")
	_, err = ann.admin.CreateAPIKey(ctx, req(&catalogv1.CreateAPIKeyRequest{Email: "root@example.com"}))
	wantCode(t, err, connect.CodePermissionDenied)
	_, err = root.admin.AssignRole(ctx, req(&catalogv1.AssignRoleRequest{Email: "dora", Role: catalogv1.Role_ROLE_CONNECTOR_ADMIN}))
	wantCode(t, err, connect.CodeInvalidArgument, "email")
	_, err = root.admin.AssignRole(ctx, req(&catalogv1.AssignRoleRequest{Email: "dora@example.com"}))
	wantCode(t, err, connect.CodeInvalidArgument, "role")

	// dora is not known yet: the role makes her an identity, and an owner.
	got, err := root.admin.AssignRole(ctx, req(&catalogv1.AssignRoleRequest{Email: "Dora@Example.com", Role: catalogv1.Role_ROLE_CONNECTOR_ADMIN}))
	if err != nil || got.Msg.GetIdentityId() != catalog.IdentityID("dora@example.com") || len(got.Msg.GetRoles()) != 1 {
		t.Fatalf("assign %v %v", got, err)
	}
	if _, err := ann.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{
		Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Acme"}, OwnerEmails: []string{"dora@example.com"}})); err != nil {
		t.Fatalf("dora as owner: %v", err)
	}
	key, err := root.admin.CreateAPIKey(ctx, req(&catalogv1.CreateAPIKeyRequest{Email: "dora@example.com", Name: "laptop"}))
	if err != nil || !strings.HasPrefix(key.Msg.GetApiKey(), auth.KeyPrefix) {
		t.Fatalf("key for dora %v", err)
	}
	dora := a.clientWithKey(telemetry.NewSecret(key.Msg.GetApiKey()))
	if who, err := dora.admin.WhoAmI(ctx, req(&catalogv1.WhoAmIRequest{})); err != nil || who.Msg.GetEmail() != "dora@example.com" {
		t.Fatalf("dora's whoami %v %v", who, err)
	}
	own, err := dora.admin.CreateAPIKey(ctx, req(&catalogv1.CreateAPIKeyRequest{Name: "ci"}))
	if err != nil || own.Msg.GetIdentityId() != catalog.IdentityID("dora@example.com") || own.Msg.GetApiKey() == key.Msg.GetApiKey() {
		t.Fatalf("own key %v", err)
	}
	revoked, err := root.admin.RevokeRole(ctx, req(&catalogv1.RevokeRoleRequest{Email: "dora@example.com", Role: catalogv1.Role_ROLE_CONNECTOR_ADMIN}))
	if err != nil || len(revoked.Msg.GetRoles()) != 0 {
		t.Fatalf("revoke %v %v", revoked, err)
	}
	_, err = dora.conns.AddConnector(ctx, req(&catalogv1.AddConnectorRequest{Application: &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: "Beta"}}))
	wantCode(t, err, connect.CodePermissionDenied)
	_, err = root.admin.RevokeRole(ctx, req(&catalogv1.RevokeRoleRequest{Email: "root@example.com", Role: catalogv1.Role_ROLE_SUPER_ADMIN}))
	wantCode(t, err, connect.CodeFailedPrecondition, "your own Super Administrator role")
	a.mu.Lock()
	a.seen = nil // the keys were answers on purpose
	a.mu.Unlock()
	if logs := a.logs.String(); strings.Contains(logs, key.Msg.GetApiKey()) || strings.Contains(logs, own.Msg.GetApiKey()) {
		t.Fatal("an API key appears in the log")
	}
}
