package executor

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessbus/accessbus/libs/bus"
	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/provisioning/internal/ledger"
)

// env is a simulated org, an embedded JetStream with the streams, the
// connector store with connectors of each kind, the ledger and an
// Executor consuming the queue.
type env struct {
	sim     *oktasim.Running
	js      jetstream.JetStream
	bus     *bus.Bus
	conns   *connectors.Store
	ledger  *ledger.Store
	ex      *Executor
	results *testkit.Recorder
	syncs   *testkit.Recorder
	budget  *ratelimit.Budget
	tr      *http.Transport
	org     orgView
}

// orgView is what the tests pick their objects from.
type orgView struct {
	activeUsers                   []string
	deprovisioned, suspended      string
	oktaGroups                    []string
	appGroup, everyone            string
	activeApp, inactiveApp        string
	groupScoped                   [2]string // app, user assigned only through a group
	members                       map[string][]string
	appUsers                      map[string]map[string]string // app -> user -> scope
	simAdmin                      *oktasim.LogActor
	superAdminToken, appGroupTkn  string
	readOnlyToken                 string
	connectorWith, connectorRO    string
	notConnected, missingConnName string
}

type envOptions struct {
	sim      oktasim.Config
	cfg      Config
	share    float64
	noStart  bool
	httpWrap func(http.RoundTripper) http.RoundTripper
	// now is the executor's clock; nil is time.Now.
	now func() time.Time
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	if o.sim.Profile == "" {
		o.sim = oktasim.Config{Profile: "small", Seed: 1, RateLimits: oktasim.NoLimits, Faults: o.sim.Faults}
	}
	sim, err := oktasim.Start(ctx, o.sim)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, tr: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		e.tr.CloseIdleConnections()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	})
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatal(err)
	}
	if e.bus, err = bus.New(js, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	key, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if e.conns, err = connectors.Open(ctx, js, connectors.Options{Key: key, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = ledger.Open(ctx, js, ledger.Options{Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	e.js = js
	e.results = testkit.Record(t, js, subjects.StreamProvisioning, "provisioning.*.result.>", true)
	e.syncs = testkit.Record(t, js, subjects.StreamSync, "sync.*.request", true)
	share := o.share
	if share == 0 {
		share = 1
	}
	// The simulator here has no limits and sends no rate-limit headers, so
	// the budget paces at Workforce limits: a fast clock keeps tests quick.
	scale := 1000.0
	if o.sim.RateLimits.Name != oktasim.NoLimits.Name {
		scale = max(o.sim.TimeScale, 1)
	}
	if e.budget, err = ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: share, TimeScale: scale}); err != nil {
		t.Fatal(err)
	}
	e.readOrg(t, scale < 1000)
	full := &eventsv1.Capabilities{ReviewGroupMembership: true, ProvisionGroupMembership: true, ReviewAppAssignment: true, ProvisionAppAssignment: true}
	e.connector(t, "c1", sim.Tokens.AppGroupAdmin, eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED, full)
	e.connector(t, "ro", sim.Tokens.ReadOnlyAdmin, eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED,
		&eventsv1.Capabilities{ReviewGroupMembership: true, ReviewAppAssignment: true})
	e.connector(t, "new", "", eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED, nil)
	var rt http.RoundTripper = e.tr
	if o.httpWrap != nil {
		rt = o.httpWrap(rt)
	}
	clients := func(ctx context.Context, conn *eventsv1.Connector) (*okta.Client, error) {
		tok, _, err := e.conns.Token(ctx, conn.GetId())
		if err != nil {
			return nil, err
		}
		return okta.New(ctx, okta.Config{OrgURL: sim.URL, Token: tok, Budget: e.budget, HTTPClient: &http.Client{Transport: rt},
			RetryBackoff: 20 * time.Millisecond})
	}
	cfg := o.cfg
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	}
	if e.ex, err = New(Deps{Bus: e.bus, Ledger: e.ledger, Connectors: e.conns, Okta: clients, Now: o.now}, cfg); err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		e.start(t)
	}
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	if err := e.ex.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.ex.Stop(context.Background()) })
}

