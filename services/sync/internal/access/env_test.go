package access_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/accessbus/accessbus/libs/bus"
	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/access/v1/accessv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/okta"
	"github.com/accessbus/accessbus/libs/oktasim"
	"github.com/accessbus/accessbus/libs/ratelimit"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"

	"github.com/accessbus/accessbus/services/sync/internal/access"
	"github.com/accessbus/accessbus/services/sync/internal/changes"
	"github.com/accessbus/accessbus/services/sync/internal/fullsync"
	"github.com/accessbus/accessbus/services/sync/internal/state"
)

const connector = "c1"

// lease is the test's stand-in for the sync lease: one holder per
// connector at a time, waiting while another holds it.
type lease struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
}

func (l *lease) slot(c string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slots == nil {
		l.slots = map[string]chan struct{}{}
	}
	if l.slots[c] == nil {
		l.slots[c] = make(chan struct{}, 1)
	}
	return l.slots[c]
}

// Hold is an access.HoldFunc.
func (l *lease) Hold(ctx context.Context, c string) (func(), error) {
	s := l.slot(c)
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// env is one simulated org, one embedded JetStream, the sync's state and
// the AccessService behind a real HTTP server.
type env struct {
	run   *oktasim.Running
	js    jetstream.JetStream
	bus   *bus.Bus
	store *state.Store
	lease *lease
	// fullReads turns the sync's incremental resync off.
	fullReads bool
	svc       *access.Service
	client    accessv1connect.AccessServiceClient

	mu         sync.Mutex
	transports []*http.Transport
}

type envOpts struct {
	deps func(*access.Deps) // adjusts the service's deps
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	run, err := oktasim.Start(ctx, oktasim.Config{Profile: "small", Seed: 1, Addr: "127.0.0.1:0", RateLimits: oktasim.NoLimits})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	// Full reads on every run: these tests are about the snapshot, and a
	// full read makes each run's result independent of how the previous
	// ones went.
	e := &env{run: run, lease: &lease{}, fullReads: true}
	t.Cleanup(func() {
		e.mu.Lock()
		for _, tr := range e.transports {
			tr.CloseIdleConnections()
		}
		e.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = run.Close(cctx)
	})
	js := testkit.StartNATS(t).JetStream(t)
	if _, err := bus.DeclareStreams(ctx, js, bus.Streams(bus.StreamOptions{Storage: jetstream.MemoryStorage})...); err != nil {
		t.Fatalf("declare streams: %v", err)
	}
	b, err := bus.New(js, bus.Options{})
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	store, err := state.Open(ctx, js, state.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	e.js, e.bus, e.store = js, b, store
	d := access.Deps{JS: js, State: store, Hold: e.lease.Hold}
	if o.deps != nil {
		o.deps(&d)
	}
	e.svc, err = access.New(d)
	if err != nil {
		t.Fatalf("new access service: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(e.svc.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.client = accessv1connect.NewAccessServiceClient(srv.Client(), srv.URL)
	return e
}

// sync runs a full sync of connector c holding its lease, as the sync
// worker does.
func (e *env) sync(ctx context.Context, c string, pub changes.Publisher) (fullsync.Report, error) {
	budget, err := ratelimit.New(ratelimit.NewMemoryStore(), ratelimit.Options{Share: 1, TimeScale: 1000})
	if err != nil {
		return fullsync.Report{}, fmt.Errorf("new budget: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	e.mu.Lock()
	e.transports = append(e.transports, tr)
	e.mu.Unlock()
	cl, err := okta.New(ctx, okta.Config{OrgURL: e.run.URL, Token: telemetry.NewSecret(e.run.Tokens.SuperAdmin), Budget: budget,
		RequestTimeout: 5 * time.Second, RetryBackoff: time.Millisecond, MaxRetries: -1, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return fullsync.Report{}, fmt.Errorf("new okta client: %w", err)
	}
	if pub == nil {
		pub = e.bus
	}
	release, err := e.lease.Hold(ctx, c)
	if err != nil {
		return fullsync.Report{}, err
	}
	defer release()
	opts := fullsync.DefaultOptions()
	if e.fullReads {
		opts.FullResyncEvery = -1
	}
	return fullsync.Run(ctx, fullsync.Deps{Okta: cl, Bus: pub, State: e.store, Budget: budget},
		fullsync.Connector{ID: c, Options: opts})
}

func (e *env) mustSync(t *testing.T, c string) fullsync.Report {
	t.Helper()
	rep, err := e.sync(context.Background(), c, nil)
	if err != nil {
		t.Fatalf("sync %s: %v", c, err)
	}
	return rep
}

// exported is a snapshot as a client receives it.
type exported struct {
	header    *accessv1.SnapshotHeader
	resources []*accessv1.AccessResource
	grants    []*accessv1.AccessGrant
	messages  int
}

// export downloads a snapshot through the Connect API.
func (e *env) export(ctx context.Context, c string, pageSize int32) (*exported, error) {
	stream, err := e.client.ExportSnapshot(ctx, connect.NewRequest(&accessv1.ExportSnapshotRequest{ConnectorId: c, PageSize: pageSize}))
	if err != nil {
		return nil, err
	}
	defer func() { _ = stream.Close() }()
	out := &exported{}
	for stream.Receive() {
		out.messages++
		switch ch := stream.Msg().GetChunk().(type) {
		case *accessv1.ExportSnapshotResponse_Header:
			if out.messages != 1 {
				return nil, fmt.Errorf("header in message %d", out.messages)
			}
			out.header = ch.Header
		case *accessv1.ExportSnapshotResponse_Resources:
			if len(out.grants) > 0 {
				return nil, errors.New("resources after grants")
			}
			out.resources = append(out.resources, ch.Resources.GetResources()...)
		case *accessv1.ExportSnapshotResponse_Grants:
			out.grants = append(out.grants, ch.Grants.GetGrants()...)
		default:
			return nil, fmt.Errorf("message %d carries nothing", out.messages)
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	if out.header == nil {
		return nil, errors.New("no header")
	}
	if int(out.header.GetResourceCount()) != len(out.resources) || int(out.header.GetGrantCount()) != len(out.grants) {
		return nil, fmt.Errorf("header counts %d resources, %d grants; got %d, %d",
			out.header.GetResourceCount(), out.header.GetGrantCount(), len(out.resources), len(out.grants))
	}
	return out, nil
}

func (e *env) mustExport(t *testing.T, c string) *exported {
	t.Helper()
	x, err := e.export(context.Background(), c, 0)
	if err != nil {
		t.Fatalf("export %s: %v", c, err)
	}
	return x
}

// lastSeq is the ACCESS sequence of the last event of connector c.
func (e *env) lastSeq(t *testing.T, c string) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), "ACCESS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "access."+c+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// mirror is what a downstream consumer keeps: every resource and grant of
// one connector with the revision it last applied.
type mirror struct {
	resources map[string]*eventsv1.Resource // "<kind>/<id>"
	grants    map[string]*eventsv1.Grant    // grant key
	revs      map[string]uint64             // "r:<kind>/<id>" or "g:<key>"
	applied   int
}

func resKey(k eventsv1.ResourceKind, id string) string { return k.String() + "/" + id }

// load starts a mirror from a snapshot.
func load(t *testing.T, x *exported) *mirror {
	t.Helper()
	m := &mirror{resources: map[string]*eventsv1.Resource{}, grants: map[string]*eventsv1.Grant{}, revs: map[string]uint64{}}
	for _, r := range x.resources {
		k := resKey(r.GetKind(), r.GetId())
		if _, dup := m.resources[k]; dup {
			t.Fatalf("snapshot holds resource %s twice", k)
		}
		m.resources[k], m.revs["r:"+k] = r.GetResource(), r.GetRevision()
	}
	for _, g := range x.grants {
		k := g.GetGrant().GetKey()
		if _, dup := m.grants[k]; dup {
			t.Fatalf("snapshot holds grant %s twice", k)
		}
		m.grants[k], m.revs["g:"+k] = g.GetGrant(), g.GetRevision()
	}
	return m
}

// follow applies the connector's events from sequence from through to, the
// way docs/access.md tells a consumer to, and strictly: an event that
// contradicts the mirror (adding a grant it holds, removing one it lacks,
// a revision not above the one held) means the snapshot missed or doubled
// a change.
func (m *mirror) follow(t *testing.T, js jetstream.JetStream, c string, from, to uint64) {
	t.Helper()
	if from > to {
		return
	}
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "ACCESS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"access." + c + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		t.Fatalf("consumer from %d: %v", from, err)
	}
	for {
		msg, err := cons.Next()
		if err != nil {
			t.Fatalf("next event after %d: %v", from, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq := md.Sequence.Stream
		if seq > to {
			t.Fatalf("event %d beyond the last one %d", seq, to)
		}
		m.apply(t, seq, decode(t, msg))
		if seq == to {
			return
		}
	}
}

func decode(t *testing.T, msg jetstream.Msg) proto.Message {
	t.Helper()
	name := msg.Headers().Get(bus.HeaderPayloadType)
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		t.Fatalf("payload type %q: %v", name, err)
	}
	p := mt.New().Interface()
	if err := proto.Unmarshal(msg.Data(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (m *mirror) bump(t *testing.T, seq uint64, key string, rev uint64) {
	t.Helper()
	if rev <= m.revs[key] {
		t.Fatalf("event %d about %s has revision %d, not above the %d held: the snapshot already had it", seq, key, rev, m.revs[key])
	}
	m.revs[key] = rev
}

func (m *mirror) apply(t *testing.T, seq uint64, p proto.Message) {
	t.Helper()
	m.applied++
	switch ev := p.(type) {
	case *eventsv1.GrantAdded:
		k := ev.GetGrant().GetKey()
		_, held := m.grants[k]
		if held != ev.GetAttributesChanged() {
			t.Fatalf("event %d: grant.added %s (attributes_changed %v) but the mirror holds it: %v", seq, k, ev.GetAttributesChanged(), held)
		}
		m.bump(t, seq, "g:"+k, ev.GetContext().GetRevision())
		m.grants[k] = ev.GetGrant()
	case *eventsv1.GrantRemoved:
		k := ev.GetGrant().GetKey()
		if _, held := m.grants[k]; !held {
			t.Fatalf("event %d: grant.removed %s, which the mirror does not hold", seq, k)
		}
		m.bump(t, seq, "g:"+k, ev.GetContext().GetRevision())
		delete(m.grants, k)
	case *eventsv1.ResourceUpserted:
		k := resKey(ev.GetKind(), ev.GetId())
		m.bump(t, seq, "r:"+k, ev.GetContext().GetRevision())
		m.resources[k] = ev.GetResource()
	case *eventsv1.ResourceDeleted:
		k := resKey(ev.GetKind(), ev.GetId())
		if _, held := m.resources[k]; !held {
			t.Fatalf("event %d: %s deleted, which the mirror does not hold", seq, k)
		}
		m.bump(t, seq, "r:"+k, ev.GetContext().GetRevision())
		delete(m.resources, k)
	default:
		t.Fatalf("event %d: unexpected payload %T", seq, p)
	}
}

// sameContent fails unless two mirrors hold the same resources and grants
// (revisions aside).
func sameContent(t *testing.T, label string, got, want *mirror) {
	t.Helper()
	var diffs []string
	for k, w := range want.resources {
		if g, ok := got.resources[k]; !ok {
			diffs = append(diffs, "missing resource "+k)
		} else if !proto.Equal(g, w) {
			diffs = append(diffs, "different resource "+k)
		}
	}
	for k := range got.resources {
		if _, ok := want.resources[k]; !ok {
			diffs = append(diffs, "extra resource "+k)
		}
	}
	for k, w := range want.grants {
		if g, ok := got.grants[k]; !ok {
			diffs = append(diffs, "missing grant "+k)
		} else if !proto.Equal(g, w) {
			diffs = append(diffs, "different grant "+k)
		}
	}
	for k := range got.grants {
		if _, ok := want.grants[k]; !ok {
			diffs = append(diffs, "extra grant "+k)
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: %d differences, first: %v", label, len(diffs), diffs[:min(10, len(diffs))])
	}
}

func codeOf(err error) connect.Code { return connect.CodeOf(err) }
