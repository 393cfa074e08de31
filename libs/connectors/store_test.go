package connectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/accessbus/accessbus/libs/connectors"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	"github.com/accessbus/accessbus/libs/secrets"
	"github.com/accessbus/accessbus/libs/subjects"
	"github.com/accessbus/accessbus/libs/telemetry"
	"github.com/accessbus/accessbus/libs/testkit"
)

const rawToken = "00abcDEFsecretTOKENvalue0123456789xyz"

func newKey(t *testing.T) secrets.Key {
	t.Helper()
	k, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// env is one embedded JetStream with a Store on it.
type env struct {
	js    jetstream.JetStream
	store *connectors.Store
	key   secrets.Key
}

func newEnv(t *testing.T) *env {
	t.Helper()
	js := testkit.StartNATS(t).JetStream(t)
	key := newKey(t)
	return &env{js: js, key: key, store: openStore(t, js, key)}
}

func openStore(t *testing.T, js jetstream.JetStream, key secrets.Key) *connectors.Store {
	t.Helper()
	s, err := connectors.Open(context.Background(), js, connectors.Options{Key: key, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) create(t *testing.T, id string) *eventsv1.Connector {
	t.Helper()
	c, err := e.store.Create(context.Background(), &eventsv1.Connector{Id: id, OktaDomain: "https://" + id + ".okta.com/"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOpenIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.create(t, "c1")
	again := openStore(t, e.js, e.key)
	if _, err := again.Get(context.Background(), "c1"); err != nil {
		t.Fatalf("record lost by a second Open: %v", err)
	}
	if !again.HasKey() {
		t.Fatal("HasKey false with a key")
	}
}

func TestCreateGetList(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	in := &eventsv1.Connector{
		Id: "acme", OktaDomain: "ACME.okta.com", CreatedBy: "u1",
		// Fields Create owns are overwritten.
		TokenSet: true, SecretVersion: 9, Status: eventsv1.ConnectorStatus_CONNECTOR_STATUS_CONNECTED,
		Capabilities: &eventsv1.Capabilities{ReviewRoles: true},
		Options:      &eventsv1.ConnectorOptions{SkipAppGroups: true},
	}
	c, err := e.store.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !in.GetTokenSet() || in.GetOktaDomain() != "ACME.okta.com" {
		t.Fatal("Create changed its argument")
	}
	if c.GetOktaDomain() != "acme.okta.com" || c.GetTokenSet() || c.GetSecretVersion() != 0 ||
		c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED || c.GetStatusReason() == "" ||
		c.GetCapabilities() != nil || !c.GetOptions().GetSkipAppGroups() || c.GetCreatedBy() != "u1" {
		t.Fatalf("created record: %v", c)
	}
	if c.GetRevision() == 0 || c.GetCreatedAt() == nil || !proto.Equal(c.GetCreatedAt(), c.GetUpdatedAt()) {
		t.Fatalf("revision/timestamps: %v", c)
	}
	got, err := e.store.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, c) {
		t.Fatalf("Get = %v\nwant %v", got, c)
	}

	if _, err := e.store.Create(ctx, &eventsv1.Connector{Id: "acme", OktaDomain: "acme.okta.com"}); !errors.Is(err, connectors.ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	for _, bad := range []*eventsv1.Connector{
		nil,
		{Id: "Acme", OktaDomain: "acme.okta.com"},
		{Id: "a.b", OktaDomain: "acme.okta.com"},
		{Id: "", OktaDomain: "acme.okta.com"},
		{Id: "x", OktaDomain: "acme-admin.okta.com"},
	} {
		_, err := e.store.Create(ctx, bad)
		if !errors.Is(err, connectors.ErrInvalid) {
			t.Fatalf("Create(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := e.store.Get(ctx, "missing"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("Get(missing) = %v", err)
	}
	if _, err := e.store.Get(ctx, "bad.id"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("Get(bad.id) = %v", err)
	}

	e.create(t, "zeta")
	e.create(t, "beta")
	list, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.GetId())
		if c.GetRevision() == 0 {
			t.Fatalf("listed record without revision: %v", c)
		}
	}
	if strings.Join(ids, ",") != "acme,beta,zeta" {
		t.Fatalf("List ids = %v", ids)
	}
}

func TestListEmpty(t *testing.T) {
	e := newEnv(t)
	list, err := e.store.List(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("List of empty store = %v, %v", list, err)
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	js := testkit.StartNATS(t).JetStream(t)
	s, err := connectors.Open(ctx, js, connectors.Options{Storage: jetstream.MemoryStorage, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Create(ctx, &eventsv1.Connector{Id: "c1", OktaDomain: "c1.okta.com"})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	up, err := s.Update(ctx, "c1", func(c *eventsv1.Connector) error {
		c.OktaDomain = "https://login.c1.example"
		c.Owners = append(c.Owners, &eventsv1.ConnectorOwner{IdentityId: "i1", Email: "a@c1.example"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetRevision() <= c.GetRevision() || !up.GetUpdatedAt().AsTime().Equal(now) || !proto.Equal(up.GetCreatedAt(), c.GetCreatedAt()) {
		t.Fatalf("updated record: %v", up)
	}
	if up.GetOktaDomain() != "login.c1.example" || len(up.GetOwners()) != 1 {
		t.Fatalf("updated fields: %v", up)
	}
	got, _ := s.Get(ctx, "c1")
	if !proto.Equal(got, up) {
		t.Fatalf("stored %v, returned %v", got, up)
	}

	// A change that changes nothing is not written.
	same, err := s.Update(ctx, "c1", func(*eventsv1.Connector) error { return nil })
	if err != nil || same.GetRevision() != up.GetRevision() {
		t.Fatalf("no-op update: rev %d -> %d, %v", up.GetRevision(), same.GetRevision(), err)
	}

	boom := errors.New("boom")
	if _, err := s.Update(ctx, "c1", func(*eventsv1.Connector) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	for name, fn := range map[string]func(*eventsv1.Connector){
		"id":             func(c *eventsv1.Connector) { c.Id = "c2" },
		"token_set":      func(c *eventsv1.Connector) { c.TokenSet = true },
		"secret_version": func(c *eventsv1.Connector) { c.SecretVersion = 3 },
		"domain":         func(c *eventsv1.Connector) { c.OktaDomain = "http://acme.okta.com" },
	} {
		if _, err := s.Update(ctx, "c1", func(c *eventsv1.Connector) error { fn(c); return nil }); !errors.Is(err, connectors.ErrInvalid) {
			t.Fatalf("%s change: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.Update(ctx, "nope", func(*eventsv1.Connector) error { return nil }); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	after, _ := s.Get(ctx, "c1")
	if !proto.Equal(after, up) {
		t.Fatalf("refused updates changed the record: %v", after)
	}
}

// TestUpdateRetriesOnConflict makes a second writer change the record while
// the first one's fn runs: the first write must fail its compare-and-set,
// re-read, and apply fn to the other writer's version.
func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	other := openStore(t, e.js, e.key) // another replica
	calls := 0
	up, err := e.store.Update(ctx, "c1", func(c *eventsv1.Connector) error {
		calls++
		if calls == 1 {
			if _, err := other.Update(ctx, "c1", func(c *eventsv1.Connector) error {
				c.Owners = append(c.Owners, &eventsv1.ConnectorOwner{IdentityId: "other"})
				return nil
			}); err != nil {
				return err
			}
		}
		c.Owners = append(c.Owners, &eventsv1.ConnectorOwner{IdentityId: "first"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("fn ran %d times, want 2 (one conflict, one retry)", calls)
	}
	if got := ownerIDs(up); got != "other,first" {
		t.Fatalf("owners = %s, want other,first", got)
	}
}

// TestConcurrentUpdaters runs two updaters at once on two Stores; no change
// may be lost.
func TestConcurrentUpdaters(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	stores := []*connectors.Store{e.store, openStore(t, e.js, e.key)}
	const perWriter = 15
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for w, s := range stores {
		wg.Go(func() {
			for i := range perWriter {
				_, err := s.Update(ctx, "c1", func(c *eventsv1.Connector) error {
					c.Owners = append(c.Owners, &eventsv1.ConnectorOwner{IdentityId: fmt.Sprintf("w%d-%d", w, i)})
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _ := e.store.Get(ctx, "c1")
	if n := len(got.GetOwners()); n != 2*perWriter {
		t.Fatalf("%d owners, want %d: updates were lost", n, 2*perWriter)
	}
}

func ownerIDs(c *eventsv1.Connector) string {
	var ids []string
	for _, o := range c.GetOwners() {
		ids = append(ids, o.GetIdentityId())
	}
	return strings.Join(ids, ",")
}

func TestSetTokenAndToken(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, _, err := e.store.Token(ctx, "c1"); !errors.Is(err, connectors.ErrNoToken) {
		t.Fatalf("Token before SetToken: %v", err)
	}
	v1, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken+"2"))
	if err != nil {
		t.Fatal(err)
	}
	if v1 != 1 || v2 != 2 {
		t.Fatalf("versions %d, %d; want 1, 2", v1, v2)
	}
	tok, v, err := e.store.Token(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Reveal() != rawToken+"2" || v != 2 {
		t.Fatalf("Token = version %d, right value %v", v, tok.Reveal() == rawToken+"2")
	}
	c, _ := e.store.Get(ctx, "c1")
	if !c.GetTokenSet() || c.GetSecretVersion() != 2 {
		t.Fatalf("record after SetToken: %v", c)
	}
	if c.GetStatus() != eventsv1.ConnectorStatus_CONNECTOR_STATUS_NOT_CONNECTED {
		t.Fatalf("status %v", c.GetStatus())
	}

	// The token is nowhere in the record, its String, its JSON, or the raw buckets.
	data, _ := proto.Marshal(c)
	js, _ := protojson.Marshal(c)
	raw := []string{string(data), c.String(), string(js), fmt.Sprintf("%v %+v", c, tok)}
	for _, bucket := range []string{connectors.BucketConnectors, connectors.BucketSecrets, connectors.BucketRuns} {
		kv, err := e.js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if en, err := kv.Get(ctx, "c1"); err == nil {
			raw = append(raw, string(en.Value()))
		}
	}
	for _, s := range raw {
		if strings.Contains(s, rawToken) {
			t.Fatalf("token leaked: %q", s)
		}
	}
}

func TestSetTokenFailures(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	cases := map[string]struct {
		id    string
		token string
		want  error
	}{
		"unknown connector": {"nope", rawToken, connectors.ErrNotFound},
		"invalid id":        {"No", rawToken, connectors.ErrInvalid},
		"empty token":       {"c1", "", connectors.ErrInvalid},
		"spaces":            {"c1", "SSWS " + rawToken, connectors.ErrInvalid},
		"trailing newline":  {"c1", rawToken + "\n", connectors.ErrInvalid},
	}
	for name, tc := range cases {
		_, err := e.store.SetToken(ctx, tc.id, telemetry.NewSecret(tc.token))
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", name, err, tc.want)
		}
		if tc.token != "" && strings.Contains(err.Error(), rawToken) {
			t.Fatalf("%s: error holds the token: %v", name, err)
		}
	}
	keyless, err := connectors.Open(ctx, e.js, connectors.Options{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if keyless.HasKey() {
		t.Fatal("HasKey true without a key")
	}
	if _, err := keyless.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); !errors.Is(err, connectors.ErrNoKey) {
		t.Fatalf("SetToken without key: %v", err)
	}
	if _, _, err := keyless.Token(ctx, "c1"); !errors.Is(err, connectors.ErrNoKey) {
		t.Fatalf("Token without key: %v", err)
	}
	if _, _, err := e.store.Token(ctx, "No"); !errors.Is(err, connectors.ErrInvalid) {
		t.Fatalf("Token(invalid id): %v", err)
	}
	// The keyless store still reads records.
	if _, err := keyless.Get(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
}

func TestTokenWrongKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, e.js, newKey(t))
	_, _, err := other.Token(ctx, "c1")
	if !errors.Is(err, secrets.ErrWrongKey) || !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("Token with another key: %v", err)
	}
	if !strings.Contains(err.Error(), "sealed with another key") {
		t.Fatalf("error does not say so: %v", err)
	}
}

// secretsKV reads and writes the raw sealed-token entries, as an attacker
// with bucket access (but no key) could.
func secretsKV(t *testing.T, e *env) jetstream.KeyValue {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), connectors.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestTokenTampered(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	kv := secretsKV(t, e)
	en, err := kv.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(en.Value(), &v); err != nil {
		t.Fatal(err)
	}
	orig := v["sealed"].(string)
	// Flip one base64 character in the ciphertext part.
	b := []byte(orig)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	v["sealed"] = string(b)
	put := func(m map[string]any) {
		data, _ := json.Marshal(m)
		if _, err := kv.Put(ctx, "c1", data); err != nil {
			t.Fatal(err)
		}
	}
	put(v)
	if _, _, err := e.store.Token(ctx, "c1"); !errors.Is(err, secrets.ErrDecrypt) || errors.Is(err, secrets.ErrWrongKey) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	// The right ciphertext under another version number is refused too:
	// the version is part of what the seal authenticates.
	v["sealed"] = orig
	v["version"] = 7
	put(v)
	if _, _, err := e.store.Token(ctx, "c1"); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("version changed: %v", err)
	}
	if _, err := kv.Put(ctx, "c1", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Token(ctx, "c1"); err == nil {
		t.Fatal("undecodable entry opened")
	}
}

func TestTokenMovedToAnotherConnector(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	e.create(t, "c2")
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	kv := secretsKV(t, e)
	en, err := kv.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "c2", en.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Token(ctx, "c2"); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("c1's token opened as c2's: %v", err)
	}
	if tok, _, err := e.store.Token(ctx, "c1"); err != nil || tok.Reveal() != rawToken {
		t.Fatalf("c1's own token: %v", err)
	}
}

// TestSetTokenVersionAboveStored: a sealed token whose record update was
// lost (a crash between the two writes) is not reused as a version.
func TestSetTokenVersionAboveStored(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	if _, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetHookSecret(ctx, "c1", telemetry.NewSecret("hook-secret")); err != nil {
		t.Fatal(err)
	}
	// Simulate the lost record update by recreating the record.
	if err := e.store.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Token(ctx, "c1"); !errors.Is(err, connectors.ErrNoToken) {
		t.Fatalf("token survived Delete: %v", err)
	}
	if _, _, err := e.store.HookSecret(ctx, "c1"); !errors.Is(err, connectors.ErrNoHookSecret) {
		t.Fatalf("hook secret survived Delete: %v", err)
	}
	if err := e.store.Delete(ctx, "c1"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	e.create(t, "c1")
	if v, err := e.store.SetToken(ctx, "c1", telemetry.NewSecret(rawToken)); err != nil || v != 1 {
		t.Fatalf("SetToken after Delete: %d, %v", v, err)
	}
}

func TestConcurrentSetToken(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, "c1")
	other := openStore(t, e.js, e.key)
	var wg sync.WaitGroup
	versions := make([]int64, 2)
	errs := make([]error, 2)
	for i, s := range []*connectors.Store{e.store, other} {
		wg.Go(func() {
			versions[i], errs[i] = s.SetToken(ctx, "c1", telemetry.NewSecret(fmt.Sprintf("%s-%d", rawToken, i)))
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if versions[0] == versions[1] {
		t.Fatalf("two SetToken calls got one version %d", versions[0])
	}
	tok, v, err := e.store.Token(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.store.Get(ctx, "c1")
	if v != max(versions[0], versions[1]) || c.GetSecretVersion() != v {
		t.Fatalf("stored version %d, record %d, calls %v", v, c.GetSecretVersion(), versions)
	}
	winner := 0
	if versions[1] > versions[0] {
		winner = 1
	}
	if tok.Reveal() != fmt.Sprintf("%s-%d", rawToken, winner) {
		t.Fatal("the stored token is not the one of the highest version")
	}
}

func TestStatusChangeMsgID(t *testing.T) {
	c := &connectors.StatusChange{Connector: &eventsv1.Connector{Id: "c1", Revision: 42}}
	if got, want := c.MsgID(), subjects.MsgID("catalog", "connector", "c1", "status_changed", "42"); got != want {
		t.Fatalf("MsgID = %s, want %s", got, want)
	}
}