// connector creates a connector with a token, status and capabilities.
func (e *env) connector(t *testing.T, id, token string, status eventsv1.ConnectorStatus, caps *eventsv1.Capabilities) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.conns.Create(ctx, &eventsv1.Connector{Id: id, OktaDomain: e.sim.URL}); err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if _, err := e.conns.SetToken(ctx, id, telemetry.NewSecret(token)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.conns.Update(ctx, id, func(c *eventsv1.Connector) error {
		c.Status, c.Capabilities = status, caps
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// readOrg reads what the tests pick from, through the API.
// With limited set (a rate-limited simulator), it reads only users, groups
// and members, within the limits.
func (e *env) readOrg(t *testing.T, limited bool) {
	t.Helper()
	ctx := context.Background()
	scale := 1000.0
	if limited {
		scale = e.sim.Org.Clock().Scale()
	}
	b, _ := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: scale})
	c, err := okta.New(ctx, okta.Config{OrgURL: e.sim.URL, Token: telemetry.NewSecret(e.sim.Tokens.SuperAdmin), Budget: b,
		HTTPClient: &http.Client{Transport: e.tr}, RetryBackoff: 10 * time.Millisecond, MaxRetries: 20})
	if err != nil {
		t.Fatal(err)
	}
	v := orgView{members: map[string][]string{}, appUsers: map[string]map[string]string{}}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	ad := e.sim.Generated.Admins
	must(c.ListUsers(ctx, okta.ListUsersOptions{IncludeDeprovisioned: true}, func(us []okta.User) error {
		for _, u := range us {
			switch {
			case u.ID == ad.SuperAdmin || u.ID == ad.AppGroupAdmin || u.ID == ad.ReadOnlyAdmin:
			case u.Status == "ACTIVE":
				v.activeUsers = append(v.activeUsers, u.ID)
			case u.Status == "DEPROVISIONED":
				v.deprovisioned = u.ID
			case u.Status == "SUSPENDED":
				v.suspended = u.ID
			}
		}
		return nil
	}))
	must(c.ListGroups(ctx, okta.ListGroupsOptions{}, func(gs []okta.Group) error {
		for _, g := range gs {
			switch g.Type {
			case "OKTA_GROUP":
				v.oktaGroups = append(v.oktaGroups, g.ID)
			case "APP_GROUP":
				v.appGroup = g.ID
			case "BUILT_IN":
				v.everyone = g.ID
			}
			if !limited || len(v.oktaGroups) == 2 {
				must(c.ListGroupMemberIDs(ctx, g.ID, func(ids []string) error { v.members[g.ID] = append(v.members[g.ID], ids...); return nil }))
			}
		}
		return nil
	}))
	if limited {
		e.org = v
		return
	}
	must(c.ListApps(ctx, okta.ListAppsOptions{IncludeInactive: true}, func(as []okta.App) error {
		for _, a := range as {
			if a.Status == "ACTIVE" && v.activeApp == "" {
				v.activeApp = a.ID
			}
			if a.Status == "INACTIVE" {
				v.inactiveApp = a.ID
			}
			v.appUsers[a.ID] = map[string]string{}
			must(c.ListAppUsers(ctx, a.ID, func(aus []okta.AppUser) error {
				for _, au := range aus {
					v.appUsers[a.ID][au.UserID] = au.Scope
					if au.Scope == "GROUP" && a.Status == "ACTIVE" && v.groupScoped[0] == "" {
						v.groupScoped = [2]string{a.ID, au.UserID}
					}
				}
				return nil
			}))
		}
		return nil
	}))
	v.simAdmin = &oktasim.LogActor{ID: ad.SuperAdmin, Type: "User"}
	if v.deprovisioned == "" || v.suspended == "" || v.appGroup == "" || v.everyone == "" || v.inactiveApp == "" || v.groupScoped[0] == "" {
		t.Fatalf("the small org lacks an object the tests need: %+v", v)
	}
	e.org = v
}

// freeUser returns an active user that is not a member of group g nor
// assigned to app a (either may be "").
func (e *env) freeUser(t *testing.T, g, a string, skip ...string) string {
	t.Helper()
	for _, u := range e.org.activeUsers {
		if slices.Contains(skip, u) || (g != "" && slices.Contains(e.org.members[g], u)) {
			continue
		}
		if _, ok := e.org.appUsers[a][u]; a != "" && ok {
			continue
		}
		return u
	}
	t.Fatal("no free user")
	return ""
}

func membership(user, group string) *eventsv1.ProvisioningTarget {
	return &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_GroupMembership{
		GroupMembership: &eventsv1.GroupMembershipTarget{UserId: user, GroupId: group}}}
}

func appUser(app, user string) *eventsv1.ProvisioningTarget {
	return &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{
		AppAssignment: &eventsv1.AppAssignmentTarget{AppId: app, Assignee: &eventsv1.AppAssignmentTarget_UserId{UserId: user}}}}
}

func appGroup(app, group string) *eventsv1.ProvisioningTarget {
	return &eventsv1.ProvisioningTarget{Target: &eventsv1.ProvisioningTarget_AppAssignment{
		AppAssignment: &eventsv1.AppAssignmentTarget{AppId: app, Assignee: &eventsv1.AppAssignmentTarget_GroupId{GroupId: group}}}}
}

var (
	grant  = eventsv1.ProvisioningAction_PROVISIONING_ACTION_GRANT
	revoke = eventsv1.ProvisioningAction_PROVISIONING_ACTION_REVOKE
)

func newRequest(id, connector string, action eventsv1.ProvisioningAction, target *eventsv1.ProvisioningTarget) *eventsv1.ProvisioningRequest {
	return &eventsv1.ProvisioningRequest{RequestId: id, ConnectorId: connector, Action: action, Target: target,
		RequestedBy: "test", Reason: "a test"}
}

func forDuration(r *eventsv1.ProvisioningRequest, d time.Duration) *eventsv1.ProvisioningRequest {
	r.Expiry = &eventsv1.ProvisioningRequest_Duration{Duration: durationpb.New(d)}
	return r
}

// submit publishes a request on the queue.
func (e *env) submit(t *testing.T, r *eventsv1.ProvisioningRequest) {
	t.Helper()
	subj, err := subjects.ProvisioningRequest(r.GetConnectorId())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.Publish(context.Background(), subj, subjects.MsgID("test", r.GetRequestId()), r); err != nil {
		t.Fatal(err)
	}
}

// result waits for the result of request id.
func (e *env) result(t *testing.T, id string) *eventsv1.ProvisioningResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rs := e.resultsOf(t, id); len(rs) > 0 {
			return rs[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no result for %s within 30s", id)
	return nil
}

// resultsOf returns every result stored for request id.
func (e *env) resultsOf(t *testing.T, id string) []*eventsv1.ProvisioningResult {
	t.Helper()
	var out []*eventsv1.ProvisioningResult
	for _, m := range e.results.Messages() {
		res := &eventsv1.ProvisioningResult{}
		if err := proto.Unmarshal(m.Data(), res); err != nil {
			t.Fatal(err)
		}
		if res.GetRequestId() == id {
			out = append(out, res)
		}
	}
	return out
}

// do submits a request and returns its result.
func (e *env) do(t *testing.T, r *eventsv1.ProvisioningRequest) *eventsv1.ProvisioningResult {
	t.Helper()
	e.submit(t, r)
	return e.result(t, r.GetRequestId())
}

func wantSuccess(t *testing.T, res *eventsv1.ProvisioningResult, noOp bool) {
	t.Helper()
	if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_SUCCEEDED || res.GetNoOp() != noOp {
		t.Fatalf("result %s (no_op %v, want %v): %s %s", res.GetOutcome(), res.GetNoOp(), noOp, res.GetFailureReason(), res.GetMessage())
	}
}

func wantFailure(t *testing.T, res *eventsv1.ProvisioningResult, reason eventsv1.ProvisioningFailureReason, says string) {
	t.Helper()
	if res.GetOutcome() != eventsv1.ProvisioningResult_OUTCOME_FAILED || res.GetFailureReason() != reason || !strings.Contains(res.GetMessage(), says) {
		t.Fatalf("result %s %s %q, want FAILED %s saying %q", res.GetOutcome(), res.GetFailureReason(), res.GetMessage(), reason, says)
	}
}

// syncRequests returns the targeted sync requests published for request id.
func (e *env) syncRequests(t *testing.T, id string) []*eventsv1.SyncRequest {
	t.Helper()
	var out []*eventsv1.SyncRequest
	for _, m := range e.syncs.Messages() {
		sr := &eventsv1.SyncRequest{}
		if err := proto.Unmarshal(m.Data(), sr); err != nil {
			t.Fatal(err)
		}
		if sr.GetRequestId() == "provisioning:"+id {
			out = append(out, sr)
		}
	}
	return out
}

// counter counts requests per method, and per method and path, through a
// transport.
type counter struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
	paths map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n, c.paths = map[string]int{}, map[string]int{}
	}
	c.n[r.Method]++
	c.paths[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

// calls is how many method path requests went through.
func (c *counter) calls(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[method+" "+path]
}

func (c *counter) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n["PUT"] + c.n["POST"] + c.n["DELETE"]
}

// waitSyncRequests waits a little for the sync requests of request id.
func (e *env) waitSyncRequests(t *testing.T, id string) []*eventsv1.SyncRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		srs := e.syncRequests(t, id)
		if len(srs) > 0 || time.Now().After(deadline) {
			return srs
		}
		time.Sleep(10 * time.Millisecond)
	}
}
